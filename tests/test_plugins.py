"""What starts a generation (triggers) and where its image goes (targets) are pluggable."""

import pytest
from django.core.checks import run_checks
from django.db import models
from django.dispatch import Signal

from nanobanana_django.models import GeneratedImage
from nanobanana_django.services import generate_for, queue_generation
from nanobanana_django.targets import AttachTarget
from nanobanana_django.triggers import Trigger
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db

page_published = Signal()  # a stand-in for a CMS's own signal


class PagePublishedTrigger(Trigger):
    @classmethod
    def connect(cls):
        page_published.connect(cls.published, dispatch_uid="test-pages")

    @classmethod
    def disconnect(cls):
        page_published.disconnect(dispatch_uid="test-pages")

    @staticmethod
    def published(sender, instance, **kwargs):
        queue_generation(instance)


class UrlInBodyTarget(AttachTarget):
    """Puts the image's URL into a text field (think of a CMS storing references)."""

    @classmethod
    def accepts(cls, model_field):
        return isinstance(model_field, models.TextField)

    def set(self, obj, model_field, row):
        setattr(obj, model_field.attname, row.image.url)
        return [model_field.name]

    def is_empty_q(self, model_field):
        return models.Q(**{model_field.attname: ""})


ARTICLE = {
    "title_field": "title",
    "image_field": "header_image",
    "publish": {"field": "status", "values": ["published"]},
}


def test_a_trigger_of_ones_own_starts_generations(settings, django_capture_on_commit_callbacks):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "TASK_RUNNER": "immediate",
        "MODELS": {"testapp.Article": ARTICLE},
        "TRIGGERS": [f"{__name__}.PagePublishedTrigger"],
    }
    with django_capture_on_commit_callbacks(execute=True):
        published = Article.objects.create(title="By the model rule", status="published")
    assert not GeneratedImage.objects.exists()  # the model-signal trigger is not configured

    with django_capture_on_commit_callbacks(execute=True):
        page_published.send(sender=Article, instance=published)

    row = GeneratedImage.objects.get()
    assert row.status == GeneratedImage.Status.SUCCEEDED
    published.refresh_from_db()
    assert published.header_image.name == row.image.name


def test_the_default_trigger_is_the_publish_rule(settings, django_capture_on_commit_callbacks):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "TASK_RUNNER": "immediate",
        "MODELS": {"testapp.Article": ARTICLE},
    }
    with django_capture_on_commit_callbacks(execute=True):
        Article.objects.create(title="Published", status="published")
    assert GeneratedImage.objects.get().status == GeneratedImage.Status.SUCCEEDED


def test_an_attach_target_of_ones_own_takes_a_field_the_app_does_not_know(settings):
    registration = {"title_field": "title", "image_field": "body"}
    settings.NANOBANANA = {**settings.NANOBANANA, "MODELS": {"testapp.Article": registration}}
    assert any(
        m.id == "nanobanana.E006" and "NANOBANANA['TARGETS']" in m.msg
        for m in run_checks(tags=["nanobanana"])
    )

    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "TARGETS": [f"{__name__}.UrlInBodyTarget", "nanobanana_django.targets.FileFieldTarget"],
    }
    article = Article.objects.create(title="Referenced")
    row = generate_for(article)

    article.refresh_from_db()
    assert article.body == row.image.url
    assert not article.header_image  # only the registered field changed


@pytest.mark.parametrize("key", ["TRIGGERS", "TARGETS"])
def test_a_plugin_path_that_cannot_be_imported_is_reported(settings, key):
    settings.NANOBANANA = {**settings.NANOBANANA, key: ["myproject.nope.Plugin"]}
    messages = [m.msg for m in run_checks(tags=["nanobanana"]) if m.id == "nanobanana.E001"]
    assert any(f"NANOBANANA['{key}']" in m and "cannot be imported" in m for m in messages)
