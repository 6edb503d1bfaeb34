"""Where generated images are stored: the ``STORAGES`` alias named in settings.

``GeneratedImage.image`` uses :func:`generated_image_storage` as a callable storage,
so migrations record this function's path, never a backend class or its options
(bucket names, credentials), and the alias is resolved each time it is used.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.files.storage import Storage, storages
from django.utils import timezone

from .conf import app_settings


def configured_storage() -> Storage:
    """The backend behind ``NANOBANANA["STORAGE"]`` right now."""
    return storages[app_settings.STORAGE]


class _ConfiguredStorage(Storage):
    """Forwards every call to :func:`configured_storage`, resolved per call.

    Django evaluates a callable storage once, when the model class is built; this
    indirection keeps ``override_settings(STORAGES=..., NANOBANANA=...)`` effective.
    """

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            return super().__getattribute__(name)
        return getattr(configured_storage(), name)

    def __eq__(self, other: object) -> bool:
        return configured_storage() == other

    def __hash__(self) -> int:
        return id(_ConfiguredStorage)


_storage = _ConfiguredStorage()


def generated_image_storage() -> Storage:
    return _storage


def generated_image_upload_to(instance: Any, filename: str) -> str:
    """``<UPLOAD_TO>/YYYY/MM/<uuid>.<ext>``, the extension taken from ``filename``."""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    now = timezone.now()
    prefix = app_settings.UPLOAD_TO
    name = f"{now:%Y/%m}/{uuid.uuid4().hex}.{extension}"
    return f"{prefix}/{name}" if prefix else name
