"""Test helpers: a local Replicate API emulator and its pytest fixture.

Nothing here imports Django, so the emulator also runs from scripts and the command line.
The emulator module is imported lazily, so that ``python -m
nanobanana_django.testing.emulator`` does not find it half-imported (runpy warns then).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nanobanana_django.testing.emulator import (
        RecordedRequest,
        ReplicateEmulator,
        WebhookAttempt,
    )

__all__ = ["RecordedRequest", "ReplicateEmulator", "WebhookAttempt"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from nanobanana_django.testing import emulator

        return getattr(emulator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
