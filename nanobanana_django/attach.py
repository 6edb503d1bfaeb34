"""Attaching a stored image to its content object (the last step of the pipeline).

Where the image goes is the registration's ``image_field``, and how is the business of the
field's attach target (:mod:`nanobanana_django.targets`). Only what the target set is
saved (``update_fields``), the object is locked meanwhile, and an existing image is kept
unless the row may replace it.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from .alttext import set_alt_field
from .models import GeneratedImage
from .registry import config_for_stored
from .targets import target_for

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
        current = getattr(obj, model_field.attname)  # type: ignore[union-attr]
        if current and not overwrite:
            logger.info(
                "Generation %s: %s %s already has an image; not replaced",
                row.pk,
                config.label,
                obj.pk,
            )
            return False
        target = target_for(model_field)
        if target is None:
            raise ImproperlyConfigured(
                f"No class in NANOBANANA['TARGETS'] attaches to {config.label}.{field_name}."
            )
        fields = target.set(obj, model_field, row)
        obj.save(update_fields=[*fields, *set_alt_field(obj, config, row)])
    # The row's content_object is this object as saved: the image_generated signal
    # that follows gets it without reading it again.
    row._meta.get_field("content_object").set_cached_value(row, obj)  # type: ignore[union-attr]
    return True
