"""Bytes are stored only when they are a real image of a sane size."""

import io
import struct
import zlib

import pytest
from PIL import Image

from nanobanana_django.exceptions import ImageTooLarge, InvalidImage
from nanobanana_django.images import inspect, spool


def encode(fmt, size=(64, 32)):
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buffer, fmt)
    return buffer.getvalue()


def png_declaring(width, height):
    """A few hundred bytes whose header claims a huge 1-bit image."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("fmt, expected", [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp")])
def test_the_real_format_and_size_are_read_from_the_bytes(fmt, expected):
    data = encode(fmt)
    info = inspect(io.BytesIO(data), max_pixels=10_000)
    assert (info.format, info.extension, info.width, info.height) == (fmt, expected, 64, 32)
    assert info.size_bytes == len(data)


def test_bytes_that_are_not_an_image_are_refused():
    with pytest.raises(InvalidImage, match="not an image"):
        inspect(io.BytesIO(b"<html><body>Not found</body></html>"), max_pixels=10_000)


def test_an_empty_file_is_refused():
    with pytest.raises(InvalidImage, match="empty"):
        inspect(io.BytesIO(b""), max_pixels=10_000)


def test_a_gif_is_not_an_accepted_format():
    with pytest.raises(InvalidImage, match="GIF"):
        inspect(io.BytesIO(encode("GIF")), max_pixels=10_000)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_truncated_image_is_refused(fmt):
    data = encode(fmt, size=(256, 256))
    with pytest.raises(InvalidImage):
        inspect(io.BytesIO(data[: len(data) // 2]), max_pixels=1_000_000)


def test_more_pixels_than_allowed_are_refused_before_decoding():
    with pytest.raises(ImageTooLarge, match="MAX_IMAGE_PIXELS"):
        inspect(io.BytesIO(encode("PNG", size=(200, 200))), max_pixels=39_999)


def test_a_decompression_bomb_is_refused():
    data = png_declaring(40_000, 40_000)
    assert len(data) < 200
    with pytest.raises(ImageTooLarge):
        inspect(io.BytesIO(data), max_pixels=2_000_000_000)


def test_spool_refuses_more_than_the_cap():
    with pytest.raises(ImageTooLarge, match="MAX_IMAGE_BYTES"):
        spool(iter([b"x" * 600, b"x" * 600]), max_bytes=1000)


def test_spool_keeps_one_copy_on_disk_for_large_files():
    data = b"x" * (5 * 1024 * 1024)
    with spool(iter([data[:1024], data[1024:]]), max_bytes=len(data)) as file:
        assert file._rolled  # written to a temporary file, not held in memory
        assert file.read() == data
