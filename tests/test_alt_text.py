"""Alt text: written for every image, kept on the row, editable, copied to the article."""

import logging
from html.parser import HTMLParser

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.template import Context, Template

from nanobanana_django.alttext import MAX_LENGTH, clean_alt_text, default_alt_text
from nanobanana_django.models import GeneratedImage
from nanobanana_django.registry import build_config
from nanobanana_django.services import (
    create_generation,
    generate_for,
    generate_image,
    run_generation,
    use_generation,
)
from tests.test_admin import url
from tests.test_admin_browser import browser, log_in, save_screenshot  # noqa: F401
from tests.testapp.models import Article, Page

pytestmark = pytest.mark.django_db

ARTICLE = {"title_field": "title", "topic_field": "topic", "image_field": "header_image"}


def register(settings, **options):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "MODELS": {
            "testapp.Article": {**ARTICLE, **options},
            "testapp.Page": {"title_field": "headline", "image_field": "image"},
        },
    }


def img_alt(obj):
    class Img(HTMLParser):
        alt = None

        def handle_starttag(self, tag, attrs):
            if tag == "img":
                Img.alt = dict(attrs)["alt"]

    html = Template("{% load nanobanana %}{% header_image obj %}").render(Context({"obj": obj}))
    Img().feed(html)
    return Img.alt


def house_style(row, obj):
    return f"Our take on {obj.title}, drawn for the blog" if obj else "A blog drawing"


def broken_writer(row, obj):
    raise RuntimeError("the writer's service is down")


# Written for every image ---------------------------------------------------------------------


def test_every_succeeded_row_gets_alt_text_from_the_title_and_topic():
    article = Article.objects.create(title="How we rebuilt our pipeline", topic="data pipeline")
    row = generate_for(article)
    assert row.status == GeneratedImage.Status.SUCCEEDED
    assert row.alt_text == "Illustration for “How we rebuilt our pipeline”: data pipeline"
    assert GeneratedImage.objects.get(pk=row.pk).alt_text == row.alt_text
    assert img_alt(article) == row.alt_text


def test_an_image_for_a_bare_prompt_gets_its_subject_without_image_of():
    row = generate_image("An image of a red fox in fresh snow. Photographic, natural light.")
    assert row.alt_text == "A red fox in fresh snow"


def test_a_page_pointing_at_its_generation_shows_that_alt_text():
    page = Page.objects.create(headline="About us")
    row = generate_for(page)
    page.refresh_from_db()
    assert row.alt_text == "Illustration for “About us”" == img_alt(page)


def test_a_long_title_is_cut_at_a_word_within_the_limit():
    title = "A very long title about " + "distributed systems and their many failure modes " * 3
    row = generate_for(Article.objects.create(title=title.strip()))
    assert len(row.alt_text) <= MAX_LENGTH
    assert row.alt_text.endswith("…")
    assert row.alt_text[:-1] == row.alt_text[:-1].rstrip()  # cut between words


@pytest.mark.parametrize(
    ("said", "alt"),
    [
        ("Here is your image of a lighthouse at dusk.", "A lighthouse at dusk."),
        ("An image of two cats", "Two cats"),
        ("Picture showing a harbour", "A harbour"),
        ("**A picture of a mountain lake**", "A mountain lake"),
        ('"A quiet street"', "A quiet street"),
        ("Image processing at scale", "Image processing at scale"),
        ("Illustration for “Fish & chips”", "Illustration for “Fish & chips”"),
        ("<b>Bold</b>   and\nspaced", "Bold and spaced"),
    ],
)
def test_alt_text_never_starts_with_image_of(said, alt):
    assert clean_alt_text(said) == alt


# Edits and steps -----------------------------------------------------------------------------


def test_an_edit_describes_its_parent_and_its_instruction_and_a_step_keeps_its_parents():
    article = Article.objects.create(title="Harbour at dawn")
    parent = generate_for(article)
    edit = GeneratedImage(
        kind=GeneratedImage.Kind.EDIT, parent=parent, prompt="make the sky stormy", provider="x"
    )
    step = GeneratedImage(kind=GeneratedImage.Kind.STEP, parent=parent, prompt="", provider="x")
    assert default_alt_text(edit, article) == (
        "Illustration for “Harbour at dawn” – edited: make the sky stormy"
    )
    assert default_alt_text(step, article) == parent.alt_text


# Who writes it ------------------------------------------------------------------------------


def test_a_callable_named_in_settings_writes_it(settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "ALT_TEXT": "tests.test_alt_text.house_style"}
    row = generate_for(Article.objects.create(title="Tide tables"))
    assert row.alt_text == "Our take on Tide tables, drawn for the blog"


