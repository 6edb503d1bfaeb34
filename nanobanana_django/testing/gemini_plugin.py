"""pytest fixture for the Gemini API emulator.

Enable it in a ``conftest.py`` with::

    pytest_plugins = ["nanobanana_django.testing.gemini_plugin"]

The fixture needs no Django.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nanobanana_django.testing.gemini import GeminiEmulator


@pytest.fixture
def gemini_emulator() -> Iterator[GeminiEmulator]:
    """A started Gemini emulator (no latency) private to the test, stopped afterwards."""
    emulator = GeminiEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()
