"""The generation pipeline, end to end with the offline placeholder provider."""

import os
import re

import pytest
from django.core.exceptions import ValidationError
from PIL import Image

from nanobanana_django.exceptions import SubmissionUncertain
from nanobanana_django.models import GeneratedImage
from nanobanana_django.providers import GenerationRequest, Prediction
from nanobanana_django.providers.base import SUCCEEDED
from nanobanana_django.providers.placeholder import PlaceholderProvider
from nanobanana_django.services import (
    AlreadyHasImage,
    attach,
    create_generation,
    generate_for,
    generate_image,
    run_generation,
)
from tests.testapp.models import Article, FeaturedArticle, Page, Poster

pytestmark = pytest.mark.django_db


def files_under(root):
    return sorted(
        os.path.relpath(os.path.join(folder, name), root)
        for folder, _, names in os.walk(root)
        for name in names
    )


def test_generating_for_an_article_stores_one_file_and_attaches_it(media_root):
    article = Article.objects.create(title="Ten quiet cafés in Lisbon", topic="travel")
    row = generate_for(article)

    assert row.status == GeneratedImage.Status.SUCCEEDED
    assert re.fullmatch(r"nanobanana/\d{4}/\d{2}/[0-9a-f]{32}\.jpg", row.image.name)
    assert article.header_image.name == row.image.name
    assert Article.objects.get().header_image.name == row.image.name
    # No second copy of the bytes: the image and its smaller renditions only.
    assert files_under(media_root) == sorted([row.image.name, *row.renditions.values()])
    assert list(row.renditions) == ["480", "768", "1024"]
    with Image.open(row.image.path) as image:
        assert image.format == "JPEG"
        assert image.size == (row.width, row.height) == (1376, 768)
    assert row.size_bytes == os.path.getsize(row.image.path)
    assert row.content_object == article
    assert row.provider == "placeholder" and row.is_placeholder
    assert "Ten quiet cafés in Lisbon" in row.prompt and "travel" in row.prompt
    assert row.input_params == {"aspect_ratio": "16:9", "resolution": "1K", "output_format": "jpg"}
    assert row.attempts == 1
    assert row.started_at and row.finished_at and row.finished_at >= row.started_at


def test_the_extension_follows_the_format_returned():
    row = generate_image("a lighthouse", input={"output_format": "png", "aspect_ratio": "1:1"})
    assert row.image.name.endswith(".png")
    assert (row.image_format, row.width, row.height) == ("PNG", 1024, 1024)


@pytest.mark.parametrize(
    "ratio, resolution, size",
    [("16:9", "2K", (2752, 1536)), ("9:16", "1K", (768, 1376)), ("21:9", "1K", (1584, 672))],
)
def test_the_image_matches_the_requested_ratio_and_resolution(ratio, resolution, size):
    row = generate_image("a lighthouse", input={"aspect_ratio": ratio, "resolution": resolution})
    with Image.open(row.image.path) as image:
        assert image.size == size


def test_saving_the_article_touches_only_the_image_field():
    article = Article.objects.create(title="Old title", topic="travel")
    Article.objects.filter(pk=article.pk).update(title="Edited meanwhile", body="new body")
    generate_for(article)  # ``article`` in memory still says "Old title"
    stored = Article.objects.get(pk=article.pk)
    assert (stored.title, stored.body) == ("Edited meanwhile", "new body")
    assert stored.header_image


def test_an_existing_image_is_not_replaced_by_default():
    article = Article.objects.create(title="Has one", header_image="headers/mine.jpg")
    with pytest.raises(AlreadyHasImage, match="overwrite=True"):
        generate_for(article)
    assert not GeneratedImage.objects.exists()  # nothing recorded, nothing billed
    assert Article.objects.get().header_image.name == "headers/mine.jpg"


def test_overwrite_replaces_the_existing_image():
    article = Article.objects.create(title="Has one", header_image="headers/mine.jpg")
    row = generate_for(article, overwrite=True)
    assert Article.objects.get().header_image.name == row.image.name


