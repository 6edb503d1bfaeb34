"""Presets: named bundles of inputs and prompt guidance, on every route."""

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured, ValidationError

from nanobanana_django.models import GeneratedImage
from nanobanana_django.presets import BUILTIN_PRESETS, get_presets
from nanobanana_django.registry import get_config
from nanobanana_django.services import (
    create_generation,
    generate_for,
    generate_image,
    queue_generation,
    retry_generation,
)
from tests.test_admin import articles_url, confirm, run_action
from tests.test_references import make_set
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db

ARTICLE = {"title_field": "title", "topic_field": "topic", "image_field": "header_image"}


def register(settings, **options):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "MODELS": {"testapp.Article": {**ARTICLE, **options}},
    }


def sent_to_replicate(emulator):
    (create,) = [r for r in emulator.requests if r.method == "POST" and "/models/" in r.path]
    return create.json()["input"]


def sent_to_gemini(emulator):
    (call,) = [r for r in emulator.requests if ":generateContent" in r.path]
    return call.body


@pytest.mark.parametrize("name", list(BUILTIN_PRESETS))
def test_a_preset_sets_every_input_it_promises_on_replicate(replicate, name):
    article = Article.objects.create(title="The harbour festival", topic="events")
    if name == "brand":
        make_set("brand", 2)  # the brand preset sends the site's brand kit
    row = generate_for(article, preset=name)

    assert row.status == GeneratedImage.Status.SUCCEEDED, row.error_message
    sent = sent_to_replicate(replicate)
    for key, value in BUILTIN_PRESETS[name]["input"].items():
        assert sent[key] == value, key
    assert sent["prompt"].endswith(get_presets()[name].prompt_guidance)
    assert row.preset == name


@pytest.mark.parametrize("name", list(BUILTIN_PRESETS))
def test_a_preset_sets_every_input_it_promises_on_gemini(gemini, name):
    article = Article.objects.create(title="The harbour festival", topic="events")
    if name == "brand":
        make_set("brand", 2)  # the brand preset sends the site's brand kit
    row = generate_for(article, preset=name)

    assert row.status == GeneratedImage.Status.SUCCEEDED, row.error_message
    body = sent_to_gemini(gemini)
    promised = BUILTIN_PRESETS[name]["input"]
    image_config = body["generationConfig"]["imageConfig"]
    assert image_config["imageSize"] == promised["resolution"]
    if "aspect_ratio" in promised:
        assert image_config["aspectRatio"] == promised["aspect_ratio"]
    if promised.get("google_search"):
        assert body["tools"] == [{"googleSearch": {}}]
    else:
        assert "tools" not in body
    assert body["contents"][-1]["parts"][0]["text"].endswith(get_presets()[name].prompt_guidance)
    assert row.preset == name


def test_a_models_default_preset_applies_when_it_is_published(
    replicate, settings, django_capture_on_commit_callbacks
):
    register(settings, preset="print", publish={"field": "status", "values": ["published"]})
    with django_capture_on_commit_callbacks(execute=True):
        article = Article.objects.create(title="A map of the old town", status="published")

    row = GeneratedImage.objects.get()
    assert row.status == GeneratedImage.Status.SUCCEEDED, row.error_message
    assert row.preset == "print"
    assert row.content_object == article
    sent = sent_to_replicate(replicate)
    assert (sent["resolution"], sent["aspect_ratio"]) == ("4K", "4:3")


def test_the_registration_input_beats_its_default_preset_and_a_picked_preset_beats_both(settings):
    register(settings, preset="print", input={"aspect_ratio": "3:2"})
    article = Article.objects.create(title="Tides")

    by_default = create_generation(article)
    assert by_default.preset == "print"
    assert by_default.input_params["resolution"] == "4K"  # the default preset's
    assert by_default.input_params["aspect_ratio"] == "3:2"  # the registration's
    by_default.delete()

    picked = create_generation(article, preset="social_post")
    assert picked.preset == "social_post"
    assert (picked.input_params["resolution"], picked.input_params["aspect_ratio"]) == ("1K", "1:1")
    picked.delete()

    # Naming the model's own preset is the same as naming none.
    same = create_generation(article, preset="print")
    assert same.input_params["aspect_ratio"] == "3:2"
    same.delete()

    called = create_generation(article, preset="social_post", input={"aspect_ratio": "9:16"})
    assert called.input_params["aspect_ratio"] == "9:16"  # the call always wins


