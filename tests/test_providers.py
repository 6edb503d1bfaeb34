"""Providers are plug-ins configured by alias, like STORAGES."""

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured, ValidationError

from nanobanana_django.models import GeneratedImage
from nanobanana_django.providers import Capabilities, get_provider, get_provider_config
from nanobanana_django.providers.base import SUCCEEDED, Prediction, Provider
from nanobanana_django.services import create_generation, generate_for, generate_image
from nanobanana_django.specs import ModelSpec
from tests.testapp.models import Article


class StampProvider(Provider):
    """A third party's provider, defined outside the package: a flat colour, inline."""

    capabilities = Capabilities()
    made: list[dict] = []

    def __init__(self, *, colour: str = "teal") -> None:
        self.colour = colour

    @classmethod
    def default_options(cls):
        return {"colour": "teal"}

    @classmethod
    def model_for(cls, options):
        return "stamp-1"

    @classmethod
    def spec_for(cls, options):
        return ModelSpec(
            name="stamp-1",
            choices={
                "aspect_ratio": ("16:9", "1:1"),
                "resolution": ("1K",),
                "output_format": ("jpg", "png"),
            },
            defaults={},
        )

    def submit(self, request):
        import io

        from PIL import Image

        StampProvider.made.append({"colour": self.colour, **request.input})
        size = (1376, 768) if request.input.get("aspect_ratio") == "16:9" else (1024, 1024)
        out = io.BytesIO()
        Image.new("RGB", size, self.colour).save(out, "JPEG")
        return Prediction(
            id=f"stamp-{len(StampProvider.made)}", status=SUCCEEDED, content=out.getvalue()
        )

    def open_output(self, prediction, *, max_bytes):
        import io

        return io.BytesIO(prediction.content)


def configure(settings, **values):
    settings.NANOBANANA = {**settings.NANOBANANA, **values}


def ids(**kwargs):
    return [(m.id, m.msg, m.hint) for m in run_checks(tags=["nanobanana"], **kwargs)]


@pytest.mark.django_db
def test_a_third_party_provider_configured_by_alias_generates_an_image(settings):
    StampProvider.made = []
    configure(
        settings,
        PROVIDERS={
            "stamps": {"BACKEND": f"{__name__}.StampProvider", "OPTIONS": {"colour": "red"}}
        },
        PROVIDER="stamps",
    )
    article = Article.objects.create(title="Stamped")

    row = generate_for(article)

    assert row.status == GeneratedImage.Status.SUCCEEDED, row.error_message
    assert (row.provider, row.model_name) == ("stamps", "stamp-1")
    assert (row.width, row.height) == (1376, 768)
    assert StampProvider.made == [
        {
            "colour": "red",
            "prompt": row.prompt,
            "aspect_ratio": "16:9",
            "resolution": "1K",
            "output_format": "jpg",
        }
    ]
    article.refresh_from_db()
    assert article.header_image.name == row.image.name


def test_an_unknown_alias_is_a_check_error_with_the_fix(settings):
    configure(settings, PROVIDER="gemni")
    [(check_id, message, hint)] = [m for m in ids() if m[0] == "nanobanana.E010"]
    assert "There is no provider alias 'gemni'" in message
    assert "'gemini'" in message and "NANOBANANA['PROVIDERS']" in hint


def test_an_unknown_option_names_the_alias_and_the_option(settings):
    configure(settings, PROVIDERS={"gemini": {"OPTIONS": {"api_key": "k", "modle": "x"}}})
    [(check_id, message, _hint)] = [m for m in ids() if m[0] == "nanobanana.E010"]
    assert "NANOBANANA['PROVIDERS']['gemini']['OPTIONS']" in message and "'modle'" in message
    assert "model" in message  # what it does take


def test_a_backend_that_cannot_be_imported_is_reported(settings):
    configure(settings, PROVIDERS={"mine": {"BACKEND": "myproject.nope.Provider"}})
    [(check_id, message, _hint)] = [m for m in ids() if m[0] == "nanobanana.E010"]
    assert "NANOBANANA['PROVIDERS']['mine']['BACKEND']" in message
    assert "cannot be imported" in message


