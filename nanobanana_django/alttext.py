"""Alt text for every generated image: written when the image is stored, kept on the row,
and copied to the content model's ``alt_text_field`` when the image is attached.

Who writes it is ``NANOBANANA["ALT_TEXT"]``:

- unset (the default): :func:`default_alt_text`, from the object's title and topic, or the
  prompt's subject for an image without an object; deterministic, no extra request;
- ``"model"``: the words the model returned with the image, where the route returns any
  (the Gemini API does; Replicate's Nano Banana returns only an image), else the default;
- a dotted path to a callable ``(row, obj) -> str``: yours, else the default when it
  raises or returns nothing (a generation never fails because of its alt text).

Alt text is short (at most :data:`MAX_LENGTH` characters, cut at a word) and never starts
with "image of": a screen reader already says it is an image.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.db import models, transaction
from django.utils.html import strip_tags
from django.utils.module_loading import import_string

from .conf import app_settings
from .registry import ContentConfig, config_for_stored

if TYPE_CHECKING:
    from .models import GeneratedImage

logger = logging.getLogger(__name__)

MAX_LENGTH = 125
"""Screen readers read alt text in one go; about 125 characters is the usual advice."""

MODEL = "model"
"""``ALT_TEXT = "model"``: the model's own words, where the route returns text."""

_IMAGE_OF = re.compile(
    # "Here is your image of ...", "Here's the generated picture:", "This is an illustration"
    r"^(?:(?:here\s+is|here's|this\s+is)\s+(?:an?\s+|the\s+|your\s+)?"
    r"(?:(?:generated|header|editorial)\s+)?"
    r"(?:image|picture|photo|photograph|illustration)\b(?:\s+(?:of|showing|that\s+shows))?"
    # "An image of ...", "Picture showing ..."
    r"|(?:an?\s+|the\s+)?(?:image|picture)\s+(?:of|showing|that\s+shows)\b)[\s:,.!-]*",
    re.IGNORECASE,
)
_PROMPT_LEAD = re.compile(
    r"^(?:editorial\s+)?(?:header\s+)?(?:image|picture|photo|illustration)\s+(?:of|for)\s+",
    re.IGNORECASE,
)


def alt_text_for(row: GeneratedImage, model_text: str | None = None) -> str:
    """The alt text of ``row``'s image, by ``ALT_TEXT``, when it is stored; never raises,
    never empty.

    The default was written when the row was recorded (:func:`initial_alt_text`, with the
    object in hand), so storing an image does not read its object again. Edits and steps
    are described from their parent here, however they were recorded.
    """
    try:
        setting = app_settings.ALT_TEXT
    except ImproperlyConfigured:
        logger.exception("Generation %s: NANOBANANA['ALT_TEXT'] is not valid", row.pk)
        setting = None
    if setting == MODEL:
        text = clean_alt_text(model_text or "")
        if _describes(text):
            return text
    elif setting:
        text = _from_callable(setting, row, _object_of(row))
        if text:
            return text
    derived = bool(row.parent_id) and row.kind in ("edit", "step")
    if row.alt_text and not derived:
        return row.alt_text
    try:
        text = default_alt_text(row)
    except Exception:
        logger.exception("Generation %s: the default alt text could not be written", row.pk)
        text = ""
    return text or clean_alt_text(row.prompt) or "Header image"


def initial_alt_text(obj: models.Model | None, config: ContentConfig | None, prompt: str) -> str:
    """The default alt text of a new generation (for ``obj``, or a bare ``prompt``)."""
    try:
        if obj is not None and config is not None:
            title = config.title_of(obj)
            if title:
                topic = config.topic_of(obj)
                return clean_alt_text(
                    f"Illustration for “{title}”" + (f": {topic}" if topic else "")
                )
        return clean_alt_text(prompt_subject(prompt))
    except Exception:
        logger.exception("The default alt text could not be written; it is left to storing")
        return ""


def default_alt_text(row: GeneratedImage, obj: models.Model | None = None) -> str:
    """Built from the object's title and topic, e.g. ``Illustration for “Our new
    pipeline”: data engineering``; without an object, from the prompt's subject.

    A post-processing step keeps its parent's alt text (the picture is the same); an
    edit adds its instruction to its parent's. ``obj`` is read only when needed.
    """
    parent = row.parent if row.parent_id else None
    if parent is not None and row.kind in ("step", "edit"):
        base = parent.alt_text or default_alt_text(parent, obj or _object_of(parent))
        if row.kind == "step" or not row.prompt:
            return base
        return clean_alt_text(f"{base} – edited: {row.prompt}")
    obj = obj if obj is not None else _object_of(row)
    return initial_alt_text(obj, _config_of(obj), row.prompt)


