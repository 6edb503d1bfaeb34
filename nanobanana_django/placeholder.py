"""Offline placeholder header images, rendered locally with Pillow.

Without an API token the app still has to show *something* plausible, so that the demo
and the tests work on a fresh machine with no network. This module paints a
deterministic gradient-and-shapes background seeded from the prompt/title, puts the
title on it, and stamps a discreet "PLACEHOLDER" badge so nobody mistakes it for a real
generation.

Everything smooth (gradient, glows, blobs, vignette) is painted on a small canvas and
upscaled, because smooth content survives upscaling and that keeps a 4K render fast;
only the text is drawn at full resolution.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import logging
import math
import os
import random
import unicodedata
from collections.abc import Sequence
from contextvars import ContextVar
from functools import lru_cache

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont, ImageOps, features

__all__ = ["MAX_SIDE", "OUTPUT_FORMATS", "render_placeholder"]

OUTPUT_FORMATS: tuple[str, ...] = ("jpg", "png")
"""Accepted ``output_format`` values (the same names Nano Banana uses)."""

MAX_SIDE = 12288
"""Largest accepted width or height.

It is the longest side :func:`nanobanana_django.dimensions.image_size` produces
(4K at 8:1 or 1:8 is 12288 x 1536), so every size the app can ask for renders.
"""

BADGE_TEXT = "PLACEHOLDER \u00b7 offline preview"

_RGB = tuple[int, int, int]
_FontT = ImageFont.FreeTypeFont | ImageFont.ImageFont

_WORK_LONG_SIDE = 400  # the low-resolution canvas for smooth content has this long
_WORK_SHORT_SIDE = 160  # side, unless that would make the short side smaller than this
_TEXT_MAX_WIDTH = 0.8  # title block width, as a fraction of the image width
_TEXT_MAX_HEIGHT = 0.5  # title block height, as a fraction of the image height
_MAX_LINES = 3  # 4 on tall, narrow images (height >= 2 x width), where lines are short
_PROMPT_CHARS = 90  # how much of a prompt to show when there is no title
_ELLIPSIS = "\u2026"


def render_placeholder(
    *,
    prompt: str,
    width: int,
    height: int,
    output_format: str = "jpg",
    title: str | None = None,
    seed: str = "",
    font_path: str | os.PathLike[str] | None = None,
) -> bytes:
    """Render a header image offline and return the encoded bytes.

    The same arguments always give the same bytes, so a placeholder does not change
    between page loads or test runs; a different ``seed`` (the generation's id, say)
    gives different art for the same title, so "regenerate" shows a new picture.
    ``output_format`` is ``"jpg"`` or ``"png"``. ``font_path`` names a TrueType or
    OpenType font for the title, for scripts Pillow's bundled font cannot show.
    Raises ``ValueError`` for another format, a size outside ``1..MAX_SIDE`` or a
    font Pillow cannot read.
    """
    fmt = _check_format(output_format)
    _check_side("width", width)
    _check_side("height", height)
    token = _font_path.set(os.fspath(font_path) if font_path else None)
    try:
        if font_path:
            _font(12)  # a bad font fails here, before any work
        seed_text = f"{title or ''}\x00{prompt}\x00{seed}"
        rng = random.Random(hashlib.sha256(seed_text.encode("utf-8")).digest())

        image = _background(rng, width, height)
        text = _display_text(prompt, title)
        shown = _renderable(text)
        # Drop a title that lost most of its letters to missing glyphs (say, all CJK):
        # a bare background reads better than a few stray characters.
        if shown and _letters(shown) * 2 >= _letters(text):
            _draw_title(image, shown)
        elif _letters(text):
            logger.warning(
                "The placeholder font cannot show most of %r, so the placeholder has no "
                "title. Set NANOBANANA['PLACEHOLDER_FONT'] to a font for this script.",
                text,
            )
        _draw_badge(image)
    finally:
        _font_path.reset(token)

    buffer = io.BytesIO()
    if fmt == "jpg":
        image.save(buffer, "JPEG", quality=88, optimize=False)
    else:
        image.save(buffer, "PNG", compress_level=2)
    return buffer.getvalue()


# --- validation -----------------------------------------------------------------------


def _check_format(output_format: str) -> str:
    """Refuse anything but the exact names the API uses, so a caller's typo surfaces
    here rather than as a placeholder in a different format than production."""
    if output_format not in OUTPUT_FORMATS:
        allowed = ", ".join(repr(f) for f in OUTPUT_FORMATS)
        raise ValueError(f"output_format must be one of {allowed}, not {output_format!r}")
    return output_format


def _check_side(name: str, value: int) -> None:
    """Refuse sizes that are not ints or could exhaust memory."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, not {type(value).__name__}")
    if not 1 <= value <= MAX_SIDE:
        raise ValueError(f"{name} must be between 1 and {MAX_SIDE}, not {value}")


