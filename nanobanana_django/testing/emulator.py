"""The Replicate emulator under its first name: it now lives in :mod:`.replicate`.

Kept so that ``from nanobanana_django.testing.emulator import ReplicateEmulator`` and
``python -m nanobanana_django.testing.emulator`` go on working. Patch attributes such as
``render_image`` on :mod:`nanobanana_django.testing.replicate`, where they are used.
"""

from __future__ import annotations

from nanobanana_django.testing.replicate import *  # noqa: F403
from nanobanana_django.testing.replicate import __all__, main  # noqa: F401  (re-exported)

if __name__ == "__main__":
    raise SystemExit(main())
