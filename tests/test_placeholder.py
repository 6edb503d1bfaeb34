"""Tests for the offline placeholder renderer (plain Pillow; Django only for its setting)."""

from __future__ import annotations

import io
import os
import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from PIL import Image, ImageChops, ImageStat

from nanobanana_django import placeholder
from nanobanana_django.conf import app_settings
from nanobanana_django.dimensions import ASPECT_RATIOS, RESOLUTIONS, image_size
from nanobanana_django.placeholder import MAX_SIDE, render_placeholder

TITLE = "Ten quiet caf\u00e9s in Lisbon worth the detour"
DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
LONG_TITLE = " ".join(["An extraordinarily long and winding headline"] * 12)


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _white_pixels(image: Image.Image, box: tuple[int, int, int, int]) -> int:
    """Count pure-white pixels in ``box``: only title text is drawn pure white."""
    channels = [
        c.point(lambda v: 255 if v == 255 else 0) for c in image.convert("RGB").crop(box).split()
    ]
    both = ImageChops.darker(channels[0], channels[1])
    return ImageChops.darker(both, channels[2]).histogram()[255]


@pytest.mark.parametrize(
    ("width", "height"),
    [(1376, 768), (1024, 1024), (768, 1376), (3072, 384), (384, 3072), (1, 1), (7, 500), (33, 9)],
)
@pytest.mark.parametrize("output_format", ["jpg", "png"])
def test_exact_size_and_format(width: int, height: int, output_format: str) -> None:
    image = _open(
        render_placeholder(
            prompt="a quiet cafe",
            title=TITLE,
            width=width,
            height=height,
            output_format=output_format,
        )
    )
    assert image.size == (width, height)
    assert image.format == {"jpg": "JPEG", "png": "PNG"}[output_format]
    assert image.mode == "RGB"


def test_default_format_is_jpeg() -> None:
    assert _open(render_placeholder(prompt="p", width=64, height=32)).format == "JPEG"


@pytest.mark.parametrize("aspect_ratio", ASPECT_RATIOS)
def test_every_1k_size_renders(aspect_ratio: str) -> None:
    width, height = image_size(aspect_ratio, "1K")
    data = render_placeholder(prompt="p", title=TITLE, width=width, height=height)
    assert _open(data).size == (width, height)


def test_every_size_the_app_can_request_is_accepted() -> None:
    # Rendering all 4K sizes would be slow; the validator is what could refuse them.
    for aspect_ratio in ASPECT_RATIOS:
        for resolution in RESOLUTIONS:
            width, height = image_size(aspect_ratio, resolution)
            placeholder._check_side("width", width)
            placeholder._check_side("height", height)


def test_deterministic() -> None:
    kwargs = {"prompt": "misty harbour at dawn", "title": TITLE, "width": 640, "height": 360}
    assert render_placeholder(**kwargs) == render_placeholder(**kwargs)
    png = {**kwargs, "output_format": "png"}
    assert render_placeholder(**png) == render_placeholder(**png)


def test_different_prompts_differ() -> None:
    a = _open(render_placeholder(prompt="one", width=320, height=180, output_format="png"))
    b = _open(render_placeholder(prompt="two", width=320, height=180, output_format="png"))
    assert a.tobytes() != b.tobytes()
    # Not just the text: the backgrounds (colours) differ too.
    assert a.resize((1, 1)).getpixel((0, 0)) != b.resize((1, 1)).getpixel((0, 0))


def test_same_title_different_prompt_differs() -> None:
    a = render_placeholder(prompt="one", title=TITLE, width=320, height=180)
    b = render_placeholder(prompt="two", title=TITLE, width=320, height=180)
    assert a != b


@pytest.mark.parametrize("output_format", ["jpeg", "JPG", "webp", "gif", "", None])
def test_bad_format_raises(output_format: object) -> None:
    with pytest.raises(ValueError, match="'jpg', 'png'"):
        render_placeholder(
            prompt="p",
            width=10,
            height=10,
            output_format=output_format,  # type: ignore[arg-type]
        )


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (0, 10),
        (10, 0),
        (-5, 10),
        (MAX_SIDE + 1, 10),
        (10, MAX_SIDE + 1),
        (10.0, 10),
        ("10", 10),
        (True, 10),
        (None, 10),
    ],
)
def test_bad_size_raises(width: object, height: object) -> None:
    with pytest.raises(ValueError):
        render_placeholder(prompt="p", width=width, height=height)  # type: ignore[arg-type]


