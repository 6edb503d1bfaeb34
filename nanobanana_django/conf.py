"""The app's settings: one ``NANOBANANA`` dict in the project's settings, read lazily.

Every value is read from ``django.conf.settings`` at the moment it is used, so
``override_settings`` and pytest-django's ``settings`` fixture work in tests. Each
property documents its default; ``docs/settings.md`` lists them all.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

SETTINGS_NAME = "NANOBANANA"

PLACEHOLDER = "placeholder"
REPLICATE = "replicate"

#: The keys of a ``PRESETS`` entry.
PRESET_KEYS = (
    "label",
    "input",
    "prompt_guidance",
    "prompt_template",
    "provider",
    "references",
    "steps",
    "grounding",
)

#: The keys of a ``STEPS`` entry.
STEP_KEYS = ("label", "provider", "model", "input", "image_input", "prompt")

_DURATION_PART = re.compile(r"(\d+)(ms|h|m|s)")


def parse_duration(value: str | int | float) -> float:
    """Seconds in a Replicate duration such as ``"30s"``, ``"5m"``, ``"1h30m"`` or ``45``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '5m'")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    if text.isdigit():
        return float(text)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += int(match.group(1)) * units[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"{value!r} is not a duration like '30s', '5m' or '1h30m'")
    return total


