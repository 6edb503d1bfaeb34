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
import sys
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import Storage
from django.db import models
from django.utils.module_loading import import_string

from .conf import app_settings
from .storage import configured_storage, resolve_storage

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
    same storage; an ``ImageField``'s width and height fields are set too, from what we
    measured, so the file is never read back (on S3, a download per attach)."""

    @classmethod
    def accepts(cls, model_field: Any) -> bool:
        return isinstance(model_field, models.FileField)

    def set(self, obj: models.Model, model_field: Any, row: GeneratedImage) -> list[str]:
        if same_storage(model_field.storage, configured_storage()):
            name = row.image.name
        else:
            # Different storages: the file must exist in the field's own storage.
            filename = model_field.generate_filename(obj, os.path.basename(row.image.name or ""))
            with row.image.open("rb") as source:
                name = model_field.storage.save(filename, source, max_length=model_field.max_length)
        # Not setattr: an ImageField's descriptor would download the file to measure it.
        obj.__dict__[model_field.attname] = model_field.attr_class(obj, model_field, name)
        return [model_field.name, *_dimension_fields(model_field, obj, row)]

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


def same_storage(a: Storage, b: Storage) -> bool:
    """Whether a file name means the same bytes in ``a`` and in ``b``.

    True only when we can tell: the same backend instance, two S3 storages on the same
    endpoint, bucket and prefix (``location``), or two storages of one type with the same
    ``location`` and ``base_url``. A custom domain, credentials, ACLs or querystring
    signing change how a file is reached, not where it is, so they do not count. When
    unsure the answer is False, and the cost is a copy, never a missing file.
    """
    a, b = resolve_storage(a), resolve_storage(b)
    if a is b:
        return True
    where_a, where_b = _s3_location(a), _s3_location(b)
    if where_a is not None or where_b is not None:
        return where_a == where_b
    return (
        type(a) is type(b)
        and getattr(a, "location", object()) == getattr(b, "location", None)
        and getattr(a, "base_url", object()) == getattr(b, "base_url", None)
    )


def _s3_location(storage: Any) -> tuple[str, str, str] | None:
    """``(endpoint, bucket, prefix)`` of a django-storages S3 backend, else ``None``."""
    # An S3 storage instance means its module is imported; never import it (nor boto3) here.
    module = sys.modules.get("storages.backends.s3")
    if module is None or not isinstance(storage, module.S3Storage):
        return None
    return (
        (storage.endpoint_url or "").rstrip("/"),
        storage.bucket_name or "",
        (storage.location or "").strip("/"),
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