# --- background -----------------------------------------------------------------------


def _hls(h: float, lightness: float, s: float) -> _RGB:
    r, g, b = colorsys.hls_to_rgb(h % 1.0, lightness, s)
    return (round(r * 255), round(g * 255), round(b * 255))


_BASE_HUES = (0.0, 0.05, 0.08, 0.33, 0.4, 0.47, 0.53, 0.58, 0.62, 0.67, 0.72, 0.8, 0.88, 0.95)
"""Starting hues, spread round the wheel but thinner in the broad yellow-green band."""


def _vivid_hue(hue: float, lightness: float) -> float:
    """Move a dark colour's hue out of the yellow/olive band, where it turns brown."""
    hue %= 1.0
    if lightness < 0.5 and 0.1 < hue < 0.24:
        return 0.08 if hue < 0.16 else 0.27
    return hue


def _palette(rng: random.Random) -> tuple[_RGB, _RGB, _RGB, _RGB]:
    """Pick a dark base, a mid colour, a bright accent and a glow colour.

    The hues are analogous (neighbours on the colour wheel) with high saturation, so
    blends stay vivid instead of passing through grey the way complementary hues do.
    The base and mid colours stay dark enough for white text to read.
    """
    base = rng.choice(_BASE_HUES) + rng.uniform(-0.02, 0.02)
    step = rng.uniform(0.06, 0.13) * (1 if rng.random() < 0.5 else -1)
    if any(0.11 < (base + k * step) % 1.0 < 0.27 for k in (1, 2)):
        step = -step  # walk away from yellow-green, where blends look olive
    dark_l, mid_l = rng.uniform(0.15, 0.23), rng.uniform(0.36, 0.46)
    accent_l, glow_l = rng.uniform(0.52, 0.62), rng.uniform(0.6, 0.7)
    dark = _hls(_vivid_hue(base, dark_l), dark_l, rng.uniform(0.6, 0.85))
    mid = _hls(_vivid_hue(base + step, mid_l), mid_l, rng.uniform(0.65, 0.9))
    accent_h = (base + 2 * step + rng.uniform(-0.02, 0.02)) % 1.0
    if 0.15 < accent_h < 0.25:  # acid lime next to white text: use gold or green
        accent_h = 0.12 if accent_h < 0.2 else 0.3
    accent = _hls(accent_h, accent_l, rng.uniform(0.75, 0.95))
    glow = _hls(base + step * 0.5, glow_l, rng.uniform(0.75, 0.95))
    return dark, mid, accent, glow


def _work_size(width: int, height: int) -> tuple[int, int]:
    """Size of the low-resolution canvas: small, but with enough pixels on the short
    side that thin strips (8:1) do not upscale into visible blocks."""
    scale = min(
        1.0, max(_WORK_LONG_SIDE / max(width, height), _WORK_SHORT_SIDE / min(width, height))
    )
    return max(2, round(width * scale)), max(2, round(height * scale))


@lru_cache(maxsize=1)
def _smoothstep_lut() -> list[int]:
    return [round(255 * (t * t * (3 - 2 * t))) for t in (i / 255 for i in range(256))]


def _linear_mask(size: tuple[int, int], angle: float) -> Image.Image:
    """A smooth 0..255 ramp across ``size`` at ``angle`` degrees."""
    w, h = size
    diag = math.ceil(math.hypot(w, h)) + 2
    ramp = Image.linear_gradient("L").resize((diag, diag), Image.Resampling.BILINEAR)
    ramp = ramp.rotate(angle, resample=Image.Resampling.BILINEAR)
    left, top = (diag - w) // 2, (diag - h) // 2
    return ramp.crop((left, top, left + w, top + h)).point(_smoothstep_lut())


