"""Pixel sizes that Nano Banana models return for an aspect ratio and a resolution.

The 1K sizes are the ones Google documents for the Gemini image models; 2K and 4K are
exact multiples of them. The offline placeholder provider and the Replicate emulator
both render at these sizes, so that what a site sees offline matches production.
"""

from __future__ import annotations

ASPECT_RATIOS: tuple[str, ...] = (
    "1:1",
    "1:4",
    "1:8",
    "2:3",
    "3:2",
    "3:4",
    "4:1",
    "4:3",
    "4:5",
    "5:4",
    "8:1",
    "9:16",
    "16:9",
    "21:9",
)
"""Every concrete aspect ratio (``match_input_image`` is not one: it follows the input)."""

RESOLUTIONS: tuple[str, ...] = ("1K", "2K", "4K")

_SIZES_1K: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "1:4": (512, 2048),
    "1:8": (384, 3072),
    "2:3": (848, 1264),
    "3:2": (1264, 848),
    "3:4": (896, 1200),
    "4:1": (2048, 512),
    "4:3": (1200, 896),
    "4:5": (928, 1152),
    "5:4": (1152, 928),
    "8:1": (3072, 384),
    "9:16": (768, 1376),
    "16:9": (1376, 768),
    "21:9": (1584, 672),
}

_SCALE = {"1K": 1, "2K": 2, "4K": 4}

FALLBACK_ASPECT_RATIO = "16:9"
"""Used where the ratio is ``match_input_image`` but there is no input image to match."""


def image_size(aspect_ratio: str, resolution: str = "1K") -> tuple[int, int]:
    """Return ``(width, height)`` in pixels for an aspect ratio such as ``"16:9"``.

    ``match_input_image`` falls back to :data:`FALLBACK_ASPECT_RATIO`. Raises
    ``ValueError`` for an unknown ratio or resolution.
    """
    if aspect_ratio == "match_input_image":
        aspect_ratio = FALLBACK_ASPECT_RATIO
    try:
        width, height = _SIZES_1K[aspect_ratio]
    except KeyError:
        raise ValueError(f"unknown aspect ratio {aspect_ratio!r}") from None
    try:
        scale = _SCALE[resolution]
    except KeyError:
        raise ValueError(f"unknown resolution {resolution!r}") from None
    return width * scale, height * scale
