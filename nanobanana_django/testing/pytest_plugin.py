"""pytest fixtures for the Replicate and Gemini emulators.

Enable them in a ``conftest.py`` with::

    pytest_plugins = ["nanobanana_django.testing.pytest_plugin"]

The fixtures need no Django; point the app at one with ``settings.NANOBANANA =
replicate_emulator.settings()`` (pytest-django's ``settings`` fixture) where needed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nanobanana_django.testing.gemini import GeminiEmulator
from nanobanana_django.testing.replicate import ReplicateEmulator


@pytest.fixture
def replicate_emulator() -> Iterator[ReplicateEmulator]:
    """A started emulator (no latency, plain HTTP) private to the test, stopped afterwards."""
    emulator = ReplicateEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def replicate_emulator_https() -> Iterator[ReplicateEmulator]:
    """The same over HTTPS, for clients that only treat ``https:`` URLs like Replicate's.

    Clients must trust its CA: pass ``transport=replicate_emulator_https.transport()``
    (or use ``.ssl_context()`` / ``.ca_cert_path``). Needs ``trustme``
    (``pip install "nanobanana-django[testing]"``).
    """
    emulator = ReplicateEmulator(https=True).start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def gemini_emulator() -> Iterator[GeminiEmulator]:
    """A started Gemini API emulator (no latency) private to the test, stopped afterwards.

    Point the app at it with ``settings.NANOBANANA = {**settings.NANOBANANA,
    **gemini_emulator.settings()}``.
    """
    emulator = GeminiEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()