def test_a_prompt_given_by_the_caller_is_sent_as_given():
    row = create_generation(None, prompt="A lighthouse at dusk", preset="print")
    assert row.prompt == "A lighthouse at dusk"
    assert row.input_params["resolution"] == "4K"


def test_generate_image_takes_a_preset(replicate):
    row = generate_image("A lighthouse at dusk", preset="product_mockup")
    assert row.status == GeneratedImage.Status.SUCCEEDED, row.error_message
    assert sent_to_replicate(replicate)["resolution"] == "2K"
    assert row.preset == "product_mockup"


def test_an_unknown_preset_is_refused_with_the_known_names():
    article = Article.objects.create(title="Tides")
    with pytest.raises(ValidationError) as caught:
        create_generation(article, preset="blog")
    message = caught.value.message_dict["preset"][0]
    assert "'blog'" in message and "'blog_header'" in message and "NANOBANANA['PRESETS']" in message
    assert not GeneratedImage.objects.exists()


def test_an_unknown_default_preset_is_a_configuration_error(settings):
    register(settings, preset="blog")
    with pytest.raises(ImproperlyConfigured, match=r"\['preset'\].*'blog_header'"):
        get_config(Article)
    errors = [m for m in checks.run_checks() if m.id == "nanobanana.E006"]
    assert errors and "There is no preset 'blog'" in errors[0].msg


def test_a_preset_the_model_cannot_honour_is_refused_before_anything_is_sent(replicate, settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "MODEL": "google/nano-banana"}
    article = Article.objects.create(title="Tides")
    with pytest.raises(ValidationError) as caught:
        queue_generation(article, preset="event")
    message = caught.value.message_dict["preset"][0]
    assert "'event'" in message and "google/nano-banana" in message and "google_search" in message
    assert "Pick another preset" in message
    assert replicate.created_count == 0 and not GeneratedImage.objects.exists()


def test_check_reports_a_default_preset_the_provider_cannot_honour(replicate, settings):
    register(settings, preset="event")
    settings.NANOBANANA = {**settings.NANOBANANA, "MODEL": "google/nano-banana"}
    errors = [m for m in checks.run_checks() if m.id == "nanobanana.E012"]
    assert len(errors) == 1
    assert "testapp.Article" in errors[0].msg and "'event'" in errors[0].msg
    assert "google_search" in errors[0].msg and errors[0].hint


def test_a_site_preset_brings_its_template_guidance_and_provider(settings, gemini):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "PROVIDER": "placeholder",
        "PRESETS": {
            "newsletter": {
                "label": "Newsletter",
                "input": {"aspect_ratio": "3:2", "output_format": "png"},
                "prompt_template": "A watercolour of {{ title }}.",
                "prompt_guidance": "Soft pastel palette.",
                "provider": "gemini",
            },
        },
    }
    article = Article.objects.create(title="Spring planting")
    row = generate_for(article, preset="newsletter")

    assert row.status == GeneratedImage.Status.SUCCEEDED, row.error_message
    assert row.provider == "gemini" and row.preset == "newsletter"
    assert row.prompt == "A watercolour of Spring planting. Soft pastel palette."
    assert sent_to_gemini(gemini)["generationConfig"]["imageConfig"]["aspectRatio"] == "3:2"
    assert row.image.name.endswith(".png")


