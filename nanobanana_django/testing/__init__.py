"""Test helpers: local emulators of the Replicate and Gemini APIs, and pytest fixtures.

One module per provider (:mod:`.replicate`, :mod:`.gemini`) on what they share
(:mod:`.server`, :mod:`.images`). None needs Django settings, so the emulators also run
from scripts and the command line. The Replicate module is imported lazily, so that
``python -m nanobanana_django.testing.replicate`` does not find it half-imported (runpy
warns then).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nanobanana_django.testing.replicate import (
        RecordedRequest,
        ReplicateEmulator,
        WebhookAttempt,
    )

__all__ = ["RecordedRequest", "ReplicateEmulator", "WebhookAttempt"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from nanobanana_django.testing import replicate

        return getattr(replicate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
