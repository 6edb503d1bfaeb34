"""``{% load nanobanana %}``: ``{% header_image article %}`` renders an object's header image.

::

    {% header_image article %}
    {% header_image article sizes="(min-width: 60rem) 60rem, 100vw" class="hero" %}
    {% header_image article placeholder=False %}

gives ``<img src alt width height loading="lazy" decoding="async" srcset sizes>``, the
``srcset`` listing the renditions made when the image was stored, and ``alt`` the
registration's ``alt_text_field``, else the image's own alt text, else the title. With no
image it gives ``<div class="nanobanana-placeholder" role="img" aria-label="<title>"></div>``
(for the site's CSS to fill), or nothing with ``placeholder=False``. See docs/templates.md.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.db import models
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from ..models import GeneratedImage
from ..registry import config_for_stored

register = template.Library()

OPTIONS = ("sizes", "class", "placeholder")


@register.simple_tag
def header_image(obj: models.Model | None, **options: Any) -> SafeString:
    """The ``<img>`` of ``obj``'s registered image field, or the fallback."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise template.TemplateSyntaxError(
            f"{{% header_image %}} got unknown options {unknown}; it takes {', '.join(OPTIONS)}."
        )
    if not obj:  # None, or a missing variable (string_if_invalid)
        return SafeString("")
    if not isinstance(obj, models.Model):
        raise template.TemplateSyntaxError(
            f"{{% header_image %}} needs a model instance, not {type(obj).__name__}."
        )
    config = config_for_stored(type(obj))
    title = config.title_of(obj)
    css_class = options.get("class") or ""
    image = _image_of(obj, config.image_model_field)
    if image is None:
        if options.get("placeholder", True) is False:
            return SafeString("")
        return format_html(
            '<div class="{}" role="img" aria-label="{}"></div>',
            " ".join(filter(None, ("nanobanana-placeholder", css_class))),
            title,
        )
    url, width, height, srcset, row_alt = image
    own_alt = getattr(obj, config.alt_text_field) if config.alt_text_field else ""
    alt = own_alt or row_alt or title
    attributes: list[tuple[str, Any]] = [("src", url), ("alt", alt)]
    if width and height:
        attributes += [("width", width), ("height", height)]
    attributes += [("loading", "lazy"), ("decoding", "async")]
    if srcset:
        attributes += [("srcset", srcset), ("sizes", options.get("sizes") or "100vw")]
    if css_class:
        attributes.append(("class", css_class))
    return format_html("<img{}>", format_html_join("", ' {}="{}"', attributes))


def _image_of(
    obj: models.Model, model_field: models.Field
) -> tuple[str, int | None, int | None, str, str] | None:
    """``(url, width, height, srcset, alt text)`` of the image on ``model_field``, or ``None``."""
    if isinstance(model_field, models.ForeignKey):
        row = getattr(obj, model_field.name)
        return _from_row(row) if row is not None and row.image else None
    file = getattr(obj, model_field.attname)
    if not file:
        return None
    row = (
        GeneratedImage.objects.filter(image=file.name, status=GeneratedImage.Status.SUCCEEDED)
        .order_by("-pk")
        .first()
    )
    if row is not None:
        return _from_row(row)
    # Uploaded by hand, or copied to another storage: no renditions, and the size only
    # when the field keeps it (reading the file to measure it could mean a download).
    width_field = getattr(model_field, "width_field", None)
    height_field = getattr(model_field, "height_field", None)
    width = getattr(obj, width_field) if width_field else None
    height = getattr(obj, height_field) if height_field else None
    return file.url, width, height, "", ""


def _from_row(row: GeneratedImage) -> tuple[str, int | None, int | None, str, str]:
    storage = row.image.storage
    candidates = [(storage.url(name), int(width)) for width, name in row.renditions.items()]
    if candidates and row.width:
        candidates.append((row.image.url, row.width))
    srcset = ", ".join(f"{url} {width}w" for url, width in sorted(candidates, key=lambda c: c[1]))
    return row.image.url, row.width, row.height, srcset, row.alt_text
