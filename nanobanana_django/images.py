"""Proof that bytes from a provider are an image we are willing to store."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO

from PIL import Image, UnidentifiedImageError

from .exceptions import ImageTooLarge, InvalidImage

#: Pillow format name -> (file extension, MIME type).
ACCEPTED_FORMATS = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
}

SPOOL_IN_MEMORY_BYTES = 4 * 1024 * 1024
"""Downloads larger than this go to a temporary file instead of memory."""


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    size_bytes: int

    @property
    def extension(self) -> str:
        return ACCEPTED_FORMATS[self.format][0]

    @property
    def content_type(self) -> str:
        return ACCEPTED_FORMATS[self.format][1]


def spool(chunks: Iterable[bytes], max_bytes: int) -> IO[bytes]:
    """Write ``chunks`` to a spooled temporary file, refusing more than ``max_bytes``.

    Holds one copy at most: small images stay in memory, large ones go to disk.
    The caller closes the returned file.
    """
    buffer = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES)  # noqa: SIM115
    total = 0
    try:
        for chunk in chunks:
            total += len(chunk)
            if total > max_bytes:
                raise ImageTooLarge(
                    f"The image is larger than the {_mib(max_bytes)} limit "
                    "(NANOBANANA['MAX_IMAGE_BYTES']); it was not stored."
                )
            buffer.write(chunk)
    except BaseException:
        buffer.close()
        raise
    buffer.seek(0)
    return buffer


def inspect(file: IO[bytes], *, max_pixels: int) -> ImageInfo:
    """Identify the image in ``file`` and check it, leaving the file at position 0.

    Reads the header for the format and size, refuses more than ``max_pixels``
    before decoding anything (the decompression-bomb guard), then lets Pillow verify
    the data. Raises :class:`InvalidImage` or :class:`ImageTooLarge`.
    """
    file.seek(0, 2)
    size_bytes = file.tell()
    file.seek(0)
    if size_bytes == 0:
        raise InvalidImage("The provider returned an empty file instead of an image.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as image:
                width, height = image.size
                image_format = image.format or ""
                if width * height > max_pixels:
                    raise ImageTooLarge(
                        f"The image is {width}x{height} pixels, more than the "
                        f"{max_pixels:,} allowed (NANOBANANA['MAX_IMAGE_PIXELS'])."
                    )
                if image_format not in ACCEPTED_FORMATS:
                    raise InvalidImage(
                        f"The provider returned a {image_format or 'unknown'} file; "
                        f"accepted formats are {', '.join(ACCEPTED_FORMATS)}."
                    )
                image.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(
            "The image declares a size too large to decode safely; it was not stored."
        ) from None
    except UnidentifiedImageError:
        raise InvalidImage(
            "The provider returned data that is not an image; it was not stored."
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(f"The image data is damaged ({exc}); it was not stored.") from None
    if image_format == "JPEG" and not _jpeg_is_complete(file, size_bytes):
        raise InvalidImage("The JPEG image is cut short; it was not stored.")
    file.seek(0)
    return ImageInfo(format=image_format, width=width, height=height, size_bytes=size_bytes)


def _jpeg_is_complete(file: IO[bytes], size_bytes: int) -> bool:
    """Pillow's ``verify()`` does not read JPEG scan data; a whole file ends in EOI."""
    file.seek(max(0, size_bytes - 64))
    return b"\xff\xd9" in file.read()


def _mib(value: int) -> str:
    return f"{value / (1024 * 1024):.0f} MiB"
