"""pytest fixture for the Replicate emulator.

Enable it in a ``conftest.py`` with::

    pytest_plugins = ["nanobanana_django.testing.pytest_plugin"]

The fixture needs no Django; point the app at it with ``settings.NANOBANANA =
replicate_emulator.settings()`` (pytest-django's ``settings`` fixture) where needed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nanobanana_django.testing.emulator import ReplicateEmulator


@pytest.fixture
def replicate_emulator() -> Iterator[ReplicateEmulator]:
    """A started emulator (no latency) private to the test, stopped afterwards."""
    emulator = ReplicateEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()
