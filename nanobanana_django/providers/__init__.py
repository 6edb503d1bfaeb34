"""Providers: Replicate, the offline placeholder, or a class of your own."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from ..conf import PLACEHOLDER, REPLICATE, app_settings
from ..ratelimit import CreateRateLimiter
from .base import GenerationRequest, Prediction, Provider


def get_provider(name: str | None = None, *, sync: bool = True) -> Provider:
    """A ready provider for ``name`` (default: ``NANOBANANA["PROVIDER"]``).

    ``sync=False`` is for background workers: creates return at once instead of
    holding the request open for ``REPLICATE_WAIT`` seconds.
    """
    name = name or app_settings.PROVIDER
    if name == REPLICATE:
        from .replicate import ReplicateProvider

        return ReplicateProvider(
            api_token=app_settings.REPLICATE_API_TOKEN,
            base_url=app_settings.REPLICATE_BASE_URL,
            wait=app_settings.REPLICATE_WAIT if sync else 0,
            cancel_after=app_settings.CANCEL_AFTER,
            timeout=app_settings.HTTP_TIMEOUT,
            max_retries=app_settings.MAX_RETRIES,
            rate_limiter=CreateRateLimiter.from_settings(),
            throttle_timeout=app_settings.THROTTLE_TIMEOUT,
        )
    if name == PLACEHOLDER:
        from .placeholder import PlaceholderProvider

        return PlaceholderProvider()
    try:
        provider_class = import_string(name)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"NANOBANANA['PROVIDER'] is {name!r}, which is not 'replicate', 'placeholder' or "
            f"an importable class path ({exc})."
        ) from None
    if not (isinstance(provider_class, type) and issubclass(provider_class, Provider)):
        raise ImproperlyConfigured(
            f"NANOBANANA['PROVIDER'] names {name!r}, which is not a Provider subclass."
        )
    return provider_class()


__all__ = ["GenerationRequest", "Prediction", "Provider", "get_provider"]