def _soft_disc(
    size: tuple[int, int],
    centre: tuple[float, float],
    radii: tuple[float, float],
    strength: float,
    core: float = 0.0,
) -> Image.Image:
    """An ``L`` mask holding one soft ellipse, for compositing a colour through it.

    ``centre`` and ``radii`` are in pixels. With ``core`` 0 the disc is a glow that
    fades from the middle; with ``core`` near 1 it is a solid orb with a soft rim (the
    rim is ``1 - core`` of the radius, so big and small orbs look equally soft).
    """
    rx, ry = max(1.0, radii[0]), max(1.0, radii[1])
    disc = Image.radial_gradient("L").resize(
        (max(2, round(rx * 2)), max(2, round(ry * 2))), Image.Resampling.BILINEAR
    )
    # radial_gradient is 0 at the centre, 181 (255/sqrt 2) at the middle of each edge
    # and 255 in the corners: map 181 and beyond to 0 so the disc has no visible edge.
    lut = []
    for i in range(256):
        t = min(1.0, i / 181)
        if core > 0:
            u = min(1.0, max(0.0, (1 - t) / (1 - core)))
            value = u * u * (3 - 2 * u)
        else:
            value = (1 - t) ** 2
        lut.append(round(255 * strength * value))
    mask = Image.new("L", size, 0)
    mask.paste(disc.point(lut), (round(centre[0] - rx), round(centre[1] - ry)))
    return mask


def _tint(canvas: Image.Image, colour: _RGB, mask: Image.Image) -> Image.Image:
    return Image.composite(Image.new("RGB", canvas.size, colour), canvas, mask)


def _background(rng: random.Random, width: int, height: int) -> Image.Image:
    """Paint the gradient, glows and orbs small, then upscale to the full size."""
    size = _work_size(width, height)
    w, h = size
    short, long_ = min(w, h), max(w, h)
    dark, mid, accent, glow = _palette(rng)

    angle = rng.uniform(20, 70) + rng.choice((0, 90, 180, 270))
    canvas = Image.composite(
        Image.new("RGB", size, mid), Image.new("RGB", size, dark), _linear_mask(size, angle)
    )

    # Two large glows: a bright accent near a top corner, a softer one low opposite it.
    ax, ay = rng.uniform(0.05, 0.45), rng.uniform(0.0, 0.5)
    if rng.random() < 0.5:
        ax = 1 - ax
    r = long_ * rng.uniform(0.55, 0.8)
    canvas = _tint(
        canvas, accent, _soft_disc(size, (ax * w, ay * h), (r, r), rng.uniform(0.6, 0.8))
    )
    gx, gy = 1 - ax + rng.uniform(-0.1, 0.1), rng.uniform(0.6, 1.0)
    r = long_ * rng.uniform(0.35, 0.55)
    canvas = _tint(
        canvas, glow, _soft_disc(size, (gx * w, gy * h), (r, r), rng.uniform(0.35, 0.55))
    )

    # Large translucent orbs with soft rims, like out-of-focus lights. Long strips
    # get more of them, spread along their length.
    for _ in range(rng.randint(4, 6) * max(1, round(long_ / short / 2))):
        white = rng.random() < 0.25
        colour = (255, 255, 255) if white else rng.choice((accent, glow, mid, dark))
        strength = rng.uniform(0.07, 0.14) if white else rng.uniform(0.18, 0.38)
        r = short * rng.uniform(0.18, 0.5)
        squash = rng.uniform(0.85, 1.15)
        centre = (rng.uniform(-0.05, 1.05) * w, rng.uniform(-0.05, 1.05) * h)
        canvas = _tint(
            canvas,
            colour,
            _soft_disc(
                size, centre, (r * squash, r / squash), strength, core=rng.uniform(0.55, 0.8)
            ),
        )

    # A few thin rings add a little structure; blurred only slightly.
    rings = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(rings)
    for _ in range(2 * max(1, round(long_ / short / 3))):
        r = short * rng.uniform(0.35, 0.8)
        cx, cy = rng.uniform(0.0, 1.0) * w, rng.uniform(0.0, 1.0) * h
        line = max(1, round(short * 0.01))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=(255, 255, 255, 36), width=line)
    rings = rings.filter(ImageFilter.GaussianBlur(max(0.6, short * 0.004)))
    canvas = Image.alpha_composite(canvas.convert("RGBA"), rings).convert("RGB")

    # Vignette: darken the rim so the eye goes to the middle (and the title).
    shade = Image.radial_gradient("L").resize(size, Image.Resampling.BILINEAR)
    shade = shade.point(
        [round(255 - 95 * max(0.0, (i / 255 - 0.45) / 0.55) ** 1.6) for i in range(256)]
    )
    canvas = ImageChops.multiply(canvas, Image.merge("RGB", (shade, shade, shade)))

    return canvas.resize((width, height), Image.Resampling.BICUBIC)


# --- text ------------------------------------------------------------------------------


