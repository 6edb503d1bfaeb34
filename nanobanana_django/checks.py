"""System checks (``manage.py check``). Ids are stable and listed in docs/checks.md."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import InvalidStorageError, storages

from .conf import PLACEHOLDER, REPLICATE, app_settings
from .specs import MODEL_SPECS, validate_input

TAG = "nanobanana"


@checks.register(TAG)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    try:
        provider = app_settings.PROVIDER
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="nanobanana.E001")]

    if provider == REPLICATE and not app_settings.REPLICATE_API_TOKEN:
        messages.append(
            checks.Error(
                "NANOBANANA['PROVIDER'] is 'replicate' but no Replicate API token is set.",
                hint="Set the REPLICATE_API_TOKEN environment variable or "
                "NANOBANANA['REPLICATE_API_TOKEN'], or use the 'placeholder' provider.",
                id="nanobanana.E002",
            )
        )
    if provider == PLACEHOLDER:
        messages.append(
            checks.Info(
                "Header images are offline placeholders: no Replicate API token is configured.",
                hint="Set REPLICATE_API_TOKEN to generate real images with Nano Banana 2.",
                id="nanobanana.I001",
            )
        )

    try:
        storages[app_settings.STORAGE]
    except InvalidStorageError:
        messages.append(
            checks.Error(
                f"NANOBANANA['STORAGE'] is {app_settings.STORAGE!r}, which is not an alias in "
                "settings.STORAGES.",
                hint=f"Add {app_settings.STORAGE!r} to settings.STORAGES or use 'default'.",
                id="nanobanana.E003",
            )
        )
    except ImproperlyConfigured as exc:
        messages.append(checks.Error(str(exc), id="nanobanana.E001"))

    model = None
    try:
        model = app_settings.MODEL
    except ImproperlyConfigured as exc:
        messages.append(checks.Error(str(exc), id="nanobanana.E001"))
    if model is not None and model not in MODEL_SPECS:
        messages.append(
            checks.Error(
                f"NANOBANANA['MODEL'] is {model!r}, which this app does not know the inputs of.",
                hint=f"Use one of: {', '.join(sorted(MODEL_SPECS))}.",
                id="nanobanana.E004",
            )
        )
        model = None

    for key in (
        "TASK_RUNNER",
        "ADAPTER",
        "PROMPT_TEMPLATE",
        "REPLICATE_BASE_URL",
        "REPLICATE_WAIT",
        "CANCEL_AFTER",
        "POLL_INTERVAL",
        "GENERATION_TIMEOUT",
        "HTTP_TIMEOUT",
        "MAX_RETRIES",
        "UPLOAD_TO",
        "MAX_IMAGE_BYTES",
        "MAX_IMAGE_PIXELS",
    ):
        try:
            getattr(app_settings, key)
        except ImproperlyConfigured as exc:
            messages.append(checks.Error(str(exc), id="nanobanana.E001"))

    if model is not None:
        try:
            validate_input(model, "check", app_settings.DEFAULT_INPUT)
        except ImproperlyConfigured as exc:
            messages.append(checks.Error(str(exc), id="nanobanana.E001"))
        except Exception as exc:  # ValidationError
            messages.append(
                checks.Error(
                    f"NANOBANANA['DEFAULT_INPUT'] is not valid for {model}: {_messages(exc)}",
                    id="nanobanana.E005",
                )
            )
    messages.extend(_check_content_models(model))
    messages.extend(_check_runner())
    return messages


def _check_runner() -> list[checks.CheckMessage]:
    """The runner must exist, and django-q2 must not re-deliver a generation mid-way."""
    from django.conf import settings

    from .adapter import compile_template, get_adapter

    messages: list[checks.CheckMessage] = []
    try:
        get_adapter()
        if app_settings.PROMPT_TEMPLATE:
            compile_template(app_settings.PROMPT_TEMPLATE)
        runner = app_settings.TASK_RUNNER
    except ImproperlyConfigured:
        return messages  # reported as E001 above
    except Exception as exc:  # TemplateSyntaxError
        return [
            checks.Error(f"NANOBANANA['PROMPT_TEMPLATE'] is not valid: {exc}", id="nanobanana.E001")
        ]
    if runner == "django_tasks":
        from .tasks import generate_header_image

        if generate_header_image is None:
            messages.append(
                checks.Error(
                    "NANOBANANA['TASK_RUNNER'] is 'django_tasks', which needs Django 6.0+.",
                    hint="Use 'django_q' or 'immediate', or upgrade Django.",
                    id="nanobanana.E007",
                )
            )
    if runner != "immediate":
        messages.extend(_check_shared_cache())
    if runner != "django_q":
        return messages
    from django.apps import apps

    if not apps.is_installed("django_q"):
        return [
            checks.Error(
                "NANOBANANA['TASK_RUNNER'] is 'django_q' but django_q is not in INSTALLED_APPS.",
                hint="Add 'django_q' to INSTALLED_APPS and run a cluster (manage.py qcluster), "
                "or choose another TASK_RUNNER.",
                id="nanobanana.E007",
            )
        ]
    cluster = getattr(settings, "Q_CLUSTER", {}) or {}
    if cluster.get("sync"):
        return messages
    needed = _longest_generation()
    timeout = cluster.get("timeout")
    retry = cluster.get("retry", 60)
    if timeout is None or timeout < needed:
        messages.append(
            checks.Warning(
                f"Q_CLUSTER['timeout'] is {timeout!r}: a generation can take up to {needed:.0f} s "
                "and the worker running it would be killed first.",
                hint=f"Set Q_CLUSTER['timeout'] to at least {needed:.0f} (GENERATION_TIMEOUT plus "
                "the submit and download time), or lower NANOBANANA['GENERATION_TIMEOUT'].",
                id="nanobanana.W001",
            )
        )
    if timeout is not None and retry <= timeout:
        messages.append(
            checks.Warning(
                f"Q_CLUSTER['retry'] ({retry}) is not above Q_CLUSTER['timeout'] ({timeout}): the "
                "broker would hand a generation to a second worker while the first still runs.",
                hint="Set Q_CLUSTER['retry'] a little above 'timeout'. Double delivery never bills "
                "twice, but it wastes a worker.",
                id="nanobanana.W002",
            )
        )
    return messages


LOCAL_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


def _check_shared_cache() -> list[checks.CheckMessage]:
    """Workers coordinate through the cache: it has to be one they all see."""
    from django.conf import settings

    try:
        alias = app_settings.CACHE
    except ImproperlyConfigured:
        return []
    caches_setting = getattr(settings, "CACHES", {}) or {}
    if alias not in caches_setting and alias != "default":
        return [
            checks.Error(
                f"NANOBANANA['CACHE'] is {alias!r}, which is not an alias in settings.CACHES.",
                id="nanobanana.E008",
            )
        ]
    backend = caches_setting.get(alias, {}).get(
        "BACKEND", "django.core.cache.backends.locmem.LocMemCache"
    )
    if backend in LOCAL_CACHES:
        return [
            checks.Warning(
                f"The cache {alias!r} ({backend.rsplit('.', 1)[-1]}) is private to each process: "
                "the create rate limit and the poller's lease will not be shared between workers.",
                hint="Point NANOBANANA['CACHE'] at a shared cache: Redis, Memcached or "
                "django.core.cache.backends.db.DatabaseCache (run createcachetable).",
                id="nanobanana.W003",
            )
        ]
    return []


def _longest_generation() -> float:
    """Seconds one task may need: submit, wait, download, store."""
    return (
        app_settings.REPLICATE_WAIT
        + app_settings.GENERATION_TIMEOUT
        + 2 * app_settings.HTTP_TIMEOUT
    )


def _check_content_models(model: str | None) -> list[checks.CheckMessage]:
    from .registry import build_config

    messages: list[checks.CheckMessage] = []
    try:
        registered = app_settings.MODELS
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="nanobanana.E006")]
    for label, options in registered.items():
        try:
            config = build_config(label, options)
        except ImproperlyConfigured as exc:
            messages.append(checks.Error(str(exc), id="nanobanana.E006"))
            continue
        if model is not None and config.input:
            try:
                validate_input(model, "check", config.input)
            except Exception as exc:
                messages.append(
                    checks.Error(
                        f"NANOBANANA['MODELS'][{label!r}]['input'] is not valid for {model}: "
                        f"{_messages(exc)}",
                        id="nanobanana.E005",
                    )
                )
    return messages


def _messages(exc: Exception) -> str:
    message_dict = getattr(exc, "message_dict", None)
    if message_dict:
        return " ".join(f"{k}: {' '.join(v)}" for k, v in message_dict.items())
    return str(exc)
