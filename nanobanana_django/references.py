"""Reference images: brand kits (:class:`~.models.ReferenceSet`) and a request's own images,
checked and resolved into ``GeneratedImage.reference_images`` before anything is sent.

Which set goes with a prompt: the sets the call names (``references=``), else the one named by
the picked preset, the model's registration or its default preset (the order that picks the
provider). A set's images come first, by position, then the request's own images. Every image
is checked here (a JPEG, PNG or WebP, ``MAX_REFERENCE_BYTES``, ``MAX_IMAGE_PIXELS``) and the
total against the model's image inputs, so a bad reference is a ``ValidationError`` on
``references``, never a billed call (docs/references.md).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

from .conf import app_settings
from .exceptions import ImageTooLarge, InvalidImage
from .images import ImageInfo, inspect
from .models import GeneratedImage, ReferenceImage, ReferenceSet
from .specs import ModelSpec

FIELD = "references"

ADVICE = _(
    "Use two or more reference images to carry a style: with a single one, the model tends "
    "to copy that image instead of taking its look."
)


@dataclass
class References:
    """The reference images of one request, checked, in the order they are sent."""

    #: (image, the name of the set it came with, or "" for the request's own).
    items: list[tuple[ReferenceImage, str]] = field(default_factory=list)
    stored: list[ReferenceImage] = field(default_factory=list)

    def save(self) -> list[dict[str, Any]]:
        """Store the request's uploads (images without a set) and return the row's entries."""
        for reference, _set_name in self.items:
            if reference.pk is None:
                reference.save()
                self.stored.append(reference)
        return [
            {"id": reference.pk, "name": str(reference), "set": set_name}
            for reference, set_name in self.items
        ]

    def discard(self) -> None:
        """Remove the files of uploads stored by :meth:`save` whose rows were rolled back."""
        for reference in self.stored:
            reference.image.storage.delete(reference.image.name)


def resolve(
    value: Any,
    *,
    default_set: tuple[str, str] | None,
    spec: ModelSpec,
    other_images: int = 0,
) -> References:
    """Check the references of one request; raise ``ValidationError`` on ``references``.

    ``value`` is the call's ``references=``: a set name, a :class:`ReferenceSet`, a
    :class:`ReferenceImage`, bytes or a file, or a list of them (``None``: none of its own).
    ``default_set`` is (name, who named it) from a preset or a registration; a set named
    in ``value`` replaces it. ``other_images`` counts the images sent besides references
    (an edit's parent image).
    """
    set_names, own = _split(value)
    if not set_names and default_set is not None:
        set_names = [default_set]
    errors: list[str] = []
    items: list[tuple[ReferenceImage, str]] = []
    for name, named_by in set_names:
        try:
            items.extend((image, name) for image in set_images(name, named_by))
        except ValidationError as exc:
            errors.extend(exc.messages)
    problem = count_problem(len(items) + len(own), other_images, spec)
    if problem:
        raise ValidationError({FIELD: [problem]})
    for position, item in enumerate(own, start=len(items) + 1):
        try:
            items.append((request_image(item, position), ""))
        except ValidationError as exc:
            errors.extend(exc.messages)
    for image, _name in items:
        problem = stored_problem(image) if image.pk is not None else None
        if problem:
            errors.append(problem)
    if errors:
        raise ValidationError({FIELD: errors})
    return References(items)


def store_uploads(files: Iterable[Any]) -> list[ReferenceImage]:
    """Check and store uploads (no set) to share between several requests."""
    errors, images = [], []
    for position, file in enumerate(files, start=1):
        try:
            images.append(request_image(file, position))
        except ValidationError as exc:
            errors.extend(exc.messages)
    if errors:
        raise ValidationError({FIELD: errors})
    for image in images:
        image.save()
    return images


def for_retry(row: GeneratedImage) -> list[Any] | None:
    """The ``references=`` that sends ``row``'s references again: its sets as they are now
    (an image added or removed since counts), then the request's own images."""
    if not row.reference_images:
        return None
    sets = list(dict.fromkeys(entry["set"] for entry in row.reference_images if entry.get("set")))
    own = [entry for entry in row.reference_images if not entry.get("set")]
    found = ReferenceImage.objects.in_bulk([entry["id"] for entry in own])
    missing = [entry.get("name") or str(entry["id"]) for entry in own if entry["id"] not in found]
    if missing:
        raise ValidationError(
            {
                FIELD: [
                    f"The reference image {name!r} of generation #{row.pk} was deleted; "
                    "generate again without it or with another image."
                    for name in missing
                ]
            }
        )
    return [*sets, *(found[entry["id"]] for entry in own)]


def set_images(name: str, named_by: str = "the call") -> list[ReferenceImage]:
    """The images of the set ``name`` by position, or ``ValidationError`` saying how to
    create it or fill it."""
    reference_set = ReferenceSet.objects.filter(name=name).first()
    if reference_set is None:
        raise ValidationError(
            f"There is no reference set {name!r} (named by {named_by}). Create it in the admin "
            f"({admin_page()}) with two or more images, or name another set."
        )
    images = list(reference_set.images.order_by("position", "pk"))
    if not images:
        raise ValidationError(
            f"The reference set {name!r} (named by {named_by}) has no images. Upload two or "
            f"more in the admin ({admin_page(reference_set)}), or name another set."
        )
    return images


def count_problem(references: int, other_images: int, spec: ModelSpec) -> str | None:
    """Why ``spec``'s model cannot take this many images, or ``None``."""
    if not references:
        return None
    limit = spec.image_limit
    if limit <= 0:
        return (
            f"{spec.name} takes no image inputs, so it cannot use reference images. Remove "
            "them, or send this request to a provider whose model takes images."
        )
    total = references + other_images
    if total <= limit:
        return None
    besides = " and the image being edited" if other_images else ""
    return (
        f"This request has {references} reference images{besides}: {total} images, more "
        f"than the {limit} that {spec.name} takes. Remove {total - limit} (a reference set's "
        "images count too)."
    )


def request_image(item: Any, position: int) -> ReferenceImage:
    """A request's own reference: a stored :class:`ReferenceImage`, or bytes or a file,
    checked and made into an unsaved one (no set) that :meth:`References.save` stores."""
    if isinstance(item, ReferenceImage):
        if item.pk is None:
            raise ValidationError(
                f"Reference {position} is an unsaved ReferenceImage; save it first, or pass "
                "its file."
            )
        return item
    if isinstance(item, (bytes, bytearray)):
        data, name = bytes(item), f"reference-{position}"
    elif hasattr(item, "read"):
        name = os.path.basename(getattr(item, "name", "") or "") or f"reference-{position}"
        data = read_upload(item, name)
    else:
        raise ValidationError(
            f"Reference {position} is a {type(item).__name__}; give a reference set's name, a "
            "ReferenceImage, or an image as bytes or a file."
        )
    info = check_image(data, name)
    stem = os.path.splitext(name)[0] or f"reference-{position}"
    return ReferenceImage(
        image=ContentFile(data, name=f"{stem}.{info.extension}"),
        caption=name[:200],
        size_bytes=info.size_bytes,
    )


def read_upload(file: Any, name: str) -> bytes:
    """The bytes of an uploaded file, refusing more than ``MAX_REFERENCE_BYTES`` unread."""
    limit = app_settings.MAX_REFERENCE_BYTES
    size = getattr(file, "size", None)
    if isinstance(size, int) and size > limit:
        raise ValidationError(_too_big(name, size, limit))
    if hasattr(file, "seek"):
        file.seek(0)
    data = file.read(limit + 1)
    if len(data) > limit:
        raise ValidationError(_too_big(name, None, limit))
    return data


def check_image(data: bytes, name: str) -> ImageInfo:
    """Prove ``data`` is a JPEG, PNG or WebP image within the size and pixel caps."""
    limit = app_settings.MAX_REFERENCE_BYTES
    if len(data) > limit:
        raise ValidationError(_too_big(name, len(data), limit))
    if not data:
        raise ValidationError(f"The reference image {name!r} is empty. Upload the image again.")
    try:
        return inspect(io.BytesIO(data), max_pixels=app_settings.MAX_IMAGE_PIXELS)
    except ImageTooLarge:
        raise ValidationError(
            f"The reference image {name!r} has more than {app_settings.MAX_IMAGE_PIXELS:,} "
            "pixels (NANOBANANA['MAX_IMAGE_PIXELS']). Scale it down, e.g. to 2048 pixels on "
            "its longer side, and upload it again."
        ) from None
    except InvalidImage:
        raise ValidationError(
            f"The reference image {name!r} is not a JPEG, PNG or WebP image (or it is "
            "damaged). Upload it as one of those."
        ) from None


def stored_problem(reference: ReferenceImage) -> str | None:
    """Why a stored reference cannot be sent, from what its row records (no download)."""
    name = str(reference)
    if not reference.image:
        return f"The reference image #{reference.pk} has no file. Upload one or delete it."
    size = reference.size_bytes
    if size is None:  # made in code, not through the admin: measure once, remember
        try:
            size = reference.image.size
        except OSError:
            return (
                f"The reference image {name!r} is missing from storage. Upload it again or "
                "remove it from its set."
            )
        ReferenceImage.objects.filter(pk=reference.pk).update(size_bytes=size)
    if size > app_settings.MAX_REFERENCE_BYTES:
        return _too_big(name, size, app_settings.MAX_REFERENCE_BYTES)
    if (reference.width or 0) * (reference.height or 0) > app_settings.MAX_IMAGE_PIXELS:
        return (
            f"The reference image {name!r} is {reference.width}x{reference.height} pixels, "
            f"more than {app_settings.MAX_IMAGE_PIXELS:,} (NANOBANANA['MAX_IMAGE_PIXELS']). "
            "Upload a smaller copy."
        )
    return None


def admin_page(reference_set: ReferenceSet | None = None) -> str:
    """Where an editor creates or fills a set: its admin URL, or the menu path without one."""
    try:
        if reference_set is not None:
            return reverse("admin:nanobanana_django_referenceset_change", args=[reference_set.pk])
        return reverse("admin:nanobanana_django_referenceset_add")
    except NoReverseMatch:
        return "Header images > Reference sets"


def _split(value: Any) -> tuple[list[tuple[str, str]], list[Any]]:
    """(the set names the call gives, its own images)."""
    if value is None:
        return [], []
    items: Iterable[Any] = (
        [value]
        if isinstance(value, (str, bytes, bytearray, ReferenceSet, ReferenceImage))
        or hasattr(value, "read")
        else value
    )
    sets, own = [], []
    for item in items:
        if isinstance(item, str):
            sets.append((item, "the call"))
        elif isinstance(item, ReferenceSet):
            sets.append((item.name, "the call"))
        else:
            own.append(item)
    return sets, own


def _too_big(name: str, size: int | None, limit: int) -> str:
    actual = f" ({_size(size)})" if size else ""
    return (
        f"The reference image {name!r}{actual} is larger than the {_size(limit)} allowed "
        "(NANOBANANA['MAX_REFERENCE_BYTES']). Save it smaller (e.g. as a JPEG) and upload it "
        "again."
    )


def _size(size: int) -> str:
    for unit, factor in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"
