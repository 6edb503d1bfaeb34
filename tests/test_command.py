"""``manage.py nanobanana_generate``."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from nanobanana_django.models import GeneratedImage
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db


def generate(*args):
    call_command("nanobanana_generate", "testapp.Article", *args)


def test_every_article_without_an_image_gets_one_and_the_rest_are_skipped(capsys):
    bare = Article.objects.create(title="Bare")
    kept = Article.objects.create(title="Kept", header_image="headers/kept.jpg")
    generate("--sync")
    assert Article.objects.get(pk=bare.pk).header_image.name.startswith("nanobanana/")
    assert Article.objects.get(pk=kept.pk).header_image.name == "headers/kept.jpg"
    out = capsys.readouterr().out
    assert "already has an image, skipped" in out
    assert "Done: 1 succeeded, 0 failed, 1 skipped." in out


def test_missing_only_does_not_even_look_at_articles_with_images(capsys):
    Article.objects.create(title="Kept", header_image="headers/kept.jpg")
    Article.objects.create(title="Bare")
    generate("--missing-only", "--sync")
    assert "Done: 1 succeeded, 0 failed, 0 skipped." in capsys.readouterr().out


def test_overwrite_replaces(capsys):
    kept = Article.objects.create(title="Kept", header_image="headers/kept.jpg")
    generate("--ids", str(kept.pk), "--overwrite", "--sync")
    assert Article.objects.get().header_image.name.startswith("nanobanana/")


def test_ids_limit_the_run():
    one, two = Article.objects.create(title="One"), Article.objects.create(title="Two")
    generate("--ids", str(two.pk), "--sync")
    assert not Article.objects.get(pk=one.pk).header_image
    assert GeneratedImage.objects.get().object_id == str(two.pk)


def test_unknown_ids_are_named():
    with pytest.raises(CommandError, match="No testapp.Article with id 404"):
        generate("--ids", "404", "--sync")


def test_an_unregistered_model_says_how_to_register_it():
    with pytest.raises(CommandError, match="NANOBANANA\\['MODELS'\\]"):
        call_command("nanobanana_generate", "auth.User", "--sync")


def test_without_sync_the_user_is_told_what_is_available():
    with pytest.raises(CommandError, match="--sync"):
        generate()


def test_contradicting_options_are_refused():
    with pytest.raises(CommandError, match="contradict"):
        generate("--missing-only", "--overwrite", "--sync")