def test_not_a_flat_colour() -> None:
    image = _open(render_placeholder(prompt="p", width=400, height=225, output_format="png"))
    stat = ImageStat.Stat(image)
    assert min(stat.stddev) > 5
    assert len(image.getcolors(maxcolors=1 << 20) or ()) > 500


def test_title_is_drawn_in_the_middle() -> None:
    image = _open(
        render_placeholder(prompt="p", title=TITLE, width=800, height=450, output_format="png")
    )
    assert _white_pixels(image, (80, 100, 720, 350)) > 2000


@pytest.mark.parametrize(("width", "height"), [(1376, 768), (384, 3072), (3072, 384), (300, 300)])
def test_long_title_stays_within_bounds(width: int, height: int) -> None:
    image = _open(
        render_placeholder(
            prompt="p", title=LONG_TITLE, width=width, height=height, output_format="png"
        )
    )
    assert image.size == (width, height)
    assert _white_pixels(image, (0, 0, width, height)) > 0
    # The title is confined to the central ~80% of the width: no text in the margins.
    margin = width // 12
    assert _white_pixels(image, (0, 0, margin, height)) == 0
    assert _white_pixels(image, (width - margin, 0, width, height)) == 0


@pytest.mark.parametrize(("width", "height"), [(1376, 768), (384, 3072), (3072, 384), (64, 64)])
def test_fit_title_limits_lines_and_width(width: int, height: int) -> None:
    size, lines, scale = placeholder._fit_title(LONG_TITLE, width, height)
    assert 1 <= len(lines) <= 4
    assert lines[-1].endswith("\u2026")
    assert scale == 1.0
    font = placeholder._font(size)
    for line in lines:
        assert font.getlength(line) <= width * 0.8 + 1 or len(line) == 1


def test_prompt_is_shown_shortened_without_title() -> None:
    prompt = "word " * 200
    text = placeholder._display_text(prompt, None)
    assert text.endswith("\u2026")
    assert len(text) <= 91
    assert placeholder._display_text(prompt, "  A   title ") == "A title"


def test_letters_without_glyphs_or_parts_are_spelled_out_not_boxed() -> None:
    assert placeholder._renderable("caf\u00e9 \u2014 Stra\u00dfe") == "caf\u00e9 - Strasse"


@pytest.mark.parametrize(
    "title",
    [
        "Caf\u00e9s \u00e0 Paris: cr\u00e8me br\u00fbl\u00e9e",
        "Z\u00fcrich",
        "S\u00e3o Paulo",
        "\u0141\u00f3d\u017a",
    ],
)
def test_accented_titles_keep_their_accents(title: str) -> None:
    assert placeholder._renderable(title) == title


def test_an_accent_is_drawn_over_its_letter() -> None:
    font = placeholder._font(64)
    plain = placeholder._text_mask(["Cafe"], font, 64, 0)
    accented = placeholder._text_mask(["Caf\u00e9"], font, 64, 0)
    plain_box, accented_box = plain.getbbox(), accented.getbbox()
    assert plain_box and accented_box
    plain, accented = plain.crop(plain_box), accented.crop(accented_box)
    # Same letters and size; the only new ink is a little, over the top of the "e".
    assert accented.size == plain.size
    width, height = plain.size
    changed = ImageChops.difference(plain, accented).getbbox()
    assert changed is not None
    assert changed[0] > width * 0.6 and changed[3] < height * 0.5
    ink = ImageStat.Stat(plain).sum[0] / 255
    extra = ImageStat.Stat(accented).sum[0] / 255 - ink
    assert 0 < extra < ink * 0.1


def test_characters_the_font_cannot_show_leave_a_visible_gap() -> None:
    assert placeholder._renderable("Tokyo \u6771\u4eac caf\u00e9s") == "Tokyo \u2026 caf\u00e9s"


def test_a_title_the_font_cannot_show_is_left_out_with_a_hint(caplog) -> None:
    render_placeholder(
        prompt="", title="\u6771\u4eac\u306e\u30ab\u30d5\u30a7", width=320, height=180
    )
    assert "PLACEHOLDER_FONT" in caplog.text


