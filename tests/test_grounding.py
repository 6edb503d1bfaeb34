"""Grounding: web and image search per preset, per registered model and per call."""

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured, ValidationError

from nanobanana_django.models import GeneratedImage
from nanobanana_django.registry import get_config
from nanobanana_django.services import (
    create_generation,
    generate_for,
    generate_image,
    queue_generation,
)
from tests.test_admin import articles_url, confirm, run_action, url
from tests.test_admin_browser import browser, log_in, save_screenshot  # noqa: F401 - a fixture
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db

ARTICLE = {"title_field": "title", "image_field": "header_image"}
ADMIN_URLS = pytest.mark.urls("tests.test_admin")
NO_SEARCH = {
    "no_search": {
        "BACKEND": "nanobanana_django.providers.replicate.ReplicateProvider",
        "OPTIONS": {"model": "google/nano-banana", "api_token": "r8_test"},
    }
}


def register(settings, **options):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "MODELS": {"testapp.Article": {**ARTICLE, **options}},
    }


@pytest.fixture
def replicate(replicate, settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "MODELS": {"testapp.Article": ARTICLE}}
    return replicate


@pytest.fixture
def gemini(gemini, settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "MODELS": {"testapp.Article": ARTICLE}}
    return gemini


@pytest.fixture
def article():
    return Article.objects.create(title="The harbour festival 2026", topic="events")


def sent_to_replicate(emulator):
    (create,) = [r for r in emulator.requests if r.method == "POST" and "/models/" in r.path]
    return create.json()["input"]


def tools_sent_to_gemini(emulator):
    (call,) = [r for r in emulator.requests if ":generateContent" in r.path]
    return call.body.get("tools")


def searches(sent):
    return {key: sent[key] for key in ("google_search", "image_search") if sent.get(key)}


# The flags reach the provider --------------------------------------------------------------


@pytest.mark.parametrize(
    ("grounding", "expected"),
    [
        ("web", {"google_search": True}),
        ("image", {"google_search": True, "image_search": True}),
        ("off", {}),
    ],
)
def test_grounding_reaches_replicate_as_its_search_inputs(replicate, article, grounding, expected):
    row = generate_for(article, grounding=grounding)

    assert row.status == GeneratedImage.Status.SUCCEEDED, row.error_message
    assert searches(sent_to_replicate(replicate)) == expected
    assert searches(row.input_params) == expected  # recorded on the row


@pytest.mark.parametrize(
    ("grounding", "tools"),
    [
        ("web", [{"googleSearch": {}}]),
        ("image", [{"googleSearch": {"searchTypes": {"webSearch": {}, "imageSearch": {}}}}]),
        ("off", None),
    ],
)
def test_grounding_reaches_gemini_as_tools(gemini, article, grounding, tools):
    row = generate_for(article, grounding=grounding)

    assert row.status == GeneratedImage.Status.SUCCEEDED, row.error_message
    assert tools_sent_to_gemini(gemini) == tools


def test_a_bare_prompt_can_be_grounded(replicate):
    row = generate_image("The winners of this year's harbour regatta", grounding="web")

    assert sent_to_replicate(replicate)["google_search"] is True
    assert row.status == GeneratedImage.Status.SUCCEEDED


def test_a_queued_generation_keeps_its_grounding(
    replicate, article, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        row = queue_generation(article, grounding="image")

    row.refresh_from_db()
    assert row.status == GeneratedImage.Status.SUCCEEDED, row.error_message
    assert searches(sent_to_replicate(replicate)) == {"google_search": True, "image_search": True}


# Where it is set, and which wins -------------------------------------------------------------


def test_a_registered_models_grounding_applies_to_its_generations(settings, article):
    register(settings, grounding="web")

    row = create_generation(article)

    assert searches(row.input_params) == {"google_search": True}


def test_a_presets_grounding_key_applies_and_off_in_the_call_turns_it_off(settings, article):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "PRESETS": {"newsroom": {"input": {"resolution": "1K"}, "grounding": "image"}},
        "MODELS": {"testapp.Article": ARTICLE},
    }

    grounded = create_generation(article, preset="newsroom")
    GeneratedImage.objects.all().delete()
    plain = create_generation(article, preset="newsroom", grounding="off")

    assert searches(grounded.input_params) == {"google_search": True, "image_search": True}
    assert searches(plain.input_params) == {}