def test_an_image_set_while_generating_is_kept():
    article = Article.objects.create(title="Racing editor")
    row = create_generation(article)
    Article.objects.filter(pk=article.pk).update(header_image="headers/chosen-by-editor.jpg")
    row = run_generation(row.pk)
    assert row.status == GeneratedImage.Status.SUCCEEDED  # the image is kept for later use
    assert Article.objects.get().header_image.name == "headers/chosen-by-editor.jpg"


def test_a_foreign_key_field_points_at_the_generation():
    page = Page.objects.create(headline="About us")
    row = generate_for(page)
    assert Page.objects.get().image == row


def test_a_field_in_another_storage_gets_its_own_copy(settings, tmp_path):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "MODELS": {"testapp.Poster": {"title_field": "name", "image_field": "picture"}},
    }
    poster = Poster.objects.create(name="Summer fair")
    row = generate_for(poster)
    poster.refresh_from_db()
    assert poster.picture.storage.exists(poster.picture.name)
    with poster.picture.open("rb") as copy, row.image.open("rb") as original:
        assert copy.read() == original.read()
    poster.picture.delete(save=False)


def test_images_go_to_the_configured_storage_alias(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "headers": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "headers"), "base_url": "/headers/"},
        },
    }
    settings.NANOBANANA = {**settings.NANOBANANA, "STORAGE": "headers", "UPLOAD_TO": "ai"}
    row = generate_image("a lighthouse")
    assert row.image.name.startswith("ai/")
    assert (tmp_path / "headers" / row.image.name).is_file()
    assert row.image.url.startswith("/headers/ai/")


def test_bad_input_is_refused_before_anything_is_recorded():
    article = Article.objects.create(title="A")
    with pytest.raises(ValidationError) as excinfo:
        generate_for(article, input={"resolution": "8K"})
    assert "resolution" in excinfo.value.message_dict
    assert not GeneratedImage.objects.exists()


def test_registered_input_defaults_apply(settings):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "MODELS": {
            "testapp.Article": {
                "title_field": "title",
                "image_field": "header_image",
                "input": {"aspect_ratio": "21:9"},
            }
        },
    }
    row = generate_for(Article.objects.create(title="Wide"))
    assert (row.width, row.height) == (1584, 672)


def test_a_failure_is_recorded_and_the_article_is_left_alone(settings, monkeypatch):
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    settings.NANOBANANA = {**settings.NANOBANANA, "PROVIDER": "replicate"}
    article = Article.objects.create(title="No token")
    row = generate_for(article)
    assert row.status == GeneratedImage.Status.FAILED
    assert row.error_code == "authentication_failed"
    assert "REPLICATE_API_TOKEN" in row.error_message
    assert row.finished_at is not None
    assert not Article.objects.get().header_image


class CountingProvider(PlaceholderProvider):
    submitted = 0

    def submit(self, request):
        CountingProvider.submitted += 1
        return super().submit(request)


def test_running_a_generation_twice_submits_it_once(settings):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "PROVIDERS": {"counting": {"BACKEND": f"{__name__}.CountingProvider"}},
        "PROVIDER": "counting",
    }
    CountingProvider.submitted = 0
    row = create_generation(Article.objects.create(title="Twice"))
    first = run_generation(row.pk)
    second = run_generation(row.pk)
    assert CountingProvider.submitted == 1
    assert first.image.name == second.image.name
    assert second.attempts == 1


def test_an_unexpected_error_is_recorded_without_internals(settings):
    class Broken(PlaceholderProvider):
        def submit(self, request):
            raise RuntimeError("secret internals")

    row = create_generation(None, prompt="a lighthouse")
    row = run_generation(row.pk, provider=Broken())
    assert row.status == GeneratedImage.Status.FAILED
    assert row.error_code == "internal_error"
    assert "RuntimeError" in row.error_message and "secret internals" not in row.error_message


def test_attach_can_put_an_older_generation_back():
    article = Article.objects.create(title="Two tries")
    first = generate_for(article)
    second = generate_for(article, overwrite=True)
    assert Article.objects.get().header_image.name == second.image.name
    assert attach(first, overwrite=True) is True
    assert Article.objects.get().header_image.name == first.image.name