def test_a_site_entry_with_a_built_in_name_changes_only_the_keys_it_gives(settings):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "PRESETS": {"blog_header": {"input": {"resolution": "1K", "aspect_ratio": "21:9"}}},
    }
    preset = get_presets()["blog_header"]
    assert preset.input == {"resolution": "1K", "aspect_ratio": "21:9"}
    assert preset.prompt_guidance == BUILTIN_PRESETS["blog_header"]["prompt_guidance"]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"references": ["brand-kit"]}, "['references'] must be a string"),
        ({"steps": "crop"}, "['steps'] must be a list of step names"),
        ({"inputs": {}}, "unknown keys ['inputs']"),
        ({"input": "2K"}, "['input'] must be a dict"),
    ],
)
def test_check_reports_a_preset_setting_it_cannot_use(settings, entry, expected):
    settings.NANOBANANA = {**settings.NANOBANANA, "PRESETS": {"mine": entry}}
    errors = [m.msg for m in checks.run_checks() if m.id == "nanobanana.E001"]
    assert any(expected in msg for msg in errors), errors


def test_check_reports_a_site_preset_its_provider_cannot_honour(settings):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "PRESETS": {"huge": {"input": {"resolution": "8K"}}},
    }
    errors = [m for m in checks.run_checks() if m.id == "nanobanana.E012"]
    assert len(errors) == 1 and "'huge'" in errors[0].msg and "8K" in errors[0].msg


def test_a_retry_keeps_the_preset(settings):
    article = Article.objects.create(title="Tides")
    row = create_generation(article, preset="social_post")
    row.status = GeneratedImage.Status.FAILED
    row.save()

    again = retry_generation(row)
    assert again.preset == "social_post"
    assert again.prompt == row.prompt  # the guidance is not added twice
    assert again.input_params == row.input_params


# The admin action ------------------------------------------------------------------------

ADMIN_URLS = pytest.mark.urls("tests.test_admin")


@ADMIN_URLS
def test_the_admin_page_offers_the_presets_with_the_models_default_chosen(admin_client, settings):
    register(settings, preset="print")
    article = Article.objects.create(title="Tides", topic="sea")
    page = run_action(admin_client, articles_url(), "generate_header_image", [article])
    html = page.content.decode()

    assert '<option value="print" selected>Print (4K, 4:3)</option>' in html
    assert '<option value="event">Event content (1K, 16:9, web search)</option>' in html
    assert '<option value="4K" selected>4K</option>' in html
    assert get_presets()["print"].prompt_guidance in html  # the prompt shown is the one sent


@ADMIN_URLS
def test_picking_a_preset_in_the_admin_sends_its_inputs_and_a_changed_input_wins(
    admin_client, settings
):
    register(settings, preset="print")
    article = Article.objects.create(title="Tides", topic="sea")
    shown = run_action(admin_client, articles_url(), "generate_header_image", [article])
    prompt = shown.context["form"].initial["prompt"]

    # The inputs still show the print preset's 4K 4:3; only output_format was changed.
    confirm(
        admin_client,
        [article],
        preset="social_post",
        resolution="4K",
        aspect_ratio="4:3",
        output_format="png",
        prompt=prompt,
    )

    row = GeneratedImage.objects.get()
    assert row.preset == "social_post"
    assert row.input_params == {"resolution": "1K", "aspect_ratio": "1:1", "output_format": "png"}
    assert row.prompt.endswith(get_presets()["social_post"].prompt_guidance)


@ADMIN_URLS
def test_a_preset_the_provider_cannot_honour_is_shown_on_the_admin_page(admin_client, settings):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "PRESETS": {"searching": {"input": {"image_search": True}, "provider": "no_search"}},
        "PROVIDERS": {
            "no_search": {
                "BACKEND": "nanobanana_django.providers.replicate.ReplicateProvider",
                "OPTIONS": {"model": "google/nano-banana", "api_token": "r8_test"},
            }
        },
    }
    article = Article.objects.create(title="Tides")
    response = confirm(admin_client, [article], preset="searching")

    assert response.status_code == 200
    assert "cannot be used with google/nano-banana" in response.content.decode()
    assert not GeneratedImage.objects.exists()