def test_the_call_beats_the_preset_which_beats_the_registration(settings, article):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "PRESETS": {"plain": {"grounding": "off"}},
        "MODELS": {"testapp.Article": {**ARTICLE, "grounding": "image"}},
    }

    by_preset = create_generation(article, preset="plain")
    GeneratedImage.objects.all().delete()
    by_call = create_generation(article, preset="plain", grounding="web")

    assert searches(by_preset.input_params) == {}
    assert searches(by_call.input_params) == {"google_search": True}


def test_grounding_off_beats_the_event_presets_web_search(settings, article):
    register(settings)

    row = create_generation(article, preset="event", grounding="off")

    assert searches(row.input_params) == {}


def test_the_registrations_grounding_beats_its_own_raw_input(settings, article):
    register(settings, input={"google_search": True, "image_search": True}, grounding="web")

    row = create_generation(article)

    assert searches(row.input_params) == {"google_search": True}


# Refused where it cannot be done -----------------------------------------------------------


def test_grounding_on_a_model_that_cannot_ground_is_refused_naming_the_model(
    settings, replicate, article
):
    settings.NANOBANANA = {**settings.NANOBANANA, "PROVIDERS": NO_SEARCH}

    with pytest.raises(ValidationError) as caught:
        generate_for(article, provider="no_search", grounding="web")

    (message,) = caught.value.message_dict["grounding"]
    assert "not available on google/nano-banana (provider 'no_search')" in message
    assert "google/nano-banana-2" in message and "turn grounding off" in message
    assert not GeneratedImage.objects.exists()
    assert replicate.requests == []


def test_grounding_off_is_fine_on_a_model_that_cannot_ground(settings, article):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "PROVIDERS": NO_SEARCH,
        "DEFAULT_INPUT": {},
        "MODELS": {"testapp.Article": ARTICLE},
    }

    row = create_generation(article, provider="no_search", grounding="off")

    assert "google_search" not in row.input_params


@pytest.mark.parametrize("value", ["yes", True, "Web"])
def test_an_unknown_grounding_is_a_validation_error_naming_the_values(settings, article, value):
    register(settings)

    with pytest.raises(ValidationError) as caught:
        create_generation(article, grounding=value)

    (message,) = caught.value.message_dict["grounding"]
    assert "'web'" in message and "'image'" in message and "'off'" in message


def check_ids(messages):
    return [message.id for message in messages]


def test_a_registration_asking_for_grounding_on_a_model_that_cannot_is_a_check_error(settings):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "PROVIDERS": NO_SEARCH,
        "MODELS": {"testapp.Article": {**ARTICLE, "provider": "no_search", "grounding": "web"}},
    }

    errors = [m for m in checks.run_checks(tags=["nanobanana"]) if m.id == "nanobanana.E013"]

    (error,) = errors
    assert "NANOBANANA['MODELS']['testapp.Article']['grounding']" in error.msg
    assert "google/nano-banana" in error.msg


def test_a_preset_asking_for_grounding_on_a_model_that_cannot_is_a_check_error(settings):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "PROVIDERS": NO_SEARCH,
        "PRESETS": {"newsroom": {"grounding": "image", "provider": "no_search"}},
    }

    errors = [m for m in checks.run_checks(tags=["nanobanana"]) if m.id == "nanobanana.E012"]

    assert len(errors) == 1
    assert "asks for grounding" in errors[0].msg
    assert "web and image search" in errors[0].msg


def test_a_bad_grounding_value_in_settings_names_the_key(settings):
    register(settings, grounding="always")

    with pytest.raises(ImproperlyConfigured) as caught:
        get_config(Article)

    assert "NANOBANANA['MODELS']['testapp.Article']['grounding'] is 'always'" in str(caught.value)
    assert "nanobanana.E006" in check_ids(checks.run_checks(tags=["nanobanana"]))