def _display_text(prompt: str, title: str | None) -> str:
    """The title if there is one, else the start of the prompt (shortened)."""
    text = " ".join((title or "").split())
    if text:
        return text
    text = " ".join((prompt or "").split())
    if len(text) <= _PROMPT_CHARS:
        return text
    cut = text[:_PROMPT_CHARS]
    if " " in cut[_PROMPT_CHARS // 2 :]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,.;:-") + _ELLIPSIS


_FOLD = str.maketrans(
    {
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u201a": "'",
        "\u201e": '"',
        "\u00df": "ss",
        "\u00e6": "ae",
        "\u00c6": "AE",
        "\u0153": "oe",
        "\u0152": "OE",
        "\u00f8": "o",
        "\u00d8": "O",
        "\u0142": "l",
        "\u0141": "L",
        "\u0111": "d",
        "\u0110": "D",
        "\u00f0": "d",
        "\u00d0": "D",
        "\u00fe": "th",
        "\u00de": "Th",
        "\u0131": "i",
    }
)
"""Plain stand-ins for letters that a font has neither as a glyph nor as parts."""

# How to draw a combining mark with glyphs that even Pillow's bundled font has:
# (glyph, where, transform). "breve" is drawn as an arc.
_MARKS: dict[str, tuple[str, str, str]] = {
    "\u0300": ("`", "above", ""),  # grave
    "\u0301": ("\u00b4", "above", ""),  # acute
    "\u0302": ("^", "above", ""),  # circumflex
    "\u0303": ("~", "above", ""),  # tilde
    "\u0304": ("-", "above", ""),  # macron
    "\u0306": ("breve", "above", ""),
    "\u0307": (".", "above", ""),  # dot above
    "\u0308": ("..", "above", ""),  # diaeresis
    "\u030a": ("\u00b0", "above", ""),  # ring
    "\u030b": ("\u00b4\u00b4", "above", ""),  # double acute
    "\u030c": ("^", "above", "flip"),  # caron
    "\u0326": (",", "below", ""),  # comma below
    "\u0327": (",", "below", ""),  # cedilla
    "\u0328": (",", "below-right", "mirror"),  # ogonek
}

# Letters with a bar or slash through them, which Unicode does not decompose.
_STRUCK: dict[str, tuple[str, str]] = {
    "\u0141": ("L", "stem"),
    "\u0142": ("l", "stem"),
    "\u00d8": ("O", "slash"),
    "\u00f8": ("o", "slash"),
    "\u0110": ("D", "bar"),
    "\u0111": ("d", "bar-high"),
}

_NATIVE = ""
_MISSING = None
_Plan = tuple[str, tuple[str, ...]] | str | None
"""How one character is drawn: ``_NATIVE`` (its own glyph), ``(base, marks)`` (a base
letter with marks drawn over it), or ``_MISSING``."""

_font_path: ContextVar[str | None] = ContextVar("placeholder_font_path", default=None)
"""The font file of the render in progress; None for Pillow's bundled font."""

logger = logging.getLogger(__name__)


def _renderable(text: str) -> str:
    """The text as the font can show it, so nothing renders as an empty box.

    Pillow's bundled scalable font has ASCII and a few symbols but no accented letters,
    so those are drawn as the base letter plus the accent ("café" stays "café"); a few
    letters with no parts are spelled out ("Straße" -> "Strasse"); each run of
    characters that still cannot be shown (say, CJK) becomes an ellipsis, so the gap
    is visible. ``PLACEHOLDER_FONT`` names a font for other scripts.
    """
    out: list[str] = []
    missing = False
    for ch in text:
        shown = ch if _plan(ch) is not _MISSING else _fold(ch)
        if shown:
            out.append(shown)
            missing = False
        elif not missing:
            out.append(_ellipsis())
            missing = True
    return " ".join("".join(out).split())


def _ellipsis() -> str:
    return _ELLIPSIS if _plan(_ELLIPSIS) is _NATIVE else "..."


def _fold(ch: str) -> str:
    """Plain letters for ``ch`` that the font can show, or "" if there are none."""
    folded = unicodedata.normalize("NFKD", ch.translate(_FOLD))
    parts = [c for c in folded if not unicodedata.combining(c)]
    if not parts or any(_plan(c) is _MISSING for c in parts):
        return ""
    return "".join(parts)


def _plan(ch: str) -> _Plan:
    return _plan_for(ch, not _scalable(), _font_path.get())


@lru_cache(maxsize=4096)
def _plan_for(ch: str, bitmap: bool, path: str | None) -> _Plan:
    if _has_glyph(ch, bitmap, path):
        return _NATIVE
    if bitmap:
        return _MISSING  # marks drawn from glyphs need a scalable font
    if ch in _STRUCK:
        base, stroke = _STRUCK[ch]
        return (base, (stroke,))
    decomposed = unicodedata.normalize("NFD", ch)
    base, marks = decomposed[0], tuple(decomposed[1:])
    if (
        marks
        and _has_glyph(base, bitmap, path)
        and all(m in _MARKS and _can_draw_mark(_MARKS[m][0], path) for m in marks)
    ):
        return (base, marks)
    return _MISSING


def _can_draw_mark(glyph: str, path: str | None) -> bool:
    return glyph == "breve" or all(_has_glyph(g, False, path) for g in glyph)


def _bases(text: str) -> str:
    """``text`` with composed letters replaced by their base letter (same length)."""
    return "".join(plan[0] if isinstance(plan := _plan(ch), tuple) else ch for ch in text)


@lru_cache(maxsize=4096)
def _has_glyph(ch: str, bitmap: bool, path: str | None = None) -> bool:
    if ch == " ":
        return True
    if bitmap:
        try:
            ch.encode("latin-1")  # the bitmap font is Latin-1 and raises on the rest
        except UnicodeEncodeError:
            return False
        return ch.isprintable()
    font = _load_font(24, path)
    assert isinstance(font, ImageFont.FreeTypeFont)
    return _glyph_signature(font, ch) != _glyph_signature(font, "\uffff")


def _glyph_signature(font: ImageFont.FreeTypeFont, ch: str) -> tuple[tuple[int, int], bytes]:
    """Size and pixels of a glyph; a missing glyph renders as the font's .notdef box."""
    mask = font.getmask(ch)
    return mask.size, bytes(mask[i] for i in range(mask.size[0] * mask.size[1]))  # type: ignore[misc]


def _letters(text: str) -> int:
    return sum(ch.isalnum() for ch in text)


def _scalable() -> bool:
    """Whether the font can be drawn at any size (that needs FreeType)."""
    return _font_path.get() is not None or _bundled_scalable()


@lru_cache(maxsize=1)
def _bundled_scalable() -> bool:
    if not features.check("freetype2"):
        return False
    try:
        return isinstance(ImageFont.load_default(size=12), ImageFont.FreeTypeFont)
    except (OSError, ImportError):  # pragma: no cover - broken FreeType install
        return False


def _font(size: int) -> _FontT:
    """The render's font at ``size`` px; size 0 means Pillow's fixed bitmap font.

    Callers pass 0 when :func:`_scalable` is false; the bitmap font is then drawn at
    its native ~11 px and scaled up as an image.
    """
    return _load_font(size, _font_path.get())


@lru_cache(maxsize=128)
def _load_font(size: int, path: str | None) -> _FontT:
    if size > 0 and path is not None:
        try:
            return ImageFont.truetype(path, size)
        except (OSError, ImportError) as exc:
            raise ValueError(f"font_path {path!r} is not a font Pillow can read: {exc}") from exc
    if size > 0:
        return ImageFont.load_default(size=size)
    load_bitmap = getattr(ImageFont, "load_default_imagefont", None)
    return load_bitmap() if load_bitmap is not None else ImageFont.load_default()


def _text_width(font: _FontT, text: str) -> float:
    return font.getlength(_bases(text))


def _draw_marks(
    mask: Image.Image, font: ImageFont.FreeTypeFont, line: str, x: float, y: float, stroke: int
) -> None:
    """Draw the accents of composed letters in ``line``, drawn from ``(x, y)`` (anchor
    ``lm``) with their base letters, over and under those letters."""
    bases = _bases(line)
    if bases == line:
        return
    size = font.size
    gap = max(1, round(size * 0.07))
    x_top = y + _ink(font, "x", stroke)[1]
    baseline = y + _ink(font, "x", stroke)[3]
    stem = max(1, _ink(font, "l", stroke)[2] - _ink(font, "l", stroke)[0])
    draw = ImageDraw.Draw(mask)
    for i, ch in enumerate(line):
        plan = _plan(ch)
        if not isinstance(plan, tuple):
            continue
        base, marks = plan
        pen = x + font.getlength(bases[:i])
        left, top, right, bottom = _ink(font, base, stroke)
        left, top, right, bottom = pen + left, y + top, pen + right, y + bottom  # type: ignore[assignment]
        if base in "ij" and any(_MARKS.get(m, ("", ""))[1] == "above" for m in marks):
            draw.rectangle((left, top, right, x_top - gap), fill=0)  # a dotless i under the accent
            top = x_top  # type: ignore[assignment]
        centre = (left + right) / 2
        for mark in marks:
            if mark in ("stem", "slash", "bar", "bar-high"):
                _strike(draw, mark, (left, top, right, bottom), stem, baseline)
                continue
            glyph, where, transform = _MARKS[mark]
            image = _mark_image(font, glyph, stroke, transform)
            if where == "above":
                at = (round(centre - image.width / 2), round(top - gap - image.height))
                top -= gap + image.height
            elif where == "below":
                at = (round(centre - image.width / 2), round(max(bottom, baseline) + gap / 2))
            else:  # below-right: an ogonek hangs from the right of the letter
                at = (round(right - image.width), round(max(bottom, baseline) - gap / 2))
            mask.paste(255, at, image)


@lru_cache(maxsize=512)
def _draw_alone(font: ImageFont.FreeTypeFont, text: str, stroke: int) -> Image.Image:
    """``text`` drawn on its own; :meth:`getbbox` bounds it (its box also holds the
    origin and the baseline, so it is not the ink's box)."""
    left, top, right, bottom = font.getbbox(text, anchor="lm", stroke_width=stroke)
    image = Image.new("L", (right - left + 2, bottom - top + 2), 0)  # type: ignore[arg-type]
    ImageDraw.Draw(image).text(
        (1 - left, 1 - top),
        text,
        font=font,
        fill=255,
        anchor="lm",
        stroke_width=stroke,
        stroke_fill=255,
    )
    return image


def _ink_in_image(
    font: ImageFont.FreeTypeFont, text: str, stroke: int
) -> tuple[int, int, int, int]:
    return _draw_alone(font, text, stroke).getbbox() or (0, 0, 1, 1)


def _ink(font: ImageFont.FreeTypeFont, text: str, stroke: int) -> tuple[int, int, int, int]:
    """The box of the pixels ``text`` paints, relative to its ``lm`` anchor."""
    left, top = font.getbbox(text, anchor="lm", stroke_width=stroke)[:2]
    box = _ink_in_image(font, text, stroke)
    return (box[0] + left - 1, box[1] + top - 1, box[2] + left - 1, box[3] + top - 1)  # type: ignore[return-value]


def _strike(
    draw: ImageDraw.ImageDraw,
    kind: str,
    box: tuple[float, float, float, float],
    stem: int,
    baseline: float,
) -> None:
    """The bar of Đ and đ, the slash of Ø and ø, the stroke of Ł and ł."""
    left, top, right, bottom = box
    height = bottom - top
    width = max(1, round(stem * 0.8))
    if kind == "slash":
        draw.line((left + stem * 0.2, bottom, right - stem * 0.2, top), fill=255, width=width)
    elif kind == "stem":
        x = left + stem / 2 if right - left > 2 * stem else (left + right) / 2
        y = top + height * 0.55
        reach = max(stem * 1.2, height * 0.14)
        draw.line((x - reach, y + reach * 0.5, x + reach, y - reach * 0.5), fill=255, width=width)
    elif kind == "bar":
        y = top + height / 2
        draw.line((left - stem * 0.6, y, left + stem * 2, y), fill=255, width=width)
    else:  # bar-high: across the ascender of đ
        y = top + height * 0.2
        x = right - stem / 2
        draw.line((x - stem * 1.6, y, x + stem, y), fill=255, width=width)


@lru_cache(maxsize=256)
def _mark_image(
    font: ImageFont.FreeTypeFont, glyph: str, stroke: int, transform: str
) -> Image.Image:
    """An ``L`` image holding just the ink of an accent glyph."""
    if glyph == "breve":
        w, h = max(3, round(font.size * 0.3)), max(2, round(font.size * 0.14))
        line = max(1, round(font.size * 0.06)) + stroke
        image = Image.new("L", (w, h), 0)
        ImageDraw.Draw(image).arc((0, -h, w - 1, h - 1), 0, 180, fill=255, width=line)
        return image
    image = _draw_alone(font, glyph, stroke).crop(_ink_in_image(font, glyph, stroke))
    limit = max(1, round(font.size * 0.2))
    if image.height > limit:  # "^" is a tall maths caret, not a circumflex
        image = image.resize(
            (max(1, round(image.width * limit / image.height)), limit), Image.Resampling.LANCZOS
        )
    if transform == "flip":
        image = ImageOps.flip(image)
    elif transform == "mirror":
        image = ImageOps.mirror(image)
    return image


def _wrap(font: _FontT, text: str, max_width: float) -> list[str]:
    """Greedy word wrap; words wider than a line are split by characters."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if _text_width(font, candidate) <= max_width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = word
        while _text_width(font, current) > max_width and len(current) > 1:
            cut = len(current) - 1
            while cut > 1 and _text_width(font, current[:cut]) > max_width:
                cut -= 1
            lines.append(current[:cut])
            current = current[cut:]
    if current:
        lines.append(current)
    return lines


def _truncate(font: _FontT, lines: list[str], max_width: float, max_lines: int) -> list[str]:
    """Keep ``max_lines`` lines, ending the last one with an ellipsis."""
    if len(lines) <= max_lines:
        return lines
    ellipsis = _ellipsis()
    kept = lines[:max_lines]
    last = kept[-1]
    while last and _text_width(font, last.rstrip(" ,.;:-") + ellipsis) > max_width:
        last = last[:-1]
    kept[-1] = last.rstrip(" ,.;:-") + ellipsis
    return kept


def _fit_title(text: str, width: int, height: int) -> tuple[int, list[str], float]:
    """Choose the largest font size whose wrapped text fits the title box.

    Returns ``(font_size, lines, scale)``; ``scale`` is 1 for a scalable font and the
    integer upscale factor for the bitmap fallback font.
    """
    max_w = width * _TEXT_MAX_WIDTH
    max_h = height * _TEXT_MAX_HEIGHT
    max_lines = _MAX_LINES + (height >= 2 * width)
    if not _scalable():
        return _fit_bitmap(text, max_w, max_h, max_lines)

    # Cap so that a short title on a big canvas does not turn into a poster; wide
    # banners (4:1, 8:1) have little height, so there the title may take more of it.
    cap = 0.22 if width >= 3 * height else 0.16
    hi = max(8, round(min(height * cap, width * 0.11, max_h / 1.15)))
    # Below this a long title is truncated rather than shrunk into fine print.
    smallest = max(
        6, min(hi, round(max(min(width, height) * 0.05, math.sqrt(width * height) * 0.03)))
    )
    lo = smallest
    best: tuple[int, list[str]] | None = None
    while lo <= hi:
        size = (lo + hi) // 2
        font = _font(size)
        lines = _wrap(font, text, max_w)
        if len(lines) <= max_lines and len(lines) * size * 1.18 <= max_h:
            best = (size, lines)
            lo = size + 1
        else:
            hi = size - 1
    if best is None:  # does not fit even at the minimum size: truncate
        size = smallest
        font = _font(size)
        while size > 6 and max_lines * size * 1.18 > max_h:
            size -= 1
            font = _font(size)
        best = (size, _truncate(font, _wrap(font, text, max_w), max_w, max_lines))
    size, lines = best
    return size, _balance(_font(size), text, lines, max_w), 1.0


def _balance(font: _FontT, text: str, lines: list[str], max_width: float) -> list[str]:
    """Re-wrap to the narrowest width that keeps the line count, so lines come out
    even ("Ten quiet cafes in / Lisbon, worth the detour") instead of leaving an
    orphan word on the last line."""
    if len(lines) < 2 or lines[-1].endswith(_ellipsis()):
        return lines
    lo, hi = max_width / 2, max_width
    for _ in range(10):
        mid = (lo + hi) / 2
        if len(_wrap(font, text, mid)) <= len(lines):
            hi = mid
        else:
            lo = mid
    return _wrap(font, text, hi)


def _fit_bitmap(
    text: str, max_w: float, max_h: float, max_lines: int
) -> tuple[int, list[str], float]:
    """Fit the fixed-size bitmap font by wrapping at native size and scaling up."""
    font = _font(0)
    line_h = _line_height(font, 0)
    # The largest integer scale at which the wrapped lines fit the box.
    for scale in range(max(1, int(max_h // (line_h * 1.18))), 0, -1):
        lines = _wrap(font, text, max_w / scale)
        if len(lines) <= max_lines and len(lines) * line_h * 1.18 * scale <= max_h:
            return 0, lines, float(scale)
    return 0, _truncate(font, _wrap(font, text, max_w), max_w, max_lines), 1.0


def _line_height(font: _FontT, size: int) -> int:
    if size:
        return size
    return max(1, int(font.getbbox("Hg")[3]))


def _text_mask(lines: Sequence[str], font: _FontT, size: int, stroke: int) -> Image.Image:
    """Render centred lines into an ``L`` mask at the font's native size."""
    line_h = _line_height(font, size)
    gap = round(line_h * 0.18)
    widths = [math.ceil(_text_width(font, line)) + 2 * stroke for line in lines]
    # Room for accents drawn above capitals on the first line.
    accents = any(_bases(line) != line for line in lines)
    pad = stroke + max(2, line_h // 2 if accents else line_h // 4)
    mask_w = max(widths) + 2 * pad
    mask_h = len(lines) * line_h + (len(lines) - 1) * gap + 2 * pad
    mask = Image.new("L", (mask_w, mask_h), 0)
    draw = ImageDraw.Draw(mask)
    for i, (line, line_w) in enumerate(zip(lines, widths, strict=True)):
        x = (mask_w - line_w) / 2 + stroke
        y = pad + i * (line_h + gap)
        if size:
            assert isinstance(font, ImageFont.FreeTypeFont)
            draw.text(
                (x, y + line_h * 0.5),
                _bases(line),
                font=font,
                fill=255,
                anchor="lm",
                stroke_width=stroke,
                stroke_fill=255,
            )
            _draw_marks(mask, font, line, x, y + line_h * 0.5, stroke)
        else:
            draw.text((x, y), line, font=font, fill=255)
    return mask


def _draw_title(image: Image.Image, text: str) -> None:
    """Draw the wrapped title, centred, white over a soft dark shadow."""
    width, height = image.size
    size, lines, scale = _fit_title(text, width, height)
    font = _font(size)
    # A thin stroke in the fill colour fakes a semi-bold weight for the regular font.
    stroke = round(size * 0.022) if size >= 56 else 0
    mask = _text_mask(lines, font, size, stroke)
    if scale != 1.0:
        # Nearest keeps the pixel font crisp instead of smearing it.
        mask = mask.resize(
            (round(mask.width * scale), round(mask.height * scale)), Image.Resampling.NEAREST
        )
    mask_w, mask_h = mask.size
    ref = size or _line_height(font, 0) * scale
    x = (width - mask_w) // 2
    y = (height - mask_h) // 2

    # Shadow: blur a downscaled copy of the mask (cheap even at 4K), offset downwards.
    shrink = max(1, round(ref / 24))
    pad = max(4, round(ref * 0.6))
    padded = Image.new("L", (mask_w + 2 * pad, mask_h + 2 * pad), 0)
    padded.paste(mask, (pad, pad))
    small = padded.resize(
        (max(1, padded.width // shrink), max(1, padded.height // shrink)),
        Image.Resampling.BILINEAR,
    )
    small = small.filter(ImageFilter.GaussianBlur(max(1.0, ref * 0.12 / shrink)))
    shadow = small.resize(padded.size, Image.Resampling.BILINEAR).point(
        [min(255, round(i * 0.75)) for i in range(256)]
    )
    offset = max(1, round(ref * 0.05))
    image.paste((0, 0, 0), (x - pad, y - pad + offset), shadow)
    image.paste((255, 255, 255), (x, y), mask)


def _draw_badge(image: Image.Image) -> None:
    """Stamp a small translucent badge in the bottom-right corner."""
    width, height = image.size
    short = min(width, height)
    if short < 24 or width < 48:
        return  # too small to hold legible text; the title still says what it is
    margin = max(2, round(short * 0.03))
    # Scale with the area so strips (8:1) still get a readable badge, but keep it low.
    size = max(7, round(min(math.sqrt(width * height) * 0.02, short * 0.09)))
    if _scalable():
        while size > 7 and _text_width(_font(size), BADGE_TEXT) > width * 0.9 - 2 * margin:
            size -= 1
    else:
        size = 0
    font = _font(size)
    line_h = _line_height(font, size)
    pad_x, pad_y = max(3, round(line_h * 0.7)), max(2, round(line_h * 0.4))
    text_w = math.ceil(_text_width(font, BADGE_TEXT))
    box_w, box_h = text_w + 2 * pad_x, line_h + 2 * pad_y
    x0, y0 = width - margin - box_w, height - margin - box_h
    if x0 < 0 or y0 < 0:
        return

    region = image.crop((x0, y0, x0 + box_w, y0 + box_h)).convert("RGBA")
    badge = Image.new("RGBA", region.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(badge)
    draw.rounded_rectangle(
        (0, 0, box_w - 1, box_h - 1),
        radius=box_h // 2,
        fill=(10, 10, 20, 120),
        outline=(255, 255, 255, 70),
        width=max(1, round(line_h * 0.07)),
    )
    if size:
        draw.text(
            (box_w / 2, box_h / 2), BADGE_TEXT, font=font, fill=(255, 255, 255, 225), anchor="mm"
        )
    else:
        draw.text((pad_x, pad_y), BADGE_TEXT, font=font, fill=(255, 255, 255, 225))
    image.paste(Image.alpha_composite(region, badge).convert("RGB"), (x0, y0))