class AppSettings:
    """Typed, lazily read view of ``settings.NANOBANANA``."""

    def _all(self) -> Mapping[str, Any]:
        value = getattr(settings, SETTINGS_NAME, None) or {}
        if not isinstance(value, Mapping):
            raise ImproperlyConfigured(
                f"settings.{SETTINGS_NAME} must be a dict, not {type(value).__name__}."
            )
        return value

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every key of ``NANOBANANA`` this app reads: the upper-case properties."""
        return tuple(
            name
            for name, value in vars(cls).items()
            if isinstance(value, property) and name.isupper()
        )

    def unknown_keys(self) -> list[ImproperlyConfigured]:
        """An error for each key of ``NANOBANANA`` that no setting reads (a typo is never
        silent), with the closest known key as the fix."""
        known = self.names()
        errors = []
        for key in self._all():
            if key in known:
                continue
            close = difflib.get_close_matches(str(key).upper(), known, n=1, cutoff=0.6)
            fix = f"Did you mean {close[0]!r}?" if close else "Remove it."
            errors.append(
                self._error(
                    str(key),
                    "is not a setting of nanobanana_django",
                    f"{fix} See docs/settings.md.",
                )
            )
        return errors

    def _get(self, key: str, default: Any = None) -> Any:
        return self._all().get(key, default)

    def _error(self, key: str, problem: str, fix: str) -> ImproperlyConfigured:
        return ImproperlyConfigured(f"{SETTINGS_NAME}[{key!r}] {problem}. {fix}")

    # Provider selection -------------------------------------------------------------

    @property
    def PROVIDER(self) -> str:
        """The alias of the provider used unless a model or a call names another:
        ``"replicate"``, ``"gemini"``, ``"placeholder"`` or one of ``PROVIDERS``.

        Default: ``"replicate"`` when a Replicate token is configured, otherwise
        ``"placeholder"`` (offline images, so a fresh checkout works without an account).
        """
        value = self._get("PROVIDER")
        if value in (None, ""):
            return REPLICATE if self.REPLICATE_API_TOKEN else PLACEHOLDER
        if not isinstance(value, str):
            raise self._error(
                "PROVIDER",
                f"must be a string, not {type(value).__name__}",
                "Name a provider alias: 'replicate', 'gemini', 'placeholder' or one of "
                "NANOBANANA['PROVIDERS'].",
            )
        return value

    @property
    def PROVIDERS(self) -> dict[str, Any]:
        """Provider aliases, like ``STORAGES``: ``{"alias": {"BACKEND": "dotted.path",
        "OPTIONS": {...}}}``. The built-in ``replicate``, ``gemini`` and ``placeholder``
        exist without it; an entry with a built-in alias changes its options. Default ``{}``.
        """
        value = self._get("PROVIDERS", {})
        if not isinstance(value, Mapping):
            raise self._error(
                "PROVIDERS",
                "must be a dict",
                "Map an alias to {'BACKEND': 'dotted.path.Provider', 'OPTIONS': {...}}.",
            )
        return dict(value)

    @property
    def MODEL(self) -> str:
        """The model to run, as ``owner/name``. Default ``"google/nano-banana-2"``."""
        value = self._get("MODEL", "google/nano-banana-2")
        if not isinstance(value, str) or value.count("/") != 1:
            raise self._error(
                "MODEL",
                f"is {value!r}",
                "Name the model as 'owner/name', for example 'google/nano-banana-2'.",
            )
        return value

    @property
    def DEFAULT_INPUT(self) -> dict[str, Any]:
        """Model inputs sent with every generation unless a call overrides them.

        Default: a 16:9 1K JPEG, which suits a blog header.
        """
        value = self._get("DEFAULT_INPUT")
        if value is None:
            return {"aspect_ratio": "16:9", "resolution": "1K", "output_format": "jpg"}
        if not isinstance(value, Mapping):
            raise self._error(
                "DEFAULT_INPUT", "must be a dict", "For example {'aspect_ratio': '16:9'}."
            )
        return dict(value)

    @property
    def TASK_RUNNER(self) -> str:
        """How queued generations run: ``"django_q"`` (default), ``"django_tasks"``
        (Django 6.0+ ``django.tasks``) or ``"immediate"`` (in the process that queues,
        after the transaction commits; for development and tests).
        """
        value = self._get("TASK_RUNNER", "django_q")
        if value not in ("django_q", "django_tasks", "immediate"):
            raise self._error(
                "TASK_RUNNER",
                f"is {value!r}",
                "Use 'django_q', 'django_tasks' (Django 6.0+) or 'immediate'.",
            )
        return value

    @property
    def ADAPTER(self) -> str:
        """Dotted path to the policy class (prompt, "is it published?").

        Default ``"nanobanana_django.adapter.HeaderImageAdapter"``.
        """
        value = self._get("ADAPTER", "nanobanana_django.adapter.HeaderImageAdapter")
        if not isinstance(value, str) or "." not in value:
            raise self._error(
                "ADAPTER", f"is {value!r}", "Give a dotted path to a HeaderImageAdapter subclass."
            )
        return value

    @property
    def PROMPT_TEMPLATE(self) -> str | None:
        """A Django template for prompts of every model (a model's own wins). Default: ours."""
        value = self._get("PROMPT_TEMPLATE")
        if value is not None and not isinstance(value, str):
            raise self._error("PROMPT_TEMPLATE", "must be a string", "Give template text.")
        return value

    @property
    def ALT_TEXT(self) -> str | None:
        """Who writes each image's alt text (docs/alt-text.md): ``None`` (default: written
        from the title and topic), ``"model"`` (the model's own words where the route
        returns text, else the default) or a dotted path to a callable ``(row, obj) -> str``.
        """
        value = self._get("ALT_TEXT")
        if value in (None, ""):
            return None
        if not isinstance(value, str) or (value != "model" and "." not in value):
            raise self._error(
                "ALT_TEXT",
                f"is {value!r}",
                "Use 'model', a dotted path to a callable taking (row, obj), or leave it unset.",
            )
        return value

    @property
    def PRESETS(self) -> dict[str, dict[str, Any]]:
        """Named presets of inputs and prompt guidance, added to (or replacing keys of) the
        built-in ones: ``{"name": {"input": {...}, "prompt_guidance": "...", ...}}``.

        Default ``{}``. Keys: ``label``, ``input``, ``prompt_guidance``, ``prompt_template``,
        ``provider``, ``references`` (a reference set's name, docs/references.md), ``steps``
        (names in ``STEPS``, docs/steps.md).
        """
        value = self._get("PRESETS", {})
        fix = "For example {'newsletter': {'input': {'aspect_ratio': '3:2'}}}."
        if not isinstance(value, Mapping):
            raise self._error("PRESETS", "must be a dict", fix)
        for name, entry in value.items():
            if not isinstance(name, str) or not 1 <= len(name) <= 50:
                raise self._error("PRESETS", f"has the name {name!r}", "Use 1 to 50 characters.")
            if not isinstance(entry, Mapping):
                raise self._error("PRESETS", f"[{name!r}] must be a dict", fix)
            unknown = sorted(set(entry) - set(PRESET_KEYS))
            if unknown:
                raise self._error(
                    "PRESETS",
                    f"[{name!r}] has unknown keys {unknown}",
                    f"Use {', '.join(PRESET_KEYS)}.",
                )
            if not isinstance(entry.get("input", {}), Mapping):
                raise self._error("PRESETS", f"[{name!r}]['input'] must be a dict", fix)
            for key in ("label", "prompt_guidance", "prompt_template", "provider", "references"):
                if entry.get(key) is not None and not isinstance(entry[key], str):
                    raise self._error(
                        "PRESETS", f"[{name!r}][{key!r}] must be a string", "Give text."
                    )
            steps = entry.get("steps")
            if steps is not None and not _names(steps):
                raise self._error(
                    "PRESETS",
                    f"[{name!r}]['steps'] must be a list of step names",
                    "For example ['upscale'] (names in NANOBANANA['STEPS'], docs/steps.md).",
                )
        return {name: dict(entry) for name, entry in value.items()}

    @property
    def STEPS(self) -> dict[str, dict[str, Any]]:
        """Post-processing steps run on a generated image, each its own billed generation,
        added to (or replacing keys of) the built-in ``upscale``: ``{"name": {"provider":
        "alias", "model": "owner/name", "input": {...}, "image_input": "image", "prompt":
        "...", "label": "..."}}``. Default ``{}`` (docs/steps.md)."""
        value = self._get("STEPS", {})
        fix = "For example {'upscale': {'input': {'scale': 4}}} (docs/steps.md)."
        if not isinstance(value, Mapping):
            raise self._error("STEPS", "must be a dict", fix)
        for name, entry in value.items():
            if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_-]{1,50}", name):
                raise self._error(
                    "STEPS",
                    f"has the name {name!r}",
                    "Use 1 to 50 lower-case letters, digits, '_' or '-'.",
                )
            if not isinstance(entry, Mapping):
                raise self._error("STEPS", f"[{name!r}] must be a dict", fix)
            unknown = sorted(set(entry) - set(STEP_KEYS))
            if unknown:
                raise self._error(
                    "STEPS",
                    f"[{name!r}] has unknown keys {unknown}",
                    f"Use {', '.join(STEP_KEYS)}.",
                )
            if not isinstance(entry.get("input", {}), Mapping):
                raise self._error("STEPS", f"[{name!r}]['input'] must be a dict", fix)
            for key in ("label", "provider", "model", "image_input", "prompt"):
                if entry.get(key) is not None and not isinstance(entry[key], str):
                    raise self._error(
                        "STEPS", f"[{name!r}][{key!r}] must be a string", "Give text."
                    )
        return {name: dict(entry) for name, entry in value.items()}

    # Replicate ----------------------------------------------------------------------

    @property
    def REPLICATE_API_TOKEN(self) -> str:
        """Replicate API token. Default: the ``REPLICATE_API_TOKEN`` environment variable."""
        value = self._get("REPLICATE_API_TOKEN")
        if value is None:
            value = os.environ.get("REPLICATE_API_TOKEN", "")
        return str(value).strip()

    @property
    def REPLICATE_BASE_URL(self) -> str:
        """API root (paths add ``/v1/...``). Default: ``REPLICATE_BASE_URL`` or Replicate's."""
        value = self._get("REPLICATE_BASE_URL") or os.environ.get("REPLICATE_BASE_URL")
        value = str(value or "https://api.replicate.com").rstrip("/")
        if value.endswith("/v1"):
            value = value[: -len("/v1")]
        if not value.startswith(("https://", "http://")):
            raise self._error(
                "REPLICATE_BASE_URL",
                f"is {value!r}",
                "Give the API root with its scheme, for example 'https://api.replicate.com'.",
            )
        return value

    @property
    def REPLICATE_WAIT(self) -> int:
        """Seconds Replicate may hold the create request open (``Prefer: wait=N``).

        Default 60, the most Replicate allows. ``0`` turns sync mode off (always poll).
        """
        value = self._get("REPLICATE_WAIT", 60)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 60:
            raise self._error(
                "REPLICATE_WAIT",
                f"is {value!r}",
                "Use a whole number of seconds from 1 to 60, or 0 to always poll.",
            )
        return value

    @property
    def CANCEL_AFTER(self) -> str | None:
        """A deadline Replicate enforces (``Cancel-After``), e.g. ``"5m"``. Default: none.

        A prediction still queued at the deadline is aborted (not billed).
        """
        value = self._get("CANCEL_AFTER")
        if value in (None, "", 0):
            return None
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise self._error("CANCEL_AFTER", str(exc), "Use e.g. '90s', '5m' or 300.") from None
        if seconds < 5:
            raise self._error(
                "CANCEL_AFTER", f"is {value!r}", "Replicate's minimum deadline is 5 seconds."
            )
        return value if isinstance(value, str) else f"{int(seconds)}s"

    @property
    def POLL_INTERVAL(self) -> float:
        """Seconds between polls of a prediction that is not finished. Default 1.0."""
        return self._positive_number("POLL_INTERVAL", 1.0)

    @property
    def GENERATION_TIMEOUT(self) -> float:
        """Seconds we wait for one prediction before cancelling it. Default 600."""
        return self._positive_number("GENERATION_TIMEOUT", 600.0)

    @property
    def HTTP_TIMEOUT(self) -> float:
        """Seconds for connecting and for each read that is not a sync wait. Default 30."""
        return self._positive_number("HTTP_TIMEOUT", 30.0)

    @property
    def MAX_RETRIES(self) -> int:
        """How many times a request that is safe to repeat is retried (429, 5xx). Default 5."""
        value = self._get("MAX_RETRIES", 5)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self._error("MAX_RETRIES", f"is {value!r}", "Use a whole number >= 0.")
        return value

    @property
    def RATE_LIMIT(self) -> int:
        """Prediction creates per minute across every process (Replicate allows 600).

        Default 600. Shared through ``CACHE``; ``0`` turns the limiter off.
        """
        value = self._get("RATE_LIMIT", 600)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self._error("RATE_LIMIT", f"is {value!r}", "Use creates per minute, e.g. 600.")
        return value

    @property
    def THROTTLE_TIMEOUT(self) -> float:
        """Seconds a create may keep waiting out 429 answers before it fails. Default 600."""
        return self._positive_number("THROTTLE_TIMEOUT", 600.0)

    @property
    def CACHE(self) -> str:
        """Alias in ``settings.CACHES`` shared by all processes: the rate limit, the
        poller's lease and webhook deduplication live there. Default ``"default"``."""
        value = self._get("CACHE", "default")
        if not isinstance(value, str) or not value:
            raise self._error("CACHE", f"is {value!r}", "Name an alias of settings.CACHES.")
        return value

    @property
    def PUBLIC_URL(self) -> str:
        """The site's public origin, e.g. ``"https://www.example.com"``. When set,
        predictions are created with a webhook to ``<PUBLIC_URL>/nanobanana/webhooks/
        replicate/`` (wherever ``nanobanana_django.urls`` is mounted). Default: none."""
        value = self._get("PUBLIC_URL") or ""
        if not isinstance(value, str) or (value and not value.startswith(("https://", "http://"))):
            raise self._error(
                "PUBLIC_URL", f"is {value!r}", "Give the origin, e.g. 'https://www.example.com'."
            )
        return value.rstrip("/")

    @property
    def WEBHOOK_SECRET(self) -> str:
        """The signing secret (``whsec_...``) of Replicate's webhooks. Default: fetched
        once from ``GET /v1/webhooks/default/secret`` and cached in ``CACHE``."""
        return str(self._get("WEBHOOK_SECRET") or "").strip()

    @property
    def WEBHOOK_POLL_INTERVAL(self) -> float:
        """With webhooks on, how often the poller checks for lost webhooks. Default 30 s."""
        return self._positive_number("WEBHOOK_POLL_INTERVAL", 30.0)

    # Scheduled posts ------------------------------------------------------------------

    @property
    def SWEEP_INTERVAL(self) -> int:
        """Seconds between sweeps for scheduled posts that became due (docs/scheduled.md),
        rounded up to whole minutes by django-q2's schedule. Default 60; ``0`` installs no
        schedule (run ``manage.py nanobanana_sweep`` from cron instead, or not at all).
        """
        value = self._get("SWEEP_INTERVAL", 60)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self._error(
                "SWEEP_INTERVAL", f"is {value!r}", "Use a whole number of seconds, or 0 for none."
            )
        return value

    @property
    def SWEEP_WINDOW(self) -> float:
        """How far back a sweep looks: objects whose publish date passed longer ago are
        left to a backfill (``nanobanana_generate --missing-only``). Default 86400 (a day).
        """
        return self._positive_number("SWEEP_WINDOW", 86400.0)

    # Images and storage ---------------------------------------------------------------

    @property
    def STORAGE(self) -> str:
        """Alias in ``settings.STORAGES`` where images are saved. Default ``"default"``."""
        value = self._get("STORAGE", "default")
        if not isinstance(value, str) or not value:
            raise self._error("STORAGE", f"is {value!r}", "Name an alias of settings.STORAGES.")
        return value

    @property
    def UPLOAD_TO(self) -> str:
        """Folder for stored images; files go to ``<UPLOAD_TO>/YYYY/MM/<uuid>.<ext>``."""
        value = self._get("UPLOAD_TO", "nanobanana")
        if not isinstance(value, str):
            raise self._error(
                "UPLOAD_TO", f"is {value!r}", "Use a folder name such as 'nanobanana'."
            )
        return value.strip("/")

    @property
    def RENDITION_WIDTHS(self) -> tuple[int, ...]:
        """Widths of the smaller copies made once when an image is stored, for the
        ``{% header_image %}`` tag's ``srcset``; only those narrower than the image are made.
        Default ``(480, 768, 1024)``; ``()`` makes none."""
        value = self._get("RENDITION_WIDTHS", (480, 768, 1024))
        if (
            isinstance(value, (str, bytes))
            or not isinstance(value, (list, tuple))
            or not all(
                isinstance(width, int) and not isinstance(width, bool) and width > 0
                for width in value
            )
        ):
            raise self._error(
                "RENDITION_WIDTHS",
                f"is {value!r}",
                "Give a list of widths in pixels, e.g. [480, 768, 1024], or [] for none.",
            )
        return tuple(sorted(set(value)))

    @property
    def MAX_IMAGE_BYTES(self) -> int:
        """Largest image download accepted, in bytes. Default 50 MiB (a 4K PNG is ~25 MiB)."""
        return int(self._positive_number("MAX_IMAGE_BYTES", 50 * 1024 * 1024))

    @property
    def MAX_IMAGE_PIXELS(self) -> int:
        """Largest width x height accepted (decompression-bomb guard). Default 40 megapixels."""
        return int(self._positive_number("MAX_IMAGE_PIXELS", 40_000_000))

    @property
    def MAX_REFERENCE_BYTES(self) -> int:
        """Largest reference image accepted, in bytes. Default 7 MiB: fourteen of them still
        fit the providers' request limits better than fourteen 50 MiB ones."""
        return int(self._positive_number("MAX_REFERENCE_BYTES", 7 * 1024 * 1024))

    # Variants -----------------------------------------------------------------------------

    @property
    def MAX_VARIANTS(self) -> int:
        """The most candidate images one request may ask for (each is a prediction, billed
        on its own). Default 4."""
        value = self._get("MAX_VARIANTS", 4)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self._error(
                "MAX_VARIANTS", f"is {value!r}", "Use a whole number of images >= 1, e.g. 4."
            )
        return value

    # Content models -------------------------------------------------------------------

    @property
    def MODELS(self) -> dict[str, dict[str, Any]]:
        """Content models that get header images, keyed by ``"app_label.ModelName"``.

        Each value names ``title_field``, ``image_field`` and optionally ``topic_field``.
        """
        value = self._get("MODELS", {})
        if not isinstance(value, Mapping):
            raise self._error(
                "MODELS",
                "must be a dict",
                "Map 'app_label.Model' to {'title_field': ..., 'image_field': ...}.",
            )
        return {str(label): dict(options) for label, options in value.items()}

    @property
    def TRIGGERS(self) -> tuple[str, ...]:
        """Dotted paths of the classes that start generations (``connect()`` /
        ``disconnect()``). Default: the publish rules on model signals,
        ``("nanobanana_django.publishing.PublishedObjectRouter",)``."""
        return self._paths("TRIGGERS", ("nanobanana_django.publishing.PublishedObjectRouter",))

    @property
    def TARGETS(self) -> tuple[str, ...]:
        """Dotted paths of the ``AttachTarget`` classes that put an image on a field, the
        first that accepts a field wins. Default: a ``ForeignKey`` to ``GeneratedImage``,
        then a ``FileField``/``ImageField`` (:mod:`nanobanana_django.targets`)."""
        return self._paths(
            "TARGETS",
            (
                "nanobanana_django.targets.ForeignKeyTarget",
                "nanobanana_django.targets.FileFieldTarget",
            ),
        )

    # Costs and budgets ---------------------------------------------------------------------

    @property
    def CURRENCY(self) -> str:
        """The currency of ``PRICES``, budgets and each row's ``cost``. Default ``"USD"``
        (the documented default prices are in USD and apply only then)."""
        value = self._get("CURRENCY", "USD")
        if not isinstance(value, str) or len(value) != 3 or not value.isalpha():
            raise self._error("CURRENCY", f"is {value!r}", "Use a three-letter code like 'EUR'.")
        return value.upper()

    @property
    def PRICES(self) -> dict[str, Any]:
        """Price of one image: ``{alias: {model or "*": {resolution or "*": amount}}}``.

        Default ``{}``; Gemini's reported prices apply in USD without it."""
        value = self._get("PRICES", {})
        fix = "For example {'replicate': {'google/nano-banana-2': {'1K': '0.04'}}}."
        if not isinstance(value, Mapping):
            raise self._error("PRICES", "must be a dict", fix)
        for alias, models in value.items():
            if not isinstance(models, Mapping) or not all(
                isinstance(table, Mapping) for table in models.values()
            ):
                raise self._error(
                    "PRICES", f"[{alias!r}] is not {{model: {{resolution: price}}}}", fix
                )
            for model, table in models.items():
                for resolution, amount in table.items():
                    _decimal("PRICES", amount, f"[{alias!r}][{model!r}][{resolution!r}]")
        return {alias: dict(models) for alias, models in value.items()}

    @property
    def DAILY_BUDGET(self) -> Decimal | None:
        """The most the site may spend on images in a day (local time). Default: no cap."""
        return self._budget("DAILY_BUDGET")

    @property
    def MONTHLY_BUDGET(self) -> Decimal | None:
        """The most the site may spend on images in a calendar month. Default: no cap."""
        return self._budget("MONTHLY_BUDGET")

    @property
    def BUDGET_WARNING(self) -> float:
        """The share of a budget past which the admin warns. Default 0.8."""
        value = self._get("BUDGET_WARNING", 0.8)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise self._error("BUDGET_WARNING", f"is {value!r}", "Use a share such as 0.8.")
        return float(value)

    def _budget(self, key: str) -> Decimal | None:
        value = self._get(key)
        if value in (None, ""):
            return None
        return _decimal(key, value, "")

    # Helpers ----------------------------------------------------------------------------

    def _paths(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self._get(key, default)
        if (
            isinstance(value, str)
            or not isinstance(value, (list, tuple))
            or not all(isinstance(path, str) and "." in path for path in value)
        ):
            raise self._error(key, f"is {value!r}", "Give a list of dotted paths to classes.")
        return tuple(value)

    def _positive_number(self, key: str, default: float) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise self._error(key, f"is {value!r}", "Use a positive number.")
        return float(value)

    # Placeholder art --------------------------------------------------------------------

    @property
    def PLACEHOLDER_FONT(self) -> str | None:
        """A TrueType/OpenType font file for placeholder titles. Default None.

        Pillow's bundled font shows Latin letters (accents are drawn over the base
        letter); a font such as Noto Sans CJK shows other scripts.
        """
        value = self._get("PLACEHOLDER_FONT")
        if value is None or value == "":
            return None
        if not isinstance(value, (str, os.PathLike)):
            raise self._error(
                "PLACEHOLDER_FONT", f"is {value!r}", "Give the path of a .ttf or .otf font file."
            )
        path = os.fspath(value)
        if not os.path.isfile(path):
            raise self._error(
                "PLACEHOLDER_FONT",
                f"is {path!r}, which is not a file",
                "Give the path of a .ttf or .otf font file, or leave it unset.",
            )
        from PIL import ImageFont

        try:
            ImageFont.truetype(path, 12)
        except (OSError, ImportError) as exc:
            raise self._error(
                "PLACEHOLDER_FONT",
                f"is {path!r}, which Pillow cannot open as a font ({exc})",
                "Give a TrueType or OpenType font; Pillow needs FreeType for it.",
            ) from None
        return path

    # The admin ----------------------------------------------------------------------------

    @property
    def ADMIN_INTEGRATION(self) -> bool:
        """Whether the app adds its action and generation history to the admin of every
        model in ``MODELS`` when it is ready. Default True. With False a site adds them
        itself (``HeaderImageAdminMixin``, ``install_header_image_admin``).
        """
        value = self._get("ADMIN_INTEGRATION", True)
        if not isinstance(value, bool):
            raise self._error(
                "ADMIN_INTEGRATION",
                f"is {value!r}",
                "Use True (add the admin features to your models' admins) or False.",
            )
        return value


app_settings = AppSettings()


def _names(value: Any) -> bool:
    """Whether ``value`` is a list (or tuple) of non-empty strings."""
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value)


def _decimal(key: str, value: Any, where: str) -> Decimal:
    """An amount of money: a number or a numeric string, never a float's rounding."""
    if isinstance(value, bool):
        value = "not a number"
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount < 0:
        raise ImproperlyConfigured(
            f"{SETTINGS_NAME}[{key!r}]{where} is {value!r}. Give an amount such as '5.00' "
            "(a string or a number)."
        )
    return amount
