"""System checks (``manage.py check``). Ids are stable and listed in docs/checks.md."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.files.storage import InvalidStorageError, storages

from .conf import PLACEHOLDER, app_settings
from .grounding import problem_on
from .providers.config import ProviderConfig, get_provider_config
from .providers.replicate_models import REPLICATE_MODELS

TAG = "nanobanana"


# Checked with their own ids below, or by another check function.
_CHECKED_ELSEWHERE = {
    "PROVIDER",
    "PROVIDERS",
    "MODEL",
    "STORAGE",
    "MODELS",
    "DEFAULT_INPUT",
    "PUBLIC_URL",
}


@checks.register(TAG)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        messages: list[checks.CheckMessage] = [
            checks.Error(str(exc), id="nanobanana.E001") for exc in app_settings.unknown_keys()
        ]
    except ImproperlyConfigured as exc:  # NANOBANANA is not a dict
        return [checks.Error(str(exc), id="nanobanana.E001")]
    for key in app_settings.names():
        if key in _CHECKED_ELSEWHERE:
            continue
        try:
            getattr(app_settings, key)
        except ImproperlyConfigured as exc:
            messages.append(checks.Error(str(exc), id="nanobanana.E001"))
    try:
        provider = app_settings.PROVIDER
    except ImproperlyConfigured as exc:
        return [*messages, checks.Error(str(exc), id="nanobanana.E001")]

    messages.extend(_check_providers(provider))

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
        messages.append(_storage_error(app_settings.STORAGE, exc))

    try:
        model = app_settings.MODEL
    except ImproperlyConfigured as exc:
        messages.append(checks.Error(str(exc), id="nanobanana.E001"))
    else:
        if model not in REPLICATE_MODELS:
            messages.append(
                checks.Error(
                    f"NANOBANANA['MODEL'] is {model!r}, which this app does not know the inputs "
                    "of.",
                    hint=f"Use one of: {', '.join(sorted(REPLICATE_MODELS))}.",
                    id="nanobanana.E004",
                )
            )

    route = _route(provider)
    if route is not None:
        try:
            route.validate("check", app_settings.DEFAULT_INPUT)
        except ImproperlyConfigured as exc:
            messages.append(checks.Error(str(exc), id="nanobanana.E001"))
        except ValidationError as exc:
            messages.append(
                checks.Error(
                    f"NANOBANANA['DEFAULT_INPUT'] is not valid for {route.model} (provider "
                    f"{route.alias!r}): {_messages(exc)}",
                    id="nanobanana.E005",
                )
            )
    messages.extend(_check_content_models(provider))
    messages.extend(_check_presets(provider))
    messages.extend(_check_plugins())
    messages.extend(_check_prices(provider))
    messages.extend(_check_runner())
    return messages


def _storage_error(alias: str, exc: ImproperlyConfigured) -> checks.CheckMessage:
    """A storage backend that cannot be imported because its SDK is missing says what to
    install (django-storages raises a bare "Could not load Boto3's S3 bindings")."""
    from django.conf import settings

    backend = str(settings.STORAGES.get(alias, {}).get("BACKEND", ""))
    missing = exc.__cause__ or exc.__context__
    if not (isinstance(missing, ImportError) and backend.startswith("storages.backends.")):
        return checks.Error(str(exc), id="nanobanana.E001")
    if backend.startswith(("storages.backends.s3.", "storages.backends.s3boto3.")):
        hint = 'pip install "nanobanana-django[s3]" (django-storages with boto3).'
    else:
        hint = "Install the extra of django-storages for this backend (its documentation)."
    return checks.Error(
        f"STORAGES[{alias!r}] (NANOBANANA['STORAGE']) uses {backend}, whose client library "
        f"is not installed: {missing}.",
        hint=hint,
        id="nanobanana.E011",
    )


def _check_providers(default: str) -> list[checks.CheckMessage]:
    """Every alias in use must resolve: the default, the models' own, and those declared."""
    from .registry import registered_configs

    try:
        declared = list(app_settings.PROVIDERS)
        in_use = [default]
        in_use += [c.provider for c in registered_configs() if c.provider]
    except ImproperlyConfigured:
        declared, in_use = [], [default]  # reported as E001 / E006
    messages: list[checks.CheckMessage] = []
    for alias in dict.fromkeys([*in_use, *declared]):
        try:
            problem = get_provider_config(alias).credential_problem()
        except ImproperlyConfigured as exc:
            messages.append(
                checks.Error(
                    str(exc),
                    hint="Providers are configured by alias in NANOBANANA['PROVIDERS'] "
                    "(docs/providers.md).",
                    id="nanobanana.E010",
                )
            )
            continue
        if problem and alias in in_use:
            messages.append(
                checks.Error(
                    f"The provider {alias!r} has no API key or token, so it cannot generate.",
                    hint=problem + " Or use the 'placeholder' provider.",
                    id="nanobanana.E002",
                )
            )
    return messages


