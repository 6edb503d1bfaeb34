"""Providers: Replicate, Google's Gemini API, the offline placeholder, or your own.

Each is configured by alias in ``NANOBANANA["PROVIDERS"]`` (:mod:`.config`) and owns what
is provider-specific: its options, models and their inputs, its HTTP API and error
messages, its rate limit and what it can do (:class:`.base.Capabilities`).
"""

from __future__ import annotations

from .base import Capabilities, GenerationRequest, Prediction, Provider
from .config import ProviderConfig, get_provider_config, provider_aliases


def get_provider(alias: str | None = None, *, sync: bool = True) -> Provider:
    """A ready provider for ``alias`` (default: ``NANOBANANA["PROVIDER"]``); close it after.

    ``sync=False`` is for background workers: a provider with predictions to follow
    returns as soon as one is accepted instead of holding the request open.
    """
    provider = get_provider_config(alias).create()
    if not sync:
        provider.for_background()
    return provider


__all__ = [
    "Capabilities",
    "GenerationRequest",
    "Prediction",
    "Provider",
    "ProviderConfig",
    "get_provider",
    "get_provider_config",
    "provider_aliases",
]
