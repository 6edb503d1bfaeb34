"""Attaching a stored image to its content object (the last step of the pipeline).

Where the image goes is the registration's ``image_field``: a ``FileField`` /
``ImageField`` is pointed at the stored file (or gets its own copy when it uses another
storage), a ``ForeignKey`` to ``GeneratedImage`` points at the row. Only that field is
saved (``update_fields``), and an existing image is kept unless the row may replace it.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import Storage
from django.db import models, transaction
from django.utils.functional import LazyObject, empty

from .models import GeneratedImage
from .registry import config_for_stored
from .storage import configured_storage

logger = logging.getLogger(__name__)

Status = GeneratedImage.Status


def attach(row: GeneratedImage, *, overwrite: bool | None = None) -> bool:
    """Point the content object's image field at ``row``'s image.

    Saves only that field. Returns False, changing nothing, when the object already
    has an image and ``overwrite`` (default: as requested for the row) is false.
    """
    if row.status != Status.SUCCEEDED or not row.image or row.content_type is None:
        raise ValueError(f"Generation {row.pk} has no image to attach.")
    overwrite = row.overwrite if overwrite is None else overwrite
    model = row.content_type.model_class()
    if model is None:
        raise ImproperlyConfigured(f"The model of generation {row.pk} is no longer installed.")
    config = config_for_stored(model)
    field_name = row.target_field or config.image_field
    model_field = model._meta.get_field(field_name)

    with transaction.atomic():
        obj = model._base_manager.select_for_update().filter(pk=row.object_id).first()
        if obj is None:
            logger.info("Generation %s: its %s was deleted; not attached", row.pk, config.label)
            return False
        current = getattr(obj, model_field.attname)
        if current and not overwrite:
            logger.info(
                "Generation %s: %s %s already has an image; not replaced",
                row.pk,
                config.label,
                obj.pk,
            )
            return False
        update_fields = [field_name]
        if isinstance(model_field, models.ForeignKey):
            setattr(obj, model_field.attname, row.pk)
        elif _same_storage(model_field.storage, configured_storage()):
            setattr(obj, field_name, row.image.name)
            update_fields += _dimension_fields(model_field, obj, row)
        else:
            # Different storages: the file must exist in the field's own storage.
            with row.image.open("rb") as source:
                getattr(obj, field_name).save(os.path.basename(row.image.name), source, save=False)
            update_fields += _dimension_fields(model_field, obj, row)
        obj.save(update_fields=update_fields)
    # The row's content_object is this object as saved: the image_generated signal
    # that follows gets it without reading it again.
    row._meta.get_field("content_object").set_cached_value(row, obj)
    return True


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