def test_a_callable_that_raises_does_not_fail_the_generation(settings, caplog):
    settings.NANOBANANA = {**settings.NANOBANANA, "ALT_TEXT": "tests.test_alt_text.broken_writer"}
    with caplog.at_level(logging.ERROR, logger="nanobanana_django"):
        row = generate_for(Article.objects.create(title="Tide tables"))
    assert row.status == GeneratedImage.Status.SUCCEEDED
    assert row.alt_text == "Illustration for “Tide tables”"
    assert "broken_writer" in caplog.text and "the writer's service is down" in caplog.text


def test_a_bad_alt_text_setting_is_a_check_error(settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "ALT_TEXT": 42}
    errors = [m for m in checks.run_checks() if m.id == "nanobanana.E001"]
    assert any("ALT_TEXT" in m.msg for m in errors)


@pytest.fixture
def gemini(gemini, settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "ALT_TEXT": "model"}
    return gemini


def test_on_gemini_the_models_own_words_become_the_alt_text(gemini, monkeypatch):
    from nanobanana_django.providers import gemini_api

    monkeypatch.setattr(
        gemini_api,
        "_visible_text",
        lambda candidate: "Here's an image of a lighthouse on a cliff at dusk, waves below.",
    )
    row = generate_for(Article.objects.create(title="Coastal walks"))
    assert row.status == GeneratedImage.Status.SUCCEEDED
    assert row.alt_text == "A lighthouse on a cliff at dusk, waves below."


def test_on_gemini_a_remark_that_describes_nothing_falls_back_to_the_default(gemini):
    # The emulator answers "Here is your image." beside the picture, as the model often does.
    row = generate_for(Article.objects.create(title="Coastal walks"))
    assert row.status == GeneratedImage.Status.SUCCEEDED
    assert row.alt_text == "Illustration for “Coastal walks”"


def test_with_alt_text_model_on_replicate_the_default_is_used(settings, replicate_emulator):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        **replicate_emulator.settings(),
        "POLL_INTERVAL": 0.05,
        "REPLICATE_WAIT": 0,
        "ALT_TEXT": "model",
    }
    row = generate_for(Article.objects.create(title="Night trains", topic="travel"))
    assert row.status == GeneratedImage.Status.SUCCEEDED
    assert row.alt_text == "Illustration for “Night trains”: travel"


# On the content model ------------------------------------------------------------------------


def test_the_alt_text_is_copied_to_the_registered_field_when_attached(settings):
    register(settings, alt_text_field="header_image_alt")
    article = Article.objects.create(title="Night trains", topic="travel")
    row = generate_for(article)
    article.refresh_from_db()
    assert article.header_image_alt == row.alt_text == "Illustration for “Night trains”: travel"


def test_the_tag_prefers_the_articles_own_alt_text_field(settings):
    register(settings, alt_text_field="header_image_alt")
    article = Article.objects.create(title="Night trains")
    generate_for(article)
    article.header_image_alt = "A sleeper train crossing a snowy valley at night"
    article.save()
    assert img_alt(article) == "A sleeper train crossing a snowy valley at night"


def test_using_an_older_image_brings_its_alt_text_along(settings):
    register(settings, alt_text_field="header_image_alt")
    article = Article.objects.create(title="Night trains")
    first = generate_for(article)
    GeneratedImage.objects.filter(pk=first.pk).update(alt_text="The first picture")
    generate_for(article, overwrite=True)
    use_generation(GeneratedImage.objects.get(pk=first.pk))
    article.refresh_from_db()
    assert article.header_image_alt == "The first picture"


@pytest.mark.parametrize(
    ("field", "problem"), [("nope", "has no field 'nope'"), ("published_at", "not a text field")]
)
def test_an_alt_text_field_that_is_missing_or_not_text_is_refused(settings, field, problem):
    with pytest.raises(ImproperlyConfigured, match=problem):
        build_config("testapp.Article", {**ARTICLE, "alt_text_field": field})
    register(settings, alt_text_field=field)
    errors = [m for m in checks.run_checks() if m.id == "nanobanana.E006"]
    assert any("alt_text_field" in m.msg and problem in m.msg for m in errors)


# In the admin -------------------------------------------------------------------------------


@pytest.mark.urls("tests.test_admin")
def test_an_editor_edits_the_alt_text_and_the_article_follows(settings, admin_client):
    register(settings, alt_text_field="header_image_alt")
    article = Article.objects.create(title="Night trains")
    row = generate_for(article)
    change_url = url("nanobanana_django_generatedimage_change", row.pk)

    page = admin_client.get(change_url).content.decode()
    assert 'name="alt_text"' in page and 'form="nanobanana-alt-text"' in page
    assert "Illustration for “Night trains”" in page

    response = admin_client.post(
        url("nanobanana_django_generatedimage_alt_text", row.pk),
        {"alt_text": "  A sleeper train\n crossing a valley at night "},
    )
    assert response.status_code == 302 and response["Location"] == change_url
    row.refresh_from_db()
    article.refresh_from_db()
    assert row.alt_text == "A sleeper train crossing a valley at night"
    assert article.header_image_alt == row.alt_text
    assert img_alt(article) == row.alt_text