def test_a_bad_option_value_is_reported_without_echoing_the_key(settings):
    configure(
        settings,
        PROVIDERS={"gemini": {"OPTIONS": {"api_key": "AIza-secret", "concurrency": 0}}},
        PROVIDER="gemini",
    )
    messages = [m for m in ids() if m[0] == "nanobanana.E010"]
    assert messages and "'concurrency'" in messages[0][1]
    assert all("AIza-secret" not in f"{m[1]} {m[2]}" for m in ids())


def test_a_missing_gemini_key_is_reported_only_when_gemini_is_used(settings, monkeypatch):
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    configure(settings, PROVIDER="placeholder")
    assert not [m for m in ids() if m[0] == "nanobanana.E002"]
    configure(settings, PROVIDER="gemini")
    [(check_id, message, hint)] = [m for m in ids() if m[0] == "nanobanana.E002"]
    assert "'gemini'" in message and "GEMINI_API_KEY" in hint


def test_the_key_comes_from_the_environment(settings, monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", "from-google-env")
    assert get_provider_config("gemini").options["api_key"] == "from-google-env"
    monkeypatch.setenv("GEMINI_API_KEY", "from-gemini-env")
    assert get_provider_config("gemini").options["api_key"] == "from-gemini-env"


def test_top_level_replicate_settings_are_the_replicate_aliass_defaults(settings):
    configure(
        settings,
        REPLICATE_API_TOKEN="r8_shorthand",
        MODEL="google/nano-banana-pro",
        REPLICATE_WAIT=10,
        RATE_LIMIT=100,
    )
    options = get_provider_config("replicate").options
    assert (options["api_token"], options["model"], options["wait"], options["rate_limit"]) == (
        "r8_shorthand",
        "google/nano-banana-pro",
        10,
        100,
    )
    configure(settings, PROVIDERS={"replicate": {"OPTIONS": {"wait": 5}}})
    assert get_provider_config("replicate").options["wait"] == 5  # OPTIONS win
    assert get_provider_config("replicate").options["model"] == "google/nano-banana-pro"


def test_a_class_path_as_provider_says_how_to_make_it_an_alias(settings):
    configure(settings, PROVIDER="myproject.providers.Mine")
    with pytest.raises(ImproperlyConfigured) as excinfo:
        get_provider_config()
    assert "NANOBANANA['PROVIDERS'] = {'custom': {'BACKEND': 'myproject.providers.Mine'}}" in str(
        excinfo.value
    )


@pytest.mark.django_db
def test_input_is_validated_against_the_provider_that_will_receive_it(settings):
    configure(settings, PROVIDERS={"gemini": {"OPTIONS": {"api_key": "k"}}})
    url = {"image_input": ["https://example.com/brand.png"]}
    create_generation(None, prompt="a cat", input=url, provider="placeholder")  # Replicate's inputs
    with pytest.raises(ValidationError) as excinfo:
        create_generation(None, prompt="a cat", input=url, provider="gemini")
    assert "data: URIs" in excinfo.value.message_dict["image_input"][0]
    with pytest.raises(ValidationError) as excinfo:
        create_generation(
            None, prompt="a cat", input={"safety_filter_level": "x"}, provider="gemini"
        )
    assert "safety_filter_level" in excinfo.value.message_dict
    assert not GeneratedImage.objects.filter(provider="gemini").exists()  # nothing recorded


@pytest.mark.django_db
def test_a_registered_model_may_name_its_own_provider(settings):
    StampProvider.made = []
    configure(
        settings,
        PROVIDERS={"stamps": {"BACKEND": f"{__name__}.StampProvider"}},
        MODELS={
            "testapp.Article": {
                "title_field": "title",
                "image_field": "header_image",
                "provider": "stamps",
            }
        },
    )
    row = generate_for(Article.objects.create(title="Own route"))
    assert row.provider == "stamps" and row.status == GeneratedImage.Status.SUCCEEDED
    assert generate_image("a bare prompt").provider == "placeholder"  # the default alias


def test_get_provider_builds_the_alias_with_its_options(settings):
    configure(
        settings,
        PROVIDERS={
            "stamps": {"BACKEND": f"{__name__}.StampProvider", "OPTIONS": {"colour": "navy"}}
        },
    )
    with get_provider("stamps") as provider:
        assert isinstance(provider, StampProvider)
        assert (provider.alias, provider.colour) == ("stamps", "navy")