def _check_runner() -> list[checks.CheckMessage]:
    """The runner must exist, and django-q2 must not re-deliver a generation mid-way."""
    from django.conf import settings

    from .adapter import get_adapter
    from .prompts import compile_template

    messages: list[checks.CheckMessage] = []
    try:
        adapter_path = app_settings.ADAPTER
    except ImproperlyConfigured:
        adapter_path = None  # reported by check_settings
    if adapter_path is not None:
        try:
            get_adapter()
        except ImproperlyConfigured as exc:  # cannot be imported, or not an adapter
            messages.append(checks.Error(str(exc), id="nanobanana.E001"))
    try:
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
        from .runners import django_tasks_available

        if not django_tasks_available():
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
    needed = longest_task()
    timeout = cluster.get("timeout")
    retry = cluster.get("retry", 60)
    if timeout is None or timeout < needed:
        messages.append(
            checks.Warning(
                f"Q_CLUSTER['timeout'] is {timeout!r}: one of our tasks can take up to "
                f"{needed:.0f} s and the worker running it would be killed first. Workers never "
                "wait for the model, but a task may wait out the provider's rate limit "
                "(NANOBANANA['THROTTLE_TIMEOUT']) before its create request, and each request "
                "may take NANOBANANA['HTTP_TIMEOUT'].",
                hint=f"Set Q_CLUSTER['timeout'] to at least {needed:.0f} and 'retry' a little "
                "above it, or lower NANOBANANA['THROTTLE_TIMEOUT'].",
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


def longest_task() -> float:
    """Seconds one background task may need: waiting out 429s before its create (workers
    never wait for the model), then the create, a download and storing; or a dispatcher's
    minute of taking calls plus its longest call (providers with long calls in use)."""
    from .dispatcher import ACCEPT_SECONDS
    from .providers.config import provider_aliases

    longest = app_settings.THROTTLE_TIMEOUT + 3 * app_settings.HTTP_TIMEOUT
    for alias in provider_aliases():
        route = _route(alias)
        if (
            route is not None
            and route.backend.capabilities.long_calls
            and (route.credential_problem() is None)
        ):
            call = route.backend.max_call_seconds(route.options)
            longest = max(longest, ACCEPT_SECONDS + call + 30)
    return longest


def _check_prices(default: str) -> list[checks.CheckMessage]:
    """With a budget set, every provider in use needs a price, or its images are not counted."""
    from .costs import price_of
    from .registry import registered_configs

    try:
        budgets = [app_settings.DAILY_BUDGET, app_settings.MONTHLY_BUDGET]
        configs = registered_configs()
    except ImproperlyConfigured:
        return []  # reported as E001 / E006
    budgets += [c.daily_budget for c in configs] + [c.monthly_budget for c in configs]
    if all(budget is None for budget in budgets):
        return []
    messages: list[checks.CheckMessage] = []
    for alias in dict.fromkeys([default, *(c.provider for c in configs if c.provider)]):
        route = _route(alias)
        if route is None:
            continue
        resolutions = route.spec().choices.get("resolution") or (None,)
        missing = [r for r in resolutions if price_of(alias, route.model, r) is None]
        if missing:
            where = ", ".join(r or "any resolution" for r in missing)
            messages.append(
                checks.Warning(
                    f"A budget is set, but provider {alias!r} ({route.model}) has no price for "
                    f"{where}: its images would not be counted against it.",
                    hint=f"Add NANOBANANA['PRICES'] = {{{alias!r}: {{{route.model!r}: "
                    "{'1K': '0.04', ...}}} in NANOBANANA['CURRENCY'].",
                    id="nanobanana.W009",
                )
            )
    return messages


def _check_plugins() -> list[checks.CheckMessage]:
    """The classes named in TRIGGERS and TARGETS must import and be of the right kind."""
    from django.utils.module_loading import import_string

    from .targets import AttachTarget
    from .triggers import check_triggers

    messages: list[checks.CheckMessage] = [
        checks.Error(problem, id="nanobanana.E001") for problem in check_triggers()
    ]
    try:
        paths = app_settings.TARGETS
    except ImproperlyConfigured:
        return messages
    for path in paths:
        try:
            target = import_string(path)
        except ImportError as exc:
            problem = f"cannot be imported ({exc})"
        else:
            if isinstance(target, type) and issubclass(target, AttachTarget):
                continue
            problem = "is not an AttachTarget subclass"
        messages.append(
            checks.Error(
                f"NANOBANANA['TARGETS'] names {path!r}, which {problem}.", id="nanobanana.E001"
            )
        )
    return messages


def _route(alias: str | None) -> ProviderConfig | None:
    """The provider configuration of ``alias``, or ``None`` when it is broken (E002/E010)."""
    try:
        return get_provider_config(alias)
    except (ImproperlyConfigured, NotImplementedError):
        return None


def _check_content_models(default: str) -> list[checks.CheckMessage]:
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
        route = _route(config.provider or default)
        grounding = problem_on(config.grounding, route) if route is not None else None
        if grounding:
            messages.append(
                checks.Error(
                    f"NANOBANANA['MODELS'][{label!r}]['grounding']: {grounding}",
                    hint="Remove 'grounding', or give the model a 'provider' whose model can "
                    "ground (docs/grounding.md).",
                    id="nanobanana.E013",
                )
            )
        if route is None or not config.input:
            continue
        try:
            route.validate("check", {**app_settings.DEFAULT_INPUT, **config.input})
        except ValidationError as exc:
            messages.append(
                checks.Error(
                    f"NANOBANANA['MODELS'][{label!r}]['input'] is not valid for {route.model} "
                    f"(provider {route.alias!r}): {_messages(exc)}",
                    id="nanobanana.E005",
                )
            )
    return messages


def _check_presets(default: str) -> list[checks.CheckMessage]:
    """Presets in use (a model's default, every site preset) against their provider."""
    from .presets import get_presets
    from .registry import registered_configs

    try:
        site_presets = set(app_settings.PRESETS)
    except ImproperlyConfigured:
        return []  # E001
    try:
        presets = get_presets()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="nanobanana.E012")]
    uses: list[tuple[str, Any, str | None]] = [
        (f"NANOBANANA['PRESETS'][{name!r}]", presets[name], presets[name].provider or default)
        for name in presets
        if name in site_presets
    ]
    try:
        configs = registered_configs()
    except ImproperlyConfigured:
        configs = []  # E006
    for config in configs:
        if config.preset:
            preset = presets[config.preset]
            alias = config.provider or preset.provider or default
            uses.append((f"NANOBANANA['MODELS'][{config.label!r}]['preset']", preset, alias))
    messages: list[checks.CheckMessage] = []
    for where, preset, alias in uses:  # type: ignore[assignment]
        route = _route(alias)
        problem = preset.problem_on(route) if route is not None else None
        if problem:
            messages.append(
                checks.Error(
                    f"{where}: {problem}",
                    hint="Name a preset whose inputs the model takes, change the preset's "
                    "'input', or give it a 'provider' whose model takes them (docs/presets.md).",
                    id="nanobanana.E012",
                )
            )
    return messages


