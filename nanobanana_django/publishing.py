"""Generate a header image when a registered object *becomes* published.

For a field rule (``{"field": "status", "values": [...]}``, a boolean or a date field)
the field's value is remembered when the object is loaded (``post_init``, no query)
and compared after ``save()``. For a callable rule, or an adapter that decides by
itself, the stored row is read once in ``pre_save`` to learn what it was before.

Saves that cannot publish are ignored: fixture loads (``raw``), and saves whose
``update_fields`` leave the rule's fields alone (such as ours, attaching the image).
The generation is queued with ``transaction.on_commit``, so a rolled back save
queues nothing, and an error here is logged, never raised into the editor's save.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import models
from django.db.models.signals import post_init, post_save, pre_save

from .adapter import HeaderImageAdapter, get_adapter
from .registry import ContentConfig, find_config, registered_configs
from .triggers import Trigger

logger = logging.getLogger(__name__)

_WAS_PUBLISHED = "_nanobanana_was_published"
_SNAPSHOT = "_nanobanana_publish_fields"
_MISSING = object()

_connected: list[type[models.Model]] = []


class PublishedObjectRouter(Trigger):
    """Connects the signal handlers of every model with a ``publish`` rule (the default
    trigger, in ``NANOBANANA["TRIGGERS"]``)."""

    @classmethod
    def connect(cls) -> None:
        cls.disconnect()
        try:
            configs = registered_configs()
        except ImproperlyConfigured:
            return  # the system checks explain what is wrong
        for config in configs:
            if config.publish is None:
                continue
            uid = f"nanobanana-{config.label}"
            post_init.connect(_remember, sender=config.model, weak=False, dispatch_uid=uid)
            pre_save.connect(_before_save, sender=config.model, weak=False, dispatch_uid=uid)
            post_save.connect(_after_save, sender=config.model, weak=False, dispatch_uid=uid)
            _connected.append(config.model)

    @classmethod
    def disconnect(cls) -> None:
        for model in _connected:
            uid = f"nanobanana-{model._meta.label}"
            for signal in (post_init, pre_save, post_save):
                signal.disconnect(sender=model, dispatch_uid=uid)
        _connected.clear()


def _config_and_fields(model: type[models.Model]) -> tuple[ContentConfig | None, Any]:
    """The registration, and the fields its rule reads (``None``: ask the database)."""
    config = find_config(model._meta.label)
    if config is None or config.publish is None:
        return None, None
    if type(get_adapter()).is_published is not HeaderImageAdapter.is_published:
        return config, None
    return config, config.publish.fields


def _remember(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    config, fields = _config_and_fields(sender)
    if config is not None and fields is not None:
        instance.__dict__[_SNAPSHOT] = tuple(instance.__dict__.get(f, _MISSING) for f in fields)


def _before_save(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    """Only where the snapshot cannot tell: read what the stored row said."""
    if kwargs.get("raw") or instance._state.adding or instance.pk is None:
        return
    config, fields = _config_and_fields(sender)
    if config is None:
        return
    snapshot = instance.__dict__.get(_SNAPSHOT)
    if fields is not None and snapshot is not None and _MISSING not in snapshot:
        return
    if not _may_publish(config, fields, kwargs.get("update_fields")):
        return
    stored = sender._base_manager.filter(pk=instance.pk).first()
    instance.__dict__[_WAS_PUBLISHED] = stored is not None and _is_published(stored, config)


def _after_save(
    sender: type[models.Model],
    instance: models.Model,
    created: bool,
    raw: bool = False,
    update_fields: Any = None,
    **kwargs: Any,
) -> None:
    if raw:
        return
    config, fields = _config_and_fields(sender)
    if config is None or not _may_publish(config, fields, update_fields):
        return
    try:
        was = False if created else _was_published(instance, config, fields)
        now = _is_published(instance, config)
        if fields is not None:
            instance.__dict__[_SNAPSHOT] = tuple(instance.__dict__.get(f) for f in fields)
        instance.__dict__.pop(_WAS_PUBLISHED, None)
        if now and not was and get_adapter().wants_image(instance, config):
            _queue(instance, config)
    except Exception:
        logger.exception("Could not queue a header image for %s %s", config.label, instance.pk)


def _queue(instance: models.Model, config: ContentConfig) -> None:
    from .services import AlreadyHasImage, GenerationInProgress, queue_generation

    try:
        # wants_image() has just read the field on the instance that was saved.
        row = queue_generation(instance, overwrite=config.regenerate, image_checked=True)
    except (AlreadyHasImage, GenerationInProgress) as exc:
        logger.info("No header image queued for %s %s: %s", config.label, instance.pk, exc)
    except ValidationError as exc:
        logger.error(
            "No header image queued for %s %s: invalid input: %s",
            config.label,
            instance.pk,
            "; ".join(exc.messages),
        )
    else:
        logger.info("Header image %s queued for %s %s", row.pk, config.label, instance.pk)


def _may_publish(config: ContentConfig, fields: Any, update_fields: Any) -> bool:
    """Whether a save limited to ``update_fields`` can change publication."""
    if update_fields is None:
        return True
    meta = config.model._meta
    touched = {meta.get_field(name).attname for name in update_fields}  # type: ignore[union-attr]
    image_only = {config.image_model_field.attname}
    if config.alt_text_field:  # attached with the image, or edited in the admin
        image_only.add(meta.get_field(config.alt_text_field).attname)  # type: ignore[union-attr]
    image_field = config.image_model_field
    for dimension in ("width_field", "height_field"):
        if getattr(image_field, dimension, None):
            image_only.add(getattr(image_field, dimension))
    if touched <= image_only:
        return False
    return fields is None or bool(touched & set(fields))


def _was_published(instance: models.Model, config: ContentConfig, fields: Any) -> bool:
    if _WAS_PUBLISHED in instance.__dict__:
        return instance.__dict__[_WAS_PUBLISHED]
    snapshot = instance.__dict__.get(_SNAPSHOT)
    if fields is None or snapshot is None or _MISSING in snapshot:
        return False
    # Judge the old values with the same rule, on a stand-in carrying them.
    before = config.model.__new__(config.model)
    before.__dict__.update(zip(fields, snapshot, strict=True))
    return _is_published(before, config)


def _is_published(obj: models.Model, config: ContentConfig) -> bool:
    return get_adapter().is_published(obj, config)