def test_a_font_file_shows_scripts_the_bundled_font_cannot() -> None:
    if not os.path.isfile(DEJAVU):
        pytest.skip(f"needs {DEJAVU} (Debian: fonts-dejavu-core)")
    title = "\u041c\u043e\u0441\u043a\u0432\u0430"  # Moscow, in Cyrillic
    kwargs = {"prompt": "p", "title": title, "width": 640, "height": 360, "output_format": "png"}
    without = _open(render_placeholder(**kwargs))
    with_font = _open(render_placeholder(**kwargs, font_path=DEJAVU))
    middle = (100, 120, 540, 240)
    assert _white_pixels(without, middle) == 0
    assert _white_pixels(with_font, middle) > 500


def test_a_font_pillow_cannot_read_is_refused() -> None:
    with pytest.raises(ValueError, match="font_path"):
        render_placeholder(prompt="p", width=64, height=32, font_path=__file__)


@pytest.mark.parametrize("value", ["/no/such/font.ttf", __file__, 12])
def test_a_bad_placeholder_font_setting_is_a_configuration_error(settings, value) -> None:
    settings.NANOBANANA = {"PLACEHOLDER_FONT": value}
    with pytest.raises(ImproperlyConfigured, match=r"NANOBANANA\['PLACEHOLDER_FONT'\]"):
        _ = app_settings.PLACEHOLDER_FONT


def test_the_placeholder_font_setting_defaults_to_the_bundled_font(settings) -> None:
    settings.NANOBANANA = {}
    assert app_settings.PLACEHOLDER_FONT is None


def test_each_seed_gives_different_art_and_one_seed_the_same() -> None:
    kwargs = {"prompt": "misty harbour", "title": TITLE, "width": 320, "height": 180}
    first = render_placeholder(**kwargs, seed="41")
    assert render_placeholder(**kwargs, seed="41") == first
    assert render_placeholder(**kwargs, seed="42") != first


@pytest.mark.parametrize("title", ["\u6771\u4eac\u306e\u30ab\u30d5\u30a7", "", "   ", "\u2014"])
def test_unrenderable_or_empty_titles_do_not_crash(title: str) -> None:
    image = _open(render_placeholder(prompt="", title=title, width=320, height=180))
    assert image.size == (320, 180)


def test_bitmap_font_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without FreeType, Pillow only has a fixed bitmap font: it must still work."""
    monkeypatch.setattr(placeholder, "_scalable", lambda: False)
    for width, height in [(1376, 768), (384, 3072), (3072, 384), (20, 20)]:
        data = render_placeholder(
            prompt="p",
            title=TITLE + " \u2014 \u6771\u4eac",
            width=width,
            height=height,
            output_format="png",
        )
        image = _open(data)
        assert image.size == (width, height)
    long_image = _open(
        render_placeholder(prompt="p", title=LONG_TITLE, width=800, height=450, output_format="png")
    )
    assert _white_pixels(long_image, (0, 0, 800, 450)) > 0
    assert _white_pixels(long_image, (0, 0, 800 // 12, 450)) == 0


def test_fast_enough_at_1k() -> None:
    # Generous bound (the target is < 0.3 s) so a loaded CI machine does not flake.
    start = time.perf_counter()
    render_placeholder(prompt="speed", title=TITLE, width=1376, height=768)
    assert time.perf_counter() - start < 2.0


@pytest.mark.django_db
def test_regenerating_a_placeholder_gives_a_new_picture(media_root) -> None:
    from nanobanana_django.services import generate_for
    from tests.testapp.models import Article

    article = Article.objects.create(title="Ten quiet caf\u00e9s in Lisbon", topic="travel")
    first = generate_for(article)
    second = generate_for(article, overwrite=True)
    assert first.prompt == second.prompt and first.input_params == second.input_params
    with first.image.open("rb") as a, second.image.open("rb") as b:
        assert a.read() != b.read()
    assert first.prediction_id != second.prediction_id


@pytest.mark.django_db
def test_a_bad_placeholder_font_fails_the_generation_with_the_fix(settings, media_root) -> None:
    from nanobanana_django.models import GeneratedImage
    from nanobanana_django.services import generate_image

    settings.NANOBANANA = {**settings.NANOBANANA, "PLACEHOLDER_FONT": "/no/such/font.ttf"}
    row = generate_image("a lighthouse")
    assert row.status == GeneratedImage.Status.FAILED
    assert "NANOBANANA['PLACEHOLDER_FONT']" in row.error_message
