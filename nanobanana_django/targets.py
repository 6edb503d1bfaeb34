"""Where a generated image goes on its object: attach targets, one class per kind of field.

A registration's ``image_field`` is handled by the first class in ``NANOBANANA["TARGETS"]``
that accepts it. The built-in ones cover a ``FileField``/``ImageField`` (pointed at the
stored file, or given its own copy when it uses another storage) and a ``ForeignKey`` to
``GeneratedImage``. Another kind of target, such as an image model of a CMS, is a class
of your own added to ``TARGETS``; nothing else in the pipeline changes::

    class WagtailImageTarget(AttachTarget):
        @classmethod
        def accepts(cls, model_field):
            return isinstance(model_field, models.ForeignKey) and (
                model_field.related_model._meta.label == "wagtailimages.Image")

        def set(self, obj, model_field, row):
            image = Image.objects.create(title=row.prompt[:255], file=row.image.name)
            setattr(obj, model_field.attname, image.pk)
            return [model_field.name]
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import Storage
from django.db import models
from django.utils.functional import LazyObject, empty
from django.utils.module_loading import import_string

from .conf import app_settings
from .storage import configured_storage

if TYPE_CHECKING:
    from .models import GeneratedImage


class AttachTarget:
    """Puts a stored image on one kind of model field."""

    @classmethod
    def accepts(cls, model_field: Any) -> bool:
        """Whether this class can attach to ``model_field``."""
        raise NotImplementedError

    def set(self, obj: models.Model, model_field: Any, row: GeneratedImage) -> list[str]:
        """Set the field on ``obj`` (not saved) and return the fields to save."""
        raise NotImplementedError

    def is_empty_q(self, model_field: Any) -> models.Q:
        """A filter for objects whose field holds no image (backfills use it)."""
        return models.Q(**{f"{model_field.attname}__isnull": True})


class ForeignKeyTarget(AttachTarget):
    """A ``ForeignKey`` to ``GeneratedImage``: pointed at the row."""

    @classmethod
    def accepts(cls, model_field: Any) -> bool:
        if not isinstance(model_field, models.ForeignKey):
            return False
        target = model_field.remote_field.model
        return getattr(target, "_meta", None) is not None and (
            target._meta.label == "nanobanana_django.GeneratedImage"
        )

    def set(self, obj: models.Model, model_field: Any, row: GeneratedImage) -> list[str]:
        setattr(obj, model_field.attname, row.pk)
        return [model_field.name]


class FileFieldTarget(AttachTarget):
    """A ``FileField`` or ``ImageField``: the stored file, never a second copy of it in the
    same storage; an ``ImageField``'s width and height fields are set too."""

    @classmethod
    def accepts(cls, model_field: Any) -> bool:
        return isinstance(model_field, models.FileField)

    def set(self, obj: models.Model, model_field: Any, row: GeneratedImage) -> list[str]:
        name = model_field.name
        if _same_storage(model_field.storage, configured_storage()):
            setattr(obj, name, row.image.name)
        else:
            # Different storages: the file must exist in the field's own storage.
            with row.image.open("rb") as source:
                getattr(obj, name).save(os.path.basename(row.image.name), source, save=False)
        return [name, *_dimension_fields(model_field, obj, row)]

    def is_empty_q(self, model_field: Any) -> models.Q:
        return super().is_empty_q(model_field) | models.Q(**{model_field.attname: ""})


DEFAULT_TARGETS = (
    "nanobanana_django.targets.ForeignKeyTarget",
    "nanobanana_django.targets.FileFieldTarget",
)


def target_for(model_field: Any) -> AttachTarget | None:
    """The attach target for ``model_field``, or ``None`` when none accepts it."""
    for path in app_settings.TARGETS:
        try:
            target = import_string(path)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"NANOBANANA['TARGETS'] names {path!r}, which cannot be imported ({exc})."
            ) from None
        if not (isinstance(target, type) and issubclass(target, AttachTarget)):
            raise ImproperlyConfigured(
                f"NANOBANANA['TARGETS'] names {path!r}, which is not an AttachTarget subclass."
            )
        if target.accepts(model_field):
            return target()
    return None


def _unwrap(storage: Any) -> Any:
    if isinstance(storage, LazyObject):
        if storage._wrapped is empty:
            storage._setup()
        return storage._wrapped
    return storage


def _same_storage(a: Storage, b: Storage) -> bool:
    a, b = _unwrap(a), _unwrap(b)
    if a is b:
        return True
    return (
        type(a) is type(b)
        and getattr(a, "location", object()) == getattr(b, "location", None)
        and getattr(a, "base_url", object()) == getattr(b, "base_url", None)
    )


def _dimension_fields(model_field: Any, obj: models.Model, row: GeneratedImage) -> list[str]:
    """Set an ImageField's width/height fields from what we measured."""
    names = []
    for attr, value in (("width_field", row.width), ("height_field", row.height)):
        name = getattr(model_field, attr, None)
        if name:
            setattr(obj, name, value)
            names.append(name)
    return names
