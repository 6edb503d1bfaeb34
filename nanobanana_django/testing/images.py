"""Images the emulators serve: real ones, cheap to make, and broken ones made on purpose."""

from __future__ import annotations

import hashlib
import io
import struct
import threading
import zlib

from PIL import Image

__all__ = ["JPEG_HEADER", "bomb_png", "png_header", "render_image"]


def render_image(seed: str, size: tuple[int, int], output_format: str) -> bytes:
    """Render a two-colour diagonal gradient, colours derived from ``seed``.

    Cheap on purpose (4K: a PNG in under half a second, a JPEG in about 0.1 s): what
    matters is a real, decodable image of the right size and format, different for each
    prediction. ``output_format`` is ``"png"``, else JPEG.
    """
    digest = hashlib.sha256(seed.encode()).digest()
    first, second = tuple(digest[0:3]), tuple(digest[3:6])
    mask = Image.linear_gradient("L").rotate(45, resample=Image.Resampling.BILINEAR, fillcolor=128)
    tile = Image.composite(
        Image.new("RGB", mask.size, first), Image.new("RGB", mask.size, second), mask
    )
    # Blend at 256x256 and scale up: twice as fast as blending at full size.
    image = tile.resize(size, Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    if output_format == "png":
        image.save(buffer, "PNG", compress_level=1)
    else:
        image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int, bit_depth: int = 8, colour_type: int = 2) -> bytes:
    """The signature and ``IHDR`` of a PNG: what a client reads before the pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)


JPEG_HEADER = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
"""The start of a JFIF file, for streams that only look like a JPEG."""

_BOMB_SIDE = 30_000
_bomb_lock = threading.Lock()
_bomb_cache: bytes | None = None


def bomb_png() -> bytes:
    """A valid 30000x30000 1-bit PNG: ~110 KB on the wire, 900 Mpx (112 MB) decoded."""
    global _bomb_cache
    with _bomb_lock:
        if _bomb_cache is None:
            row = b"\x00" * (1 + (_BOMB_SIDE + 7) // 8)
            compressor = zlib.compressobj(9)
            parts = [compressor.compress(row) for _ in range(_BOMB_SIDE)]
            parts.append(compressor.flush())
            _bomb_cache = (
                png_header(_BOMB_SIDE, _BOMB_SIDE, bit_depth=1, colour_type=0)
                + _png_chunk(b"IDAT", b"".join(parts))
                + _png_chunk(b"IEND", b"")
            )
        return _bomb_cache
