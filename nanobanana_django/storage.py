"""Where generated images are stored: the ``STORAGES`` alias named in settings.

``GeneratedImage.image`` uses :func:`generated_image_storage` as a callable storage,
so migrations record this function's path, never a backend class or its options
(bucket names, credentials), and the alias is resolved each time it is used.
A content model can do the same for its own image field with :class:`StorageAlias`.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.files.storage import Storage, storages
from django.utils import timezone
from django.utils.functional import LazyObject, empty

from .conf import app_settings


def configured_storage() -> Storage:
    """The backend behind ``NANOBANANA["STORAGE"]`` right now."""
    return storages[app_settings.STORAGE]


class StorageAlias(Storage):
    """A ``STORAGES`` alias, looked up on every call (``None``: ``NANOBANANA["STORAGE"]``).

    Django evaluates a callable storage once, when the model class is built; this
    indirection keeps ``override_settings(STORAGES=..., NANOBANANA=...)`` effective and
    keeps bucket options out of migrations. Give a field a module-level function that
    returns one, so that migrations record the function::

        media = StorageAlias("media")

        def media_storage():
            return media

        class Article(models.Model):
            header_image = models.ImageField(storage=media_storage, blank=True)
    """

    def __init__(self, alias: str | None = None) -> None:
        self.__dict__["alias"] = alias

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            return super().__getattribute__(name)
        return getattr(resolve_storage(self), name)

    def __eq__(self, other: object) -> bool:
        return resolve_storage(self) == other

    def __hash__(self) -> int:
        return hash((StorageAlias, self.__dict__["alias"]))

    def __repr__(self) -> str:
        return f"StorageAlias({self.__dict__['alias']!r})"


def resolve_storage(storage: Any) -> Any:
    """The backend instance behind ``storage`` (a :class:`StorageAlias` or lazy object)."""
    if isinstance(storage, StorageAlias):
        return storages[storage.__dict__["alias"] or app_settings.STORAGE]
    if isinstance(storage, LazyObject):
        if storage._wrapped is empty:
            storage._setup()
        return storage._wrapped
    return storage


_storage = StorageAlias()


def generated_image_storage() -> Storage:
    return _storage


def generated_image_upload_to(instance: Any, filename: str, *, folder: str = "") -> str:
    """``<UPLOAD_TO>/[<folder>/]YYYY/MM/<uuid>.<ext>``, the extension taken from ``filename``."""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    now = timezone.now()
    prefix = "/".join(part for part in (app_settings.UPLOAD_TO, folder) if part)
    name = f"{now:%Y/%m}/{uuid.uuid4().hex}.{extension}"
    return f"{prefix}/{name}" if prefix else name
