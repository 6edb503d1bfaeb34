"""Content models registered in ``NANOBANANA["MODELS"]``, and how to read them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import models
from django.dispatch import receiver
from django.template import TemplateSyntaxError
from django.utils import timezone
from django.utils.html import strip_tags
from django.utils.module_loading import import_string

from . import grounding as grounding_
from .conf import app_settings
from .presets import get_presets, unknown_preset
from .prompts import compile_template
from .targets import AttachTarget, target_for

MAX_TITLE_IN_PROMPT = 300
MAX_TOPIC_IN_PROMPT = 300

OPTION_KEYS = (
    "title_field",
    "topic_field",
    "image_field",
    "publish",
    "regenerate",
    "prompt_template",
    "input",
    "provider",
    "preset",
    "daily_budget",
    "monthly_budget",
    "grounding",
    "references",
)


@dataclass(frozen=True)
class PublishRule:
    """When an object counts as published, and which fields can change that."""

    description: str
    check: Callable[[models.Model], bool]
    #: Field attnames the rule reads; ``None`` when it is a callable that may read anything.
    fields: tuple[str, ...] | None

    def is_published(self, obj: models.Model) -> bool:
        return bool(self.check(obj))


@dataclass(frozen=True)
class ContentConfig:
    """How one content model provides a title and a topic, and stores its image."""

    label: str
    model: type[models.Model]
    title_field: str
    image_field: str
    topic_field: str | None = None
    publish: PublishRule | None = None
    regenerate: bool = False
    prompt_template: str | None = None
    input: dict[str, Any] = field(default_factory=dict)
    #: The provider alias for this model's images (default: ``NANOBANANA["PROVIDER"]``).
    provider: str | None = None
    #: The name of this model's default preset (:mod:`nanobanana_django.presets`).
    preset: str | None = None
    #: This model's own caps, on top of the site's (``DAILY_BUDGET``, ``MONTHLY_BUDGET``).
    daily_budget: Decimal | None = None
    monthly_budget: Decimal | None = None
    #: ``"web"``, ``"image"`` or ``"off"`` (:mod:`nanobanana_django.grounding`), over ``input``.
    grounding: str | None = None
    #: The name of the reference set sent with this model's prompts (docs/references.md).
    references: str | None = None

    @property
    def image_model_field(self) -> models.Field:
        return self.model._meta.get_field(self.image_field)

    @property
    def target(self) -> AttachTarget:
        """How images are put on :attr:`image_field` (:mod:`nanobanana_django.targets`)."""
        target = target_for(self.image_model_field)
        if target is None:
            raise ImproperlyConfigured(_no_target(self.label, self.image_field))
        return target

    def title_of(self, obj: models.Model) -> str:
        return _clean(resolve(obj, self.title_field), MAX_TITLE_IN_PROMPT)

    def topic_of(self, obj: models.Model) -> str:
        if not self.topic_field:
            return ""
        return _clean(resolve(obj, self.topic_field), MAX_TOPIC_IN_PROMPT)

    def has_image(self, obj: models.Model, *, fresh: bool = True) -> bool:
        """Whether the image field is set: in the database (``fresh``) or on ``obj``."""
        column = self.image_model_field.attname
        if not fresh:
            return bool(getattr(obj, column))
        value = type(obj)._base_manager.filter(pk=obj.pk).values_list(column, flat=True).first()
        return bool(value)

    def without_image(self, queryset: models.QuerySet) -> models.QuerySet:
        """The objects of ``queryset`` whose image field is empty."""
        return queryset.filter(self.target.is_empty_q(self.image_model_field))


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
    config = find_config(label)
    if config is None:
        raise ImproperlyConfigured(
            f"{label} is not registered for header images. Add it to NANOBANANA['MODELS'], "
            "for example {'" + label + "': {'title_field': 'title', 'image_field': "
            "'header_image'}}."
        )
    return config


def find_config(label: str) -> ContentConfig | None:
    """The registration of ``"app_label.Model"``, or ``None``."""
    return _configs().get(label.lower())


def config_for_stored(model: type[models.Model]) -> ContentConfig:
    """The registration a generation row of ``model`` was made under.

    Rows point at the concrete model (that is what a content type stores), so a proxy
    registered on its own is found through the model it stands for; the concrete
    model's own registration, if any, comes first.
    """
    config = find_config(model._meta.label)
    if config is not None:
        return config
    concrete = model._meta.concrete_model
    for candidate in _configs().values():
        if candidate.model._meta.proxy and candidate.model._meta.concrete_model is concrete:
            return candidate
    return get_config(model)  # raises, naming the fix


def registered_configs() -> list[ContentConfig]:
    return list(_configs().values())


@lru_cache(maxsize=1)
def _configs() -> dict[str, ContentConfig]:
    return {
        label.lower(): build_config(label, options)
        for label, options in app_settings.MODELS.items()
    }


@receiver(setting_changed)
def _forget_configs(setting: str, **kwargs: Any) -> None:
    if setting == "NANOBANANA":
        _configs.cache_clear()


def build_config(label: str, options: dict[str, Any]) -> ContentConfig:
    """Read and check one ``NANOBANANA["MODELS"]`` entry."""
    where = f"NANOBANANA['MODELS'][{label!r}]"
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        raise ImproperlyConfigured(
            f"{where}: no installed model {label!r}. Use 'app_label.ModelName' of an installed app."
        ) from None
    if not isinstance(options, dict):
        raise ImproperlyConfigured(f"{where} must be a dict of options.")
    unknown = set(options) - set(OPTION_KEYS)
    if unknown:
        raise ImproperlyConfigured(
            f"{where} has unknown keys {sorted(unknown)}. Allowed: {', '.join(OPTION_KEYS)}."
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
    if target_for(image_model_field) is None:
        raise ImproperlyConfigured(f"{where}['image_field']: {_no_target(label, image_field)}")
    input_options = options.get("input") or {}
    if not isinstance(input_options, dict):
        raise ImproperlyConfigured(f"{where}['input'] must be a dict of model inputs.")
    template = options.get("prompt_template")
    if template is not None:
        try:
            compile_template(template)
        except (TemplateSyntaxError, TypeError) as exc:
            raise ImproperlyConfigured(f"{where}['prompt_template'] is not valid: {exc}") from None
    return ContentConfig(
        label=label,
        model=model,
        title_field=options["title_field"],
        topic_field=options.get("topic_field") or None,
        image_field=image_field,
        publish=_publish_rule(model, options.get("publish"), where),
        regenerate=bool(options.get("regenerate", False)),
        prompt_template=template,
        input=dict(input_options),
        provider=_provider_alias(options.get("provider"), where),
        preset=_preset_name(options.get("preset"), where),
        daily_budget=_budget(options.get("daily_budget"), f"{where}['daily_budget']"),
        monthly_budget=_budget(options.get("monthly_budget"), f"{where}['monthly_budget']"),
        grounding=grounding_.setting_value(options.get("grounding"), f"{where}['grounding']"),
        references=_set_name(options.get("references"), where),
    )


def _budget(value: Any, where: str) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        amount = Decimal("NaN")
    if isinstance(value, bool) or not amount.is_finite() or amount < 0:
        raise ImproperlyConfigured(f"{where} is {value!r}; give an amount such as '5.00'.")
    return amount


def _provider_alias(value: Any, where: str) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ImproperlyConfigured(
            f"{where}['provider'] must be a provider alias such as 'gemini', as a string."
        )
    return value


def _set_name(value: Any, where: str) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ImproperlyConfigured(
            f"{where}['references'] must be the name of a reference set, such as 'brand', as "
            "a string (docs/references.md)."
        )
    return value


def _preset_name(value: Any, where: str) -> str | None:
    if value in (None, ""):
        return None
    if value not in get_presets():
        raise ImproperlyConfigured(f"{where}['preset']: {unknown_preset(value)}")
    return value


def _publish_rule(model: type[models.Model], spec: Any, where: str) -> PublishRule | None:
    """Turn the ``publish`` option into a rule.

    - ``{"field": "is_published"}``: a boolean field is true;
    - ``{"field": "published_at"}``: a date/datetime field is set and not in the future;
    - ``{"field": "status", "values": ["published"]}`` (or ``"value"``): equals one of them;
    - ``"myapp.rules.is_published"``: a callable taking the object.
    """
    where = f"{where}['publish']"
    if spec is None:
        return None
    if isinstance(spec, str):
        try:
            function = import_string(spec)
        except ImportError as exc:
            raise ImproperlyConfigured(f"{where}: cannot import {spec!r} ({exc}).") from None
        if not callable(function):
            raise ImproperlyConfigured(f"{where}: {spec!r} is not callable.")
        return PublishRule(description=f"{spec}(obj)", check=function, fields=None)
    if callable(spec):
        name = getattr(spec, "__qualname__", repr(spec))
        return PublishRule(description=f"{name}(obj)", check=spec, fields=None)
    if not isinstance(spec, dict) or not spec.get("field"):
        raise ImproperlyConfigured(
            f"{where} must be {{'field': ...}} (optionally with 'values') or a dotted path to "
            "a callable."
        )
    unknown = set(spec) - {"field", "value", "values"}
    if unknown:
        raise ImproperlyConfigured(f"{where} has unknown keys {sorted(unknown)}.")
    name = spec["field"]
    try:
        model_field = model._meta.get_field(name)
    except FieldDoesNotExist:
        raise ImproperlyConfigured(f"{where}: {model._meta.label} has no field {name!r}.") from None
    attname = model_field.attname
    if "values" in spec or "value" in spec:
        values = spec["values"] if "values" in spec else [spec["value"]]
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise ImproperlyConfigured(f"{where}['values'] must be a list, e.g. ['published'].")
        allowed = frozenset(values)
        return PublishRule(
            description=f"{name} in {sorted(map(str, allowed))}",
            check=lambda obj: getattr(obj, attname) in allowed,
            fields=(attname,),
        )
    if isinstance(model_field, (models.DateTimeField, models.DateField)):
        is_datetime = isinstance(model_field, models.DateTimeField)

        def check(obj: models.Model) -> bool:
            value = getattr(obj, attname)
            if value is None:
                return False
            now = timezone.now()  # aware when USE_TZ, naive otherwise, like the field
            if not is_datetime:
                now = timezone.localtime(now).date() if timezone.is_aware(now) else now.date()
            return value <= now

        return PublishRule(
            description=f"{name} is set and not in the future", check=check, fields=(attname,)
        )
    if isinstance(model_field, models.BooleanField):
        return PublishRule(
            description=f"{name} is true",
            check=lambda obj: bool(getattr(obj, attname)),
            fields=(attname,),
        )
    raise ImproperlyConfigured(
        f"{where}: {model._meta.label}.{name} is neither a boolean nor a date field; give "
        "'values' too, e.g. {'field': '" + name + "', 'values': ['published']}."
    )


def _no_target(label: str, image_field: str) -> str:
    return (
        f"{label}.{image_field} must be an ImageField, a FileField or a ForeignKey to "
        "nanobanana_django.GeneratedImage (or a field that a class in NANOBANANA['TARGETS'] "
        "accepts)."
    )