def test_a_generation_for_a_deleted_article_still_succeeds():
    article = Article.objects.create(title="Gone soon")
    row = create_generation(article)
    Article.objects.all().delete()
    row = run_generation(row.pk)
    assert row.status == GeneratedImage.Status.SUCCEEDED


def test_the_placeholder_returns_a_terminal_prediction_with_bytes():
    prediction = PlaceholderProvider().submit(
        GenerationRequest(
            model="google/nano-banana-2", input={"prompt": "x", "aspect_ratio": "1:1"}
        )
    )
    assert isinstance(prediction, Prediction) and prediction.status == SUCCEEDED
    assert prediction.content[:2] == b"\xff\xd8"


def test_a_database_error_while_attaching_leaves_the_row_resumable(monkeypatch, media_root):
    from django.db import OperationalError

    from nanobanana_django import pipeline as services

    def locked(row, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(services, "attach", locked)
    row = create_generation(Article.objects.create(title="Locked"))
    with pytest.raises(OperationalError):
        run_generation(row.pk)
    row.refresh_from_db()
    assert row.status == GeneratedImage.Status.RUNNING  # not "succeeded" without its image
    assert row.prediction_id  # a redelivered task resumes from here
    assert files_under(media_root) == []  # the stored copy was removed

    monkeypatch.undo()
    row = run_generation(row.pk)
    assert row.status == GeneratedImage.Status.SUCCEEDED
    assert Article.objects.get().header_image.name == row.image.name


def test_an_image_that_cannot_be_attached_is_kept_on_the_row(settings):
    article = Article.objects.create(title="Unregistered later")
    row = create_generation(article)
    settings.NANOBANANA = {**settings.NANOBANANA, "MODELS": {}}
    row = run_generation(row.pk)
    assert row.status == GeneratedImage.Status.SUCCEEDED
    assert row.image
    assert not Article.objects.get().header_image


def test_a_proxy_model_registered_on_its_own_gets_its_image_attached(
    settings, django_capture_on_commit_callbacks
):
    settings.NANOBANANA = {
        "PROVIDER": "placeholder",
        "TASK_RUNNER": "immediate",
        "MODELS": {
            "testapp.FeaturedArticle": {
                "title_field": "title",
                "image_field": "header_image",
                "publish": {"field": "status", "values": ["published"]},
            }
        },
    }
    with django_capture_on_commit_callbacks(execute=True):
        article = FeaturedArticle.objects.create(title="Featured: spring", status="published")

    row = GeneratedImage.objects.get()
    assert row.status == GeneratedImage.Status.SUCCEEDED
    article.refresh_from_db()
    assert article.header_image.name == row.image.name
    assert "Featured: spring" in row.prompt

    again = generate_for(article, overwrite=True)
    article.refresh_from_db()
    assert article.header_image.name == again.image.name != row.image.name


def test_a_lost_create_at_a_provider_that_cannot_list_fails_as_uncertain():
    class LosesAnswers(PlaceholderProvider):
        def submit(self, request):
            raise SubmissionUncertain("The answer was lost; check the dashboard.")

        def find(self, request, *, created_after):
            return NotImplemented

    row = run_generation(create_generation(None, prompt="a lighthouse").pk, provider=LosesAnswers())
    assert row.status == GeneratedImage.Status.FAILED
    assert row.error_code == "submission_uncertain"
    assert "check the dashboard" in row.error_message


def test_a_configuration_error_found_while_generating_is_recorded_as_such(settings):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "PROVIDERS": {"custom": {"BACKEND": f"{__name__}.CountingProvider"}},
    }
    row = create_generation(None, prompt="a lighthouse", provider="custom")
    settings.NANOBANANA = {**settings.NANOBANANA, "PROVIDERS": {}}  # removed before it ran
    row = run_generation(row.pk)
    assert row.status == GeneratedImage.Status.FAILED
    assert row.error_code == "improperly_configured"
    assert "There is no provider alias 'custom'" in row.error_message  # not "Unexpected error"
