"""Smaller copies of a stored image, for the ``srcset`` of ``{% header_image %}``.

They are made once, when the image is stored, from the bytes already at hand (no download
back from S3), in the image's own format, and saved through the same storage next to it:
``.../<uuid>.jpg`` gets ``.../<uuid>-480w.jpg`` and so on. Only widths narrower than the
image are made (``NANOBANANA["RENDITION_WIDTHS"]``). Making them is a convenience: a
failure is logged and the image is stored without them, never a failed generation.
"""

from __future__ import annotations

import io
import logging
import posixpath
from typing import IO, Any

from django.core.files.base import ContentFile
from django.core.files.storage import Storage
from PIL import Image

from .conf import app_settings
from .images import ImageInfo

logger = logging.getLogger(__name__)

SAVE_OPTIONS: dict[str, dict[str, Any]] = {
    "JPEG": {"quality": 85, "optimize": True, "progressive": True},
    "WEBP": {"quality": 82},
    "PNG": {"optimize": True},
}


def make_renditions(
    file: IO[bytes], info: ImageInfo, name: str, storage: Storage
) -> dict[str, str]:
    """Save a copy of ``file`` (stored as ``name``) at each configured width narrower than
    the image; returns ``{str(width): storage name}``, ``{}`` when none could be made."""
    widths = [width for width in app_settings.RENDITION_WIDTHS if width < info.width]
    if not widths:
        return {}
    saved: dict[str, str] = {}
    try:
        file.seek(0)
        with Image.open(file) as original:
            if info.format == "JPEG":  # decode at 1/2, 1/4... when still wide enough: faster
                original.draft(original.mode, (max(widths), 1))
            stem, extension = posixpath.splitext(name)
            for width in sorted(widths, reverse=True):
                height = max(1, round(info.height * width / info.width))
                copy = original.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
                buffer = io.BytesIO()
                copy.save(buffer, format=info.format, **SAVE_OPTIONS.get(info.format, {}))
                saved[str(width)] = storage.save(
                    f"{stem}-{width}w{extension}", ContentFile(buffer.getvalue())
                )
    except Exception:
        logger.exception("Renditions of %s could not be made; it is served at full size", name)
        delete_renditions(saved, storage)
        return {}
    finally:
        file.seek(0)
    return dict(sorted(saved.items(), key=lambda item: int(item[0])))


def delete_renditions(renditions: dict[str, str], storage: Storage) -> None:
    """Remove the files of ``renditions``; a missing one is no error."""
    for rendition in renditions.values():
        try:
            storage.delete(rendition)
        except Exception:
            logger.warning("Rendition %s could not be deleted", rendition)