def test_a_bad_grounding_value_in_a_preset_is_a_check_error(settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "PRESETS": {"newsroom": {"grounding": 1}}}

    errors = [m for m in checks.run_checks(tags=["nanobanana"]) if m.id == "nanobanana.E012"]

    assert "NANOBANANA['PRESETS']['newsroom']['grounding'] is 1" in errors[0].msg


# The admin ---------------------------------------------------------------------------------


@ADMIN_URLS
def test_the_action_form_offers_grounding_with_what_it_does_and_its_latency(
    admin_client, settings, article
):
    register(settings, grounding="web")

    page = run_action(admin_client, articles_url(), "generate_header_image", [article])
    html = page.content.decode()

    assert "Grounding" in html
    assert '<option value="web" selected>Web search</option>' in html
    assert '<option value="image">Web and image search</option>' in html
    assert "looks up current facts" in html and "adds latency" in html


@ADMIN_URLS
@pytest.mark.parametrize(
    ("chosen", "expected"),
    [
        ("image", {"google_search": True, "image_search": True}),
        ("web", {"google_search": True}),
        ("off", {}),
    ],
)
def test_the_action_form_passes_the_grounding_on(admin_client, settings, article, chosen, expected):
    register(settings)

    confirm(admin_client, [article], grounding=chosen)

    assert searches(GeneratedImage.objects.get().input_params) == expected


@ADMIN_URLS
def test_an_unchanged_grounding_choice_leaves_the_picked_preset_in_charge(
    admin_client, settings, article
):
    register(settings)

    confirm(admin_client, [article], preset="event", grounding="off")

    assert searches(GeneratedImage.objects.get().input_params) == {"google_search": True}


@ADMIN_URLS
def test_the_action_form_leaves_grounding_out_where_the_model_cannot_ground(
    admin_client, settings, article
):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "PROVIDERS": NO_SEARCH,
        "MODELS": {"testapp.Article": {**ARTICLE, "provider": "no_search"}},
    }

    page = run_action(admin_client, articles_url(), "generate_header_image", [article])

    assert 'name="grounding"' not in page.content.decode()


@ADMIN_URLS
def test_a_generations_page_says_how_it_was_grounded(admin_client, settings, article):
    register(settings)
    row = create_generation(article, grounding="image")

    page = admin_client.get(url("nanobanana_django_generatedimage_change", row.pk))

    html = page.content.decode()
    assert "Grounding" in html and "Web and image search" in html


@ADMIN_URLS
@pytest.mark.django_db(transaction=True)
def test_an_editor_turns_on_web_and_image_search_in_the_action_form(
    live_server,
    browser,  # noqa: F811 - the fixture imported above
    admin_user,
    replicate_emulator,
    settings,
):
    """In Chromium; the screenshot is docs/screenshots/admin-grounding.png."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    settings.NANOBANANA = {
        **settings.NANOBANANA,
        **replicate_emulator.settings(),
        "TASK_RUNNER": "immediate",
        "POLL_INTERVAL": 0.05,
        "MODELS": {"testapp.Article": {**ARTICLE, "topic_field": "topic"}},
    }
    article = Article.objects.create(title="The harbour festival 2026", topic="events")
    wait = WebDriverWait(browser, 30)

    log_in(browser, live_server, admin_user, "/admin/testapp/article/")
    wait.until(EC.presence_of_element_located((By.ID, "result_list")))
    browser.execute_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    browser.refresh()
    wait.until(EC.presence_of_element_located((By.ID, "result_list")))
    browser.find_element(
        By.CSS_SELECTOR, f"input[name=_selected_action][value='{article.pk}']"
    ).click()
    Select(browser.find_element(By.NAME, "action")).select_by_value("generate_header_image")
    browser.find_element(By.CSS_SELECTOR, "button[name=index]").click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "body.nanobanana-generate")))

    page = browser.find_element(By.ID, "content").text
    assert "Grounding" in page and "adds latency" in page
    Select(browser.find_element(By.NAME, "grounding")).select_by_value("image")
    save_screenshot(browser, "admin-grounding.png")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit][value=Confirm]").click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li.success")))

    assert searches(sent_to_replicate(replicate_emulator)) == {
        "google_search": True,
        "image_search": True,
    }
