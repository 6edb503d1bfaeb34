"""The images a generation sends with its prompt (the "build request" part of submit).

An edit or a step sends its parent's stored image first; then come the reference images
the row records (``GeneratedImage.reference_images``: a brand kit's and the request's own),
in order. They are read from storage at submit time, so nothing but the row is kept for
a queued generation, and they travel the way the provider takes them
(:attr:`~nanobanana_django.providers.base.Capabilities.image_inputs`).
"""

from __future__ import annotations

import io
from typing import Any

from .conf import app_settings
from .exceptions import NanoBananaError
from .images import inspect
from .models import GeneratedImage, ReferenceImage
from .providers.base import ImageInput

Kind = GeneratedImage.Kind

PARENT = "parent"
REFERENCE = "reference"


def images_for(row: GeneratedImage) -> tuple[ImageInput, ...]:
    """The images to send for ``row``: its parent's (edits and steps), then its references."""
    images = []
    if row.parent_id and row.kind in (Kind.EDIT, Kind.STEP):
        images.append(parent_image(row.parent))
    images.extend(reference_image(entry) for entry in row.reference_images)
    return tuple(images)


def parent_image(parent: GeneratedImage | None) -> ImageInput:
    if parent is None or parent.status != GeneratedImage.Status.SUCCEEDED or not parent.image:
        raise NanoBananaError(
            "The image this generation works on is gone (its generation was deleted or has "
            "no stored image), so there is nothing to send. Start again from another version.",
            code="parent_missing",
        )
    return ImageInput(
        data=_read(parent.image),
        mime_type=_mime(parent.image_format),
        name=parent.image.name or "",
        role=PARENT,
    )


def reference_image(entry: dict[str, Any]) -> ImageInput:
    """The image of one ``reference_images`` entry (``{"id": ..., "name": ...}``)."""
    reference = ReferenceImage.objects.filter(pk=entry.get("id")).first()
    if reference is None or not reference.image:
        raise NanoBananaError(
            f"The reference image {entry.get('name') or entry.get('id')!r} was deleted after "
            "this generation was queued. Retry to send the current reference set.",
            code="reference_missing",
        )
    data = _read(reference.image)
    return ImageInput(data=data, mime_type=_mime_of(data), name=reference.image.name)


def _read(field: Any) -> bytes:
    with field.storage.open(field.name, "rb") as file:
        return file.read()


def _mime(image_format: str) -> str:
    return {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}.get(
        image_format, "image/png"
    )


def _mime_of(data: bytes) -> str:
    return inspect(io.BytesIO(data), max_pixels=app_settings.MAX_IMAGE_PIXELS).content_type
