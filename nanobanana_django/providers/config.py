"""Provider aliases, configured like ``STORAGES``.

``NANOBANANA["PROVIDERS"]`` maps an alias to ``{"BACKEND": "dotted.path.Class",
"OPTIONS": {...}}``. The built-in aliases ``replicate``, ``gemini`` and ``placeholder``
exist without configuration; naming one in ``PROVIDERS`` replaces its ``BACKEND`` and
updates its ``OPTIONS`` (the options not given keep their defaults, which for the
built-ins come from the top-level shorthand settings such as ``REPLICATE_API_TOKEN``).

``NANOBANANA["PROVIDER"]`` names the default alias; a registered content model or a
call may name another. Rows store the alias, never a class path or an option.

Every problem is an ``ImproperlyConfigured`` naming the alias, the option and the fix;
``manage.py check`` reports them (``nanobanana.E010``). Option values can be secrets:
nothing here puts a value in a message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from ..conf import app_settings
from ..specs import ModelSpec, validate

if TYPE_CHECKING:
    from .base import Provider

BUILTIN_BACKENDS = {
    "replicate": "nanobanana_django.providers.replicate.ReplicateProvider",
    "gemini": "nanobanana_django.providers.gemini.GeminiProvider",
    "placeholder": "nanobanana_django.providers.placeholder.PlaceholderProvider",
}
MAX_ALIAS_LENGTH = 50
"""``GeneratedImage.provider`` holds the alias."""


@dataclass(frozen=True)
class ProviderConfig:
    """One alias: its backend class and its options (defaults applied, values checked)."""

    alias: str
    backend: type[Provider]
    options: dict[str, Any] = field(repr=False)

    @property
    def model(self) -> str:
        return self.backend.model_for(self.options)

    def spec(self) -> ModelSpec:
        return self.backend.spec_for(self.options)

    def validate(self, prompt: Any, params: dict[str, Any]) -> dict[str, Any]:
        """The full input to send, or ``ValidationError`` naming each bad field and what
        it accepts; runs before anything is sent, against this alias's model."""
        return validate(self.spec(), prompt, params)

    def credential_problem(self) -> str | None:
        """How to give this alias its missing key or token, or ``None``."""
        return self.backend.credential_problem(_where(self.alias), self.options)

    def create(self) -> Provider:
        """A ready provider instance (the caller closes it)."""
        provider = self.backend(**self.options)
        provider.alias = self.alias
        return provider


def provider_aliases() -> list[str]:
    """Every configured alias, built-in ones first."""
    return list(_declared())


def get_provider_config(alias: str | None = None) -> ProviderConfig:
    """The configuration of ``alias`` (default: ``NANOBANANA["PROVIDER"]``)."""
    alias = alias or app_settings.PROVIDER
    declared = _declared()
    if alias not in declared:
        known = ", ".join(map(repr, declared))
        if "." in alias:
            raise ImproperlyConfigured(
                f"{alias!r} looks like a class path; providers are named by alias now. Add "
                f"NANOBANANA['PROVIDERS'] = {{'custom': {{'BACKEND': {alias!r}}}}} and name "
                f"'custom' instead (aliases: {known})."
            )
        raise ImproperlyConfigured(
            f"There is no provider alias {alias!r}. Use one of {known}, or add {alias!r} to "
            "NANOBANANA['PROVIDERS'] with a 'BACKEND'."
        )
    where = _where(alias)
    backend_path, given = declared[alias]
    backend = _import_backend(where, backend_path)
    defaults = backend.default_options()
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        allowed = ", ".join(sorted(defaults)) or "none"
        raise ImproperlyConfigured(
            f"{where}['OPTIONS'] has unknown option(s) {', '.join(map(repr, unknown))}. "
            f"{backend.__name__} takes: {allowed}."
        )
    options = backend.clean_options(where, {**defaults, **given})
    return ProviderConfig(alias=alias, backend=backend, options=options)


def _declared() -> dict[str, tuple[str, dict[str, Any]]]:
    """alias -> (backend path, options given), from the built-ins and ``PROVIDERS``."""
    declared: dict[str, tuple[str, dict[str, Any]]] = {
        alias: (path, {}) for alias, path in BUILTIN_BACKENDS.items()
    }
    for alias, entry in app_settings.PROVIDERS.items():
        where = f"NANOBANANA['PROVIDERS'][{alias!r}]"
        if not isinstance(alias, str) or not alias or len(alias) > MAX_ALIAS_LENGTH:
            raise ImproperlyConfigured(
                f"{where}: an alias is a name of 1 to {MAX_ALIAS_LENGTH} characters."
            )
        if not isinstance(entry, Mapping):
            raise ImproperlyConfigured(
                f"{where} must be a dict such as {{'BACKEND': 'myapp.providers.MyProvider', "
                "'OPTIONS': {...}}."
            )
        unknown = sorted(set(entry) - {"BACKEND", "OPTIONS"})
        if unknown:
            raise ImproperlyConfigured(
                f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; "
                "use 'BACKEND' and 'OPTIONS'."
            )
        backend = entry.get("BACKEND") or declared.get(alias, ("", {}))[0]
        if not backend:
            raise ImproperlyConfigured(
                f"{where} needs a 'BACKEND': the dotted path of a Provider subclass."
            )
        options = entry.get("OPTIONS") or {}
        if not isinstance(options, Mapping):
            raise ImproperlyConfigured(f"{where}['OPTIONS'] must be a dict of options.")
        declared[alias] = (backend, dict(options))
    return declared


def _import_backend(where: str, path: str) -> type[Provider]:
    from .base import Provider

    if not isinstance(path, str):
        raise ImproperlyConfigured(f"{where}['BACKEND'] must be a dotted path, as a string.")
    try:
        backend = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"{where}['BACKEND'] {path!r} cannot be imported ({exc}). Check the dotted path "
            "and that its package is installed."
        ) from None
    if not (isinstance(backend, type) and issubclass(backend, Provider)):
        raise ImproperlyConfigured(
            f"{where}['BACKEND'] {path!r} is not a subclass of "
            "nanobanana_django.providers.Provider."
        )
    return backend


def _where(alias: str) -> str:
    return f"NANOBANANA['PROVIDERS'][{alias!r}]"
