"""Content models registered in ``NANOBANANA["MODELS"]``, and how to read them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models
from django.utils.html import strip_tags

from .conf import app_settings

MAX_TITLE_IN_PROMPT = 300
MAX_TOPIC_IN_PROMPT = 300

DEFAULT_PROMPT = (
    "Editorial header image for an article titled “{title}”{about}. "
    "Photographic, natural light, one clear subject, depth and negative space for a wide "
    "blog header. No text, letters, logos or watermarks in the image."
)


@dataclass(frozen=True)
class ContentConfig:
    """How one content model provides a title and a topic and stores its image."""

    label: str
    model: type[models.Model]
    title_field: str
    image_field: str
    topic_field: str | None = None
    input: dict[str, Any] = field(default_factory=dict)

    @property
    def image_model_field(self) -> models.Field:
        return self.model._meta.get_field(self.image_field)

    @property
    def image_is_foreign_key(self) -> bool:
        return isinstance(self.image_model_field, models.ForeignKey)

    def title_of(self, obj: models.Model) -> str:
        return _clean(resolve(obj, self.title_field), MAX_TITLE_IN_PROMPT)

    def topic_of(self, obj: models.Model) -> str:
        if not self.topic_field:
            return ""
        return _clean(resolve(obj, self.topic_field), MAX_TOPIC_IN_PROMPT)

    def has_image(self, obj: models.Model) -> bool:
        """Whether the object's image field is set, as stored in the database now."""
        column = self.image_model_field.attname
        value = type(obj)._base_manager.filter(pk=obj.pk).values_list(column, flat=True).first()
        return bool(value)

    def without_image(self, queryset: models.QuerySet) -> models.QuerySet:
        """The objects of ``queryset`` whose image field is empty."""
        column = self.image_model_field.attname
        empty = models.Q(**{f"{column}__isnull": True})
        if not self.image_is_foreign_key:
            empty |= models.Q(**{column: ""})
        return queryset.filter(empty)

    def build_prompt(self, obj: models.Model) -> str:
        title = self.title_of(obj) or str(obj)
        topic = self.topic_of(obj)
        return DEFAULT_PROMPT.format(title=title, about=f", about {topic}" if topic else "")


def resolve(obj: Any, path: str) -> Any:
    """Follow ``a.b.c`` (attributes or relations), calling any callable on the way."""
    value = obj
    for part in path.split("."):
        if value is None:
            return None
        value = getattr(value, part)
        if callable(value) and not isinstance(value, models.Model):
            value = value()
    return value


def _clean(value: Any, limit: int) -> str:
    """Plain text: tags stripped, whitespace collapsed, at most ``limit`` characters."""
    if value is None:
        return ""
    text = " ".join(strip_tags(str(value)).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def get_config(model: type[models.Model] | models.Model | str) -> ContentConfig:
    """The registration of ``model`` (a class, an instance or ``"app_label.Model"``).

    Raises ``ImproperlyConfigured`` naming the problem and the fix.
    """
    label = model if isinstance(model, str) else model._meta.label
    registered = {key.lower(): (key, value) for key, value in app_settings.MODELS.items()}
    if label.lower() not in registered:
        raise ImproperlyConfigured(
            f"{label} is not registered for header images. Add it to NANOBANANA['MODELS'], "
            "for example {'" + label + "': {'title_field': 'title', 'image_field': "
            "'header_image'}}."
        )
    key, options = registered[label.lower()]
    return build_config(key, options)


def registered_configs() -> list[ContentConfig]:
    return [build_config(label, options) for label, options in app_settings.MODELS.items()]


def build_config(label: str, options: dict[str, Any]) -> ContentConfig:
    where = f"NANOBANANA['MODELS'][{label!r}]"
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        raise ImproperlyConfigured(
            f"{where}: no installed model {label!r}. Use 'app_label.ModelName' of an installed app."
        ) from None
    unknown = set(options) - {"title_field", "topic_field", "image_field", "input"}
    if unknown:
        raise ImproperlyConfigured(
            f"{where} has unknown keys {sorted(unknown)}. Allowed: title_field, topic_field, "
            "image_field, input."
        )
    for key in ("title_field", "image_field"):
        if not options.get(key):
            raise ImproperlyConfigured(f"{where} needs {key!r}.")
    for key in ("title_field", "topic_field"):
        path = options.get(key)
        if path and not hasattr(model, path.split(".")[0]):
            raise ImproperlyConfigured(
                f"{where}[{key!r}]: {label} has no field or attribute {path.split('.')[0]!r}."
            )
    image_field = options["image_field"]
    try:
        image_model_field = model._meta.get_field(image_field)
    except FieldDoesNotExist:
        raise ImproperlyConfigured(
            f"{where}['image_field']: {label} has no field {image_field!r}."
        ) from None
    if not _can_hold_image(image_model_field):
        raise ImproperlyConfigured(
            f"{where}['image_field']: {label}.{image_field} must be an ImageField, a "
            "FileField or a ForeignKey to nanobanana_django.GeneratedImage."
        )
    input_options = options.get("input") or {}
    if not isinstance(input_options, dict):
        raise ImproperlyConfigured(f"{where}['input'] must be a dict of model inputs.")
    return ContentConfig(
        label=label,
        model=model,
        title_field=options["title_field"],
        topic_field=options.get("topic_field") or None,
        image_field=image_field,
        input=dict(input_options),
    )


def _can_hold_image(model_field: Any) -> bool:
    if isinstance(model_field, models.FileField):
        return True
    if isinstance(model_field, models.ForeignKey):
        target = model_field.remote_field.model
        return getattr(target, "_meta", None) is not None and (
            target._meta.label == "nanobanana_django.GeneratedImage"
        )
    return False
