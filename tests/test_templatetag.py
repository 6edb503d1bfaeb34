"""``{% header_image %}`` and the renditions behind its ``srcset``."""

from html.parser import HTMLParser

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import FileSystemStorage, default_storage
from django.template import Context, Template, TemplateSyntaxError
from PIL import Image

from nanobanana_django.conf import app_settings
from nanobanana_django.models import GeneratedImage
from nanobanana_django.services import generate_for, generate_image
from tests.testapp.models import Article, Page

pytestmark = pytest.mark.django_db


def render(text, **context):
    return Template("{% load nanobanana %}" + text).render(Context(context)).strip()


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def only_tag(html):
    parser = Tags()
    parser.feed(html)
    [tag] = parser.tags
    return tag


def srcset_of(img):
    """``{width: storage name}`` of an ``<img>``'s srcset, read back from its URLs."""
    entries = {}
    for entry in img["srcset"].split(", "):
        url, width = entry.split(" ")
        assert url.startswith("/media/")
        entries[int(width.removesuffix("w"))] = url.removeprefix("/media/")
    return entries


def test_the_tag_gives_an_img_with_size_alt_lazy_loading_and_a_srcset_of_stored_files():
    article = Article.objects.create(title='Fish & chips, "the best"', topic="food")
    row = generate_for(article)

    tag, img = only_tag(render("{% header_image article %}", article=article))

    assert tag == "img"
    assert img["src"] == f"/media/{row.image.name}"
    assert img["alt"] == row.alt_text == 'Illustration for “Fish & chips, "the best"”: food'
    assert (img["width"], img["height"]) == ("1376", "768")
    assert (img["loading"], img["decoding"], img["sizes"]) == ("lazy", "async", "100vw")
    srcset = srcset_of(img)
    assert list(srcset) == [480, 768, 1024, 1376]
    assert srcset[1376] == row.image.name
    for width, name in srcset.items():
        assert default_storage.exists(name)
        with default_storage.open(name) as file, Image.open(file) as image:
            assert image.format == "JPEG"
            assert image.width == width
            assert abs(image.height - width * 768 / 1376) <= 1


def test_the_html_is_escaped():
    article = Article.objects.create(title="Fish & chips")
    generate_for(article)
    html = render(
        "{% header_image article class=css sizes=sizes %}",
        article=article,
        css='hero" onload="x',
        sizes="50vw",
    )
    assert 'alt="Illustration for “Fish &amp; chips”"' in html
    assert 'class="hero&quot; onload=&quot;x"' in html
    assert 'sizes="50vw"' in html
    assert "onload=" not in html.replace("onload=&quot;", "")


def test_renditions_are_made_once_when_stored_not_when_the_page_is_rendered(monkeypatch):
    article = Article.objects.create(title="Harbour lights")
    row = generate_for(article)
    saved_at_store_time = dict(row.renditions)

    def no_saving(*args, **kwargs):
        raise AssertionError("rendering the tag saved a file")

    monkeypatch.setattr(FileSystemStorage, "save", no_saving)
    monkeypatch.setattr(Image, "open", no_saving)
    first = render("{% header_image article %}", article=article)
    second = render("{% header_image article %}", article=Article.objects.get())

    assert first == second
    assert srcset_of(only_tag(first)[1])[480] == saved_at_store_time["480"]
    assert GeneratedImage.objects.get().renditions == saved_at_store_time


def test_only_widths_narrower_than_the_image_are_made(settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "RENDITION_WIDTHS": [2000, 640, 1376]}
    row = generate_image("a lighthouse")  # 1376 wide
    assert list(row.renditions) == ["640"]


def test_a_png_gets_png_renditions():
    row = generate_image("a lighthouse", input={"output_format": "png", "aspect_ratio": "1:1"})
    assert set(row.renditions) == {"480", "768"}
    for name in row.renditions.values():
        assert name.endswith(".png")
        with default_storage.open(name) as file, Image.open(file) as image:
            assert image.format == "PNG"


def test_no_renditions_when_none_are_configured(settings, media_root):
    settings.NANOBANANA = {**settings.NANOBANANA, "RENDITION_WIDTHS": []}
    article = Article.objects.create(title="Harbour lights")
    row = generate_for(article)
    img = only_tag(render("{% header_image article %}", article=article))[1]
    assert row.renditions == {}
    assert "srcset" not in img and "sizes" not in img
    assert (img["width"], img["height"], img["loading"]) == ("1376", "768", "lazy")


def test_a_failure_to_make_renditions_does_not_fail_the_generation(monkeypatch, media_root):
    original_save = FileSystemStorage.save

    def save_failing_at_768(self, name, *args, **kwargs):
        if "-768w." in name:
            raise OSError("disk full")
        return original_save(self, name, *args, **kwargs)

    monkeypatch.setattr(FileSystemStorage, "save", save_failing_at_768)
    article = Article.objects.create(title="Harbour lights")

    row = generate_for(article)

    assert row.status == GeneratedImage.Status.SUCCEEDED
    assert row.renditions == {}
    assert article.header_image.name == row.image.name
    # The 1024 rendition made before the failure is not left behind.
    stored = [path.relative_to(media_root).as_posix() for path in media_root.rglob("*.jpg")]
    assert stored == [row.image.name]
    html = render("{% header_image article %}", article=article)
    assert "srcset" not in html and 'width="1376"' in html


def test_an_article_without_an_image_gets_a_placeholder_or_nothing():
    article = Article.objects.create(title="Notes <b>from</b> the launch")

    html = render('{% header_image article class="hero" %}', article=article)

    assert html == (
        '<div class="nanobanana-placeholder hero" role="img" '
        'aria-label="Notes from the launch"></div>'
    )
    assert render("{% header_image article placeholder=False %}", article=article) == ""
    assert render("{% header_image missing %}") == ""


def test_a_hand_uploaded_image_is_shown_without_a_srcset():
    article = Article.objects.create(title="Uploaded", header_image="headers/mine.jpg")
    img = only_tag(render("{% header_image article %}", article=article))[1]
    assert img["src"] == "/media/headers/mine.jpg"
    assert img["alt"] == "Uploaded" and img["loading"] == "lazy"
    assert "srcset" not in img and "width" not in img


def test_a_foreign_key_to_the_generation_renders_that_generation():
    page = Page.objects.create(headline="About us")
    row = generate_for(page)
    page.refresh_from_db()

    img = only_tag(render("{% header_image page %}", page=page))[1]

    assert img["src"] == row.image.url and img["alt"] == "Illustration for “About us”"
    assert srcset_of(img)[480] == row.renditions["480"]


def test_an_unknown_option_is_a_clear_error():
    article = Article.objects.create(title="x")
    with pytest.raises(TemplateSyntaxError, match="unknown options \\['size'\\]"):
        render('{% header_image article size="50vw" %}', article=article)


@pytest.mark.parametrize("value", ["480", [480, "768"], [0], (True,)])
def test_rendition_widths_must_be_a_list_of_widths(settings, value):
    settings.NANOBANANA = {**settings.NANOBANANA, "RENDITION_WIDTHS": value}
    with pytest.raises(ImproperlyConfigured, match="RENDITION_WIDTHS"):
        _ = app_settings.RENDITION_WIDTHS