@pytest.mark.urls("tests.test_admin")
def test_editing_an_image_the_article_no_longer_shows_leaves_the_article_alone(
    settings, admin_client
):
    register(settings, alt_text_field="header_image_alt")
    article = Article.objects.create(title="Night trains")
    old = generate_for(article)
    new = generate_for(article, overwrite=True)
    admin_client.post(
        url("nanobanana_django_generatedimage_alt_text", old.pk), {"alt_text": "Old picture"}
    )
    article.refresh_from_db()
    assert article.header_image_alt == new.alt_text
    assert GeneratedImage.objects.get(pk=old.pk).alt_text == "Old picture"


@pytest.mark.urls("tests.test_admin")
def test_alt_text_needs_a_post_and_permission_on_the_article(client, django_user_model):
    row = generate_for(Article.objects.create(title="Night trains"))
    viewer = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(Permission.objects.get(codename="view_generatedimage"))
    client.force_login(viewer)
    edit_url = url("nanobanana_django_generatedimage_alt_text", row.pk)
    assert client.get(edit_url).status_code == 405
    assert client.post(edit_url, {"alt_text": "Vandalised"}).status_code == 403
    page = client.get(url("nanobanana_django_generatedimage_change", row.pk)).content.decode()
    assert 'name="alt_text"' not in page and "Illustration for “Night trains”" in page
    assert GeneratedImage.objects.get(pk=row.pk).alt_text == "Illustration for “Night trains”"


# In a real browser ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("tests.test_admin")
def test_an_editor_saves_alt_text_in_chromium(
    live_server,
    browser,  # noqa: F811
    admin_user,
    settings,
):
    """The box sits inside the admin's read-only form and belongs to its own form through
    the ``form`` attribute: only a browser proves that its button sends it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    register(settings, alt_text_field="header_image_alt")
    article = Article.objects.create(title="Ten quiet cafés in Lisbon", topic="travel")
    row = generate_for(article)
    wait = WebDriverWait(browser, 30)
    log_in(browser, live_server, admin_user, "/admin/")
    wait.until(EC.presence_of_element_located((By.ID, "content")))
    browser.get(live_server.url + url("nanobanana_django_generatedimage_change", row.pk))
    box = wait.until(EC.presence_of_element_located((By.ID, "id_nanobanana_alt_text")))
    assert box.get_attribute("value") == "Illustration for “Ten quiet cafés in Lisbon”: travel"
    box.clear()
    box.send_keys("A narrow Lisbon street café with blue azulejo tiles in morning light")
    save_screenshot(browser, "alt-text.png")
    browser.find_element(By.CSS_SELECTOR, "button[form=nanobanana-alt-text]").click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist")))
    assert "Alt text saved, on" in browser.find_element(By.CSS_SELECTOR, "ul.messagelist").text
    article.refresh_from_db()
    expected = "A narrow Lisbon street café with blue azulejo tiles in morning light"
    assert GeneratedImage.objects.get(pk=row.pk).alt_text == expected
    assert article.header_image_alt == expected


def test_an_edit_run_through_the_pipeline_is_described_as_an_edit():
    article = Article.objects.create(title="Harbour at dawn")
    parent = generate_for(article)
    row = create_generation(article, prompt="make the sky stormy", overwrite=True)
    row.kind, row.parent, row.auto_attach = GeneratedImage.Kind.EDIT, parent, False
    row.save()
    row = run_generation(row.pk)
    assert row.status == GeneratedImage.Status.SUCCEEDED
    assert row.alt_text == "Illustration for “Harbour at dawn” – edited: make the sky stormy"


def test_an_editors_edit_that_replaces_the_image_brings_its_alt_text_to_the_article(settings):
    from nanobanana_django.edits import edit_generation

    register(settings, alt_text_field="header_image_alt")
    article = Article.objects.create(title="Harbour at dawn", topic="travel")
    parent = generate_for(article)
    child = edit_generation(parent, "make the sky stormy", attach=True)
    article.refresh_from_db()
    assert child.status == GeneratedImage.Status.SUCCEEDED
    assert (
        child.alt_text == "Illustration for “Harbour at dawn”: travel – edited: make the sky stormy"
    )
    assert article.header_image_alt == child.alt_text
    assert img_alt(article) == child.alt_text