@checks.register(TAG)
def check_steps(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every configured step can run, and every preset names steps that exist (steps.md)."""
    from .presets import get_presets
    from .steps import get_steps

    try:
        site_steps = set(app_settings.STEPS)
        steps = get_steps()
        presets = get_presets()
    except ImproperlyConfigured:
        return []  # E001, E012
    hint = "See docs/steps.md."
    messages: list[checks.CheckMessage] = []
    used = {name for preset in presets.values() for name in preset.steps}
    for name, step in steps.items():
        if name in site_steps or name in used:
            problem = step.problem()
            if problem:
                messages.append(checks.Error(problem, hint=hint, id="nanobanana.E014"))
    messages.extend(_check_step_prices([steps[n] for n in steps if n in site_steps or n in used]))
    for preset in presets.values():
        for name in preset.steps:
            if name not in steps:
                messages.append(
                    checks.Error(
                        f"NANOBANANA['PRESETS'][{preset.name!r}]['steps'] names the step "
                        f"{name!r}, which does not exist.",
                        hint=f"Use one of {', '.join(map(repr, steps))}, or add {name!r} to "
                        "NANOBANANA['STEPS'] (docs/steps.md).",
                        id="nanobanana.E014",
                    )
                )
    return messages


def _check_step_prices(in_use: list[Any]) -> list[checks.CheckMessage]:
    """With a site budget, a step's model needs a price too, or its images are not counted."""
    from .costs import price_of

    try:
        if app_settings.DAILY_BUDGET is None and app_settings.MONTHLY_BUDGET is None:
            return []
        app_settings.PRICES  # noqa: B018 - a bad value is E001, reported elsewhere
    except ImproperlyConfigured:
        return []
    messages: list[checks.CheckMessage] = []
    for step in in_use:
        if step.problem():
            continue  # E014
        route = step.route()
        model = step.model_on(route)
        if price_of(route.alias, model, None) is None:
            messages.append(
                checks.Warning(
                    f"A budget is set, but the step {step.name!r} ({model} on {route.alias!r}) "
                    "has no price: its images would not be counted against it.",
                    hint=f"Add NANOBANANA['PRICES'] = {{{route.alias!r}: {{{model!r}: "
                    "{'*': '0.0025'}}} in NANOBANANA['CURRENCY'] (docs/steps.md).",
                    id="nanobanana.W009",
                )
            )
    return messages


def _messages(exc: Exception) -> str:
    message_dict = getattr(exc, "message_dict", None)
    if message_dict:
        return " ".join(f"{k}: {' '.join(v)}" for k, v in message_dict.items())
    return str(exc)


@checks.register(TAG, deploy=True)
def check_placeholder_in_deployment(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Placeholders are the right default for development; say so only before deploying
    (``check --deploy``), not on every ``manage.py`` command."""
    try:
        provider = app_settings.PROVIDER
    except ImproperlyConfigured:
        return []
    if provider != PLACEHOLDER:
        return []
    return [
        checks.Info(
            "Header images are offline placeholders: no Replicate API token is configured.",
            hint="Set REPLICATE_API_TOKEN to generate real images with Nano Banana 2.",
            id="nanobanana.I001",
        )
    ]


@checks.register(TAG)
def check_sqlite_concurrency(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """SQLite with separate worker processes needs IMMEDIATE transactions and a lock wait."""
    from django.db import router

    from .models import GeneratedImage

    try:
        runner = app_settings.TASK_RUNNER
    except ImproperlyConfigured:
        return []
    if runner == "immediate":
        return []  # one process does everything
    alias = router.db_for_write(GeneratedImage)
    fix = sqlite_locking_fix(alias)
    if fix is None:
        return []
    return [
        checks.Warning(
            f"The database {alias!r} is SQLite with Django's default locking: the task workers "
            "(manage.py qcluster), the web process and backfills write at the same time, and "
            "SQLite answers 'database is locked' instead of waiting.",
            hint=fix,
            id="nanobanana.W006",
        )
    ]


def sqlite_locking_fix(alias: str) -> str | None:
    """What to set so that processes sharing SQLite database ``alias`` wait for each other,
    or ``None`` when it is not SQLite or already set.

    Django's default (deferred) transactions turn a read into a write mid-transaction;
    when another process holds the write lock, SQLite answers "database is locked" at
    once instead of waiting. IMMEDIATE transactions (Django 5.1+) take the lock first
    and wait up to ``timeout`` seconds for it.
    """
    import django
    from django.db import connections

    connection = connections[alias]
    if connection.vendor != "sqlite":
        return None
    options = connection.settings_dict.get("OPTIONS") or {}
    timeout = options.get("timeout", 5)
    immediate = str(options.get("transaction_mode", "")).upper() == "IMMEDIATE"
    if django.VERSION >= (5, 1):
        if immediate and timeout >= 20:
            return None
        return (
            f'Set DATABASES[{alias!r}]["OPTIONS"] = {{"transaction_mode": "IMMEDIATE", '
            '"timeout": 20} (and, for throughput, "init_command": "PRAGMA journal_mode=WAL"), '
            "or use PostgreSQL."
        )
    if timeout >= 20:
        return None
    return (
        f'Set DATABASES[{alias!r}]["OPTIONS"] = {{"timeout": 20}}; for backfills while workers '
        "run, use PostgreSQL (SQLite transactions can be made IMMEDIATE from Django 5.1)."
    )


@checks.register(TAG)
def check_cache_table(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A ``DatabaseCache`` needs ``createcachetable``; without it every generation fails.

    A warning, not an error, so that ``migrate`` still runs first. Only reads the list of
    tables, and says nothing when the database cannot be reached.
    """
    from django.core.cache import caches
    from django.core.cache.backends.db import DatabaseCache
    from django.db import connections, router

    try:
        alias = app_settings.CACHE
        cache = caches[alias]
    except Exception:
        return []  # an unknown alias is E008
    if not isinstance(cache, DatabaseCache):
        return []
    db = router.db_for_write(cache.cache_model_class)
    try:
        with connections[db].cursor() as cursor:
            tables = connections[db].introspection.table_names(cursor)
    except Exception:
        return []  # no database yet: nothing we can say
    if cache._table in tables:  # type: ignore[attr-defined]
        return []
    return [
        checks.Warning(
            f"The cache {alias!r} (NANOBANANA['CACHE']) is a DatabaseCache whose table "
            f"{cache._table!r} does not exist: every generation would fail.",  # type: ignore[attr-defined]
            hint="Run: python manage.py createcachetable",
            id="nanobanana.W007",
        )
    ]


@checks.register(TAG)
def check_media_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Images stored on local disk need MEDIA_ROOT and a MEDIA_URL of their own."""
    from django.conf import settings
    from django.core.files.storage import FileSystemStorage
    from django.urls import NoReverseMatch, reverse

    try:
        storage = storages[app_settings.STORAGE]
        upload_to = app_settings.UPLOAD_TO
    except Exception:
        return []  # E001/E003
    if not isinstance(storage, FileSystemStorage):
        return []
    messages: list[checks.CheckMessage] = []
    if not storage.base_location:
        messages.append(
            checks.Error(
                f"Images are stored with FileSystemStorage (STORAGES[{app_settings.STORAGE!r}]) "
                "but MEDIA_ROOT is not set, so each process would write them relative to its "
                "own working directory.",
                hint='Set MEDIA_ROOT to an absolute folder, e.g. MEDIA_ROOT = BASE_DIR / "media", '
                'and MEDIA_URL = "/media/" (or give the storage a "location" option).',
                id="nanobanana.E009",
            )
        )
    base_url = storage.base_url or ""
    sample = storage.url(f"{upload_to}/2026/01/image.jpg") if base_url else ""
    try:
        webhook = reverse("nanobanana:replicate-webhook")
    except NoReverseMatch:
        webhook = ""
    except Exception:
        webhook = ""  # a broken URLconf is reported by Django's own checks
    mount = (
        webhook[: -len("webhooks/replicate/")] if webhook.endswith("webhooks/replicate/") else ""
    )
    collides = bool(mount) and sample.startswith(mount)
    if collides or base_url in ("", "/") or not base_url.startswith(("/", "http://", "https://")):
        messages.append(
            checks.Warning(
                f"MEDIA_URL is {settings.MEDIA_URL!r}: image URLs would be "
                + (
                    f"{sample!r}, inside the URLs of nanobanana_django.urls ({mount!r})."
                    if collides
                    else f"{sample or 'relative'!r}, not under a media prefix of their own."
                ),
                hint='Set MEDIA_URL = "/media/" (and serve it: in development with '
                "django.conf.urls.static.static(settings.MEDIA_URL, "
                "document_root=settings.MEDIA_ROOT)).",
                id="nanobanana.W008",
            )
        )
    return messages