def prompt_subject(prompt: str) -> str:
    """The first sentence of a prompt without "Image of ..." in front: its subject."""
    text = " ".join(strip_tags(prompt or "").split())
    sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0].rstrip(".!? ")
    subject = _PROMPT_LEAD.sub("", sentence)
    return subject[:1].upper() + subject[1:]


def clean_alt_text(text: str, limit: int = MAX_LENGTH) -> str:
    """Plain, short, and without "image of": what a screen reader should say."""
    text = " ".join(strip_tags(text or "").split())
    text = text.strip("*_ ")  # Markdown emphasis, as a model may write
    inner = text[1:-1]
    if len(text) > 1 and text[0] in '"“' and text[-1] in '"”' and not set(inner) & set('"“”'):
        text = inner.strip()
    stripped = _IMAGE_OF.sub("", text, count=1)
    if stripped != text:
        text = stripped[:1].upper() + stripped[1:]
    if len(text) > limit:
        cut = text[: limit - 1]
        if " " in cut[limit // 2 :]:
            cut = cut[: cut.rfind(" ")]
        text = cut.rstrip(" ,;:–-") + "…"
    return text


def _describes(text: str) -> bool:
    """Whether the model's words describe something, not only "Here is your image."."""
    return len(text.split()) >= 3


def _from_callable(path: str, row: GeneratedImage, obj: models.Model | None) -> str:
    try:
        function = import_string(path)
        return clean_alt_text(str(function(row, obj) or ""))
    except Exception:
        logger.exception(
            "Generation %s: NANOBANANA['ALT_TEXT'] %r failed; the default alt text is used",
            row.pk,
            path,
        )
        return ""


def _object_of(row: GeneratedImage) -> models.Model | None:
    if not row.content_type_id:
        return None
    try:
        return row.content_object
    except Exception:  # a model no longer installed
        return None


def _config_of(obj: models.Model | None) -> ContentConfig | None:
    if obj is None:
        return None
    try:
        return config_for_stored(type(obj))
    except ImproperlyConfigured:
        return None


# On the content model ---------------------------------------------------------------------


def alt_field(config: ContentConfig) -> models.Field | None:
    """The registration's ``alt_text_field``, or ``None``."""
    if not config.alt_text_field:
        return None
    field = config.model._meta.get_field(config.alt_text_field)
    return field if isinstance(field, models.Field) else None


def set_alt_field(obj: models.Model, config: ContentConfig, row: GeneratedImage) -> list[str]:
    """Put ``row``'s alt text on ``obj`` (not saved); the fields to save (attach does)."""
    field = alt_field(config)
    if field is None or not row.alt_text:
        return []
    text = row.alt_text
    if field.max_length and len(text) > field.max_length:
        text = clean_alt_text(text, field.max_length)
    setattr(obj, field.attname, text)
    return [field.name]


def copy_to_object(row: GeneratedImage) -> bool:
    """After an editor changed ``row``'s alt text: copy it to the object that shows
    ``row``'s image. False when there is no such object or alt text field."""
    model = row.content_type.model_class() if row.content_type is not None else None
    if model is None:
        return False
    try:
        config = config_for_stored(model)
    except ImproperlyConfigured:
        return False
    if alt_field(config) is None:
        return False
    image_field = model._meta.get_field(row.target_field or config.image_field)
    with transaction.atomic():
        obj = model._base_manager.select_for_update().filter(pk=row.object_id).first()
        if obj is None or not _shows(obj, image_field, row):
            return False
        obj.save(update_fields=set_alt_field(obj, config, row))
    return True


def _shows(obj: models.Model, image_field: Any, row: GeneratedImage) -> bool:
    """Whether ``obj``'s image field holds ``row``'s image (a copy in another storage has
    another name: not recognised, so not overwritten)."""
    value = getattr(obj, image_field.attname)
    if isinstance(image_field, models.ForeignKey):
        return value == row.pk
    return bool(value) and str(value) == row.image.name
