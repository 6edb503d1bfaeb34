"""An article that becomes published gets one header image, queued after commit."""

import logging
from datetime import timedelta

import pytest
from django.core import serializers
from django.db import transaction
from django.utils import timezone

from nanobanana_django.adapter import HeaderImageAdapter
from nanobanana_django.models import GeneratedImage
from nanobanana_django.services import GenerationInProgress, queue_generation
from nanobanana_django.signals import image_generated, image_generation_failed
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db

Status = GeneratedImage.Status
STATUS_RULE = {"field": "status", "values": ["published"]}


def register(settings, publish=STATUS_RULE, **options):
    entry = {
        "title_field": "title",
        "topic_field": "topic",
        "image_field": "header_image",
        "publish": publish,
        **options,
    }
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "TASK_RUNNER": "immediate",
        "MODELS": {"testapp.Article": entry},
    }


@pytest.fixture
def publishing(settings):
    register(settings)


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """Run the block, then its on-commit callbacks, as a committed request would."""

    def run(block):
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            result = block()
        return result, callbacks

    return run


def test_publishing_an_article_attaches_one_image(publishing, commit):
    article = Article.objects.create(title="Night trains of Europe", topic="travel")
    assert not GeneratedImage.objects.exists()

    article.status = "published"
    commit(article.save)

    row = GeneratedImage.objects.get()
    assert row.status == Status.SUCCEEDED
    assert Article.objects.get().header_image.name == row.image.name
    assert "Night trains of Europe" in row.prompt


def test_an_article_created_as_published_gets_an_image(publishing, commit):
    commit(lambda: Article.objects.create(title="Born published", status="published"))
    assert GeneratedImage.objects.get().status == Status.SUCCEEDED


def test_saving_the_same_article_five_times_queues_one_generation(publishing, commit):
    article = Article.objects.create(title="Saved often")
    article.status = "published"
    for _ in range(5):
        commit(article.save)
    for _ in range(3):
        fresh = Article.objects.get()
        fresh.body += "more"
        commit(fresh.save)
    assert GeneratedImage.objects.count() == 1


def test_a_draft_save_queues_nothing(publishing, commit):
    article, _ = commit(lambda: Article.objects.create(title="Draft"))
    article.body = "edited"
    commit(article.save)
    assert not GeneratedImage.objects.exists()


def test_a_rollback_after_save_queues_nothing(publishing, django_capture_on_commit_callbacks):
    article = Article.objects.create(title="Rolled back")
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        article.status = "published"
        article.save()
        raise RuntimeError("the view failed after saving")
    assert callbacks == []
    assert not GeneratedImage.objects.exists()


def test_a_generation_waits_for_the_commit(settings, django_capture_on_commit_callbacks):
    register(settings)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        Article.objects.create(title="Pending", status="published")
    row = GeneratedImage.objects.get()
    assert row.status == Status.QUEUED  # recorded in the transaction, not yet run
    assert len(callbacks) == 1


def test_fixture_loads_are_ignored(publishing, commit):
    data = serializers.serialize("json", [Article(pk=42, title="Fixture", status="published")])

    def load():
        for item in serializers.deserialize("json", data):
            item.save()  # raw=True, as loaddata does

    commit(load)
    assert Article.objects.filter(pk=42).exists()
    assert not GeneratedImage.objects.exists()


def test_update_fields_that_cannot_publish_are_ignored(publishing, commit):
    article = Article.objects.create(title="Partial")
    article.status = "published"
    commit(lambda: article.save(update_fields=["title"]))  # status not written
    assert not GeneratedImage.objects.exists()
    commit(lambda: article.save(update_fields=["status"]))
    assert GeneratedImage.objects.count() == 1


def test_an_article_that_already_has_an_image_is_left_alone(publishing, commit):
    article = Article.objects.create(title="Has one", header_image="headers/mine.jpg")
    article.status = "published"
    commit(article.save)
    assert not GeneratedImage.objects.exists()
    assert Article.objects.get().header_image.name == "headers/mine.jpg"


def test_regenerate_replaces_the_image_on_publish(settings, commit):
    register(settings, regenerate=True)
    article = Article.objects.create(title="Has one", header_image="headers/mine.jpg")
    article.status = "published"
    commit(article.save)
    assert Article.objects.get().header_image.name.startswith("nanobanana/")


def test_a_boolean_field_rule(settings, commit):
    register(settings, publish={"field": "is_live"})
    article, _ = commit(lambda: Article.objects.create(title="Flag"))
    assert not GeneratedImage.objects.exists()
    article.is_live = True
    commit(article.save)
    assert GeneratedImage.objects.count() == 1


def test_a_datetime_field_rule_needs_a_time_not_in_the_future(settings, commit):
    register(settings, publish={"field": "published_at"})
    later = timezone.now() + timedelta(days=1)
    article, _ = commit(lambda: Article.objects.create(title="Scheduled", published_at=later))
    assert not GeneratedImage.objects.exists()
    article.published_at = timezone.now() - timedelta(minutes=1)
    commit(article.save)
    assert GeneratedImage.objects.count() == 1


def test_a_single_value_rule(settings, commit):
    register(settings, publish={"field": "status", "value": "live"})
    commit(lambda: Article.objects.create(title="Live", status="live"))
    assert GeneratedImage.objects.count() == 1


def test_a_callable_rule_by_dotted_path(settings, commit):
    register(settings, publish="tests.testapp.rules.is_published")
    article, _ = commit(lambda: Article.objects.create(title="Callable"))
    article.status = "published"
    commit(article.save)
    commit(article.save)
    assert GeneratedImage.objects.count() == 1


def test_an_object_loaded_with_the_rule_field_deferred_is_judged_from_the_database(
    publishing, commit
):
    Article.objects.create(title="Deferred")
    Article.objects.update(status="published")  # published behind the snapshot's back
    article = Article.objects.defer("status").get()
    article.body = "edited"
    commit(article.save)
    assert not GeneratedImage.objects.exists()  # it was published already


def test_a_field_rule_reads_no_extra_query(publishing, django_assert_num_queries):
    article = Article.objects.create(title="Fast", status="published", header_image="x.jpg")
    article = Article.objects.get(pk=article.pk)
    article.body = "edited"
    with django_assert_num_queries(1):  # the UPDATE itself
        article.save()


class BrandAdapter(HeaderImageAdapter):
    def build_prompt(self, obj, config):
        return super().build_prompt(obj, config) + " Brand colours: teal and sand."

    def is_published(self, obj, config):
        return obj.topic == "news"


def test_an_adapter_decides_policy(settings, commit):
    register(settings)
    settings.NANOBANANA = {**settings.NANOBANANA, "ADAPTER": f"{__name__}.BrandAdapter"}
    commit(lambda: Article.objects.create(title="Not news", status="published"))
    assert not GeneratedImage.objects.exists()
    article, _ = commit(lambda: Article.objects.create(title="Some news"))
    article.topic = "news"
    commit(article.save)
    assert GeneratedImage.objects.get().prompt.endswith("Brand colours: teal and sand.")


def test_the_prompt_template_gets_title_topic_and_object(settings, commit):
    register(
        settings,
        prompt_template=(
            "{{ title }} / {{ topic|default:'general' }} / #{{ object.pk }} <b>bold</b>"
        ),
    )
    article, _ = commit(
        lambda: Article.objects.create(title="<em>Cafés</em>   of   Lisbon", status="published")
    )
    assert GeneratedImage.objects.get().prompt == f"Cafés of Lisbon / general / #{article.pk} bold"


def test_the_prompt_is_plain_text_not_html_escaped(publishing, commit):
    commit(lambda: Article.objects.create(title="A beginner's guide to R&D", status="published"))
    assert "“A beginner's guide to R&D”" in GeneratedImage.objects.get().prompt


def test_the_default_prompt_is_editorial_and_forbids_text(publishing, commit):
    commit(lambda: Article.objects.create(title="Quiet cafés", status="published"))
    prompt = GeneratedImage.objects.get().prompt
    assert prompt.startswith("Editorial header image for an article titled “Quiet cafés”.")
    assert "No text" in prompt and "about" not in prompt  # no topic given


def test_a_very_long_title_gives_a_bounded_prompt(settings, commit):
    # A TextField: PostgreSQL, unlike SQLite, refuses 10,000 characters in a CharField(200).
    register(settings, title_field="body")
    commit(lambda: Article.objects.create(body="word " * 2000, status="published"))
    assert len(GeneratedImage.objects.get().prompt) < 1000


def test_a_problem_queueing_never_breaks_the_save(settings, commit, caplog):
    register(settings)
    settings.NANOBANANA = {**settings.NANOBANANA, "DEFAULT_INPUT": {"resolution": "9K"}}
    with caplog.at_level(logging.ERROR, logger="nanobanana_django"):
        article, _ = commit(lambda: Article.objects.create(title="Still saved", status="published"))
    assert Article.objects.filter(pk=article.pk).exists()
    assert not GeneratedImage.objects.exists()
    assert "resolution" in caplog.text


def test_one_generation_at_a_time_per_article(publishing):
    article = Article.objects.create(title="Busy")
    queue_generation(article)
    with pytest.raises(GenerationInProgress, match="already has a generation queued"):
        queue_generation(article)


def test_the_database_refuses_a_second_unfinished_generation(publishing):
    from django.db import IntegrityError

    article = Article.objects.create(title="Race")
    first = queue_generation(article)
    duplicate = GeneratedImage(
        content_object=article,
        target_field=first.target_field,
        provider="placeholder",
        model_name="m",
        prompt="p",
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        duplicate.save()
    other_field = GeneratedImage(  # another image field of the same object may run meanwhile
        content_object=article, target_field="og_image", provider="placeholder", prompt="p"
    )
    other_field.save()
    first.status = Status.FAILED
    first.save()
    duplicate.save()  # finished rows do not count


def test_signals_are_sent_once_per_outcome(publishing, commit, settings):
    received = []

    def on_success(sender, instance, generated_image, attached, **kwargs):
        received.append(("ok", sender, instance.pk, generated_image.pk, attached))

    def on_failure(sender, instance, generated_image, **kwargs):
        received.append(("failed", sender, instance.pk, generated_image.error_code))

    image_generated.connect(on_success)
    image_generation_failed.connect(on_failure)
    try:
        article, _ = commit(lambda: Article.objects.create(title="Signals", status="published"))
        row = GeneratedImage.objects.get()
        settings.NANOBANANA = {
            **settings.NANOBANANA,
            "PROVIDER": "replicate",
            "REPLICATE_API_TOKEN": "",
        }
        other, _ = commit(lambda: Article.objects.create(title="Fails", status="published"))
    finally:
        image_generated.disconnect(on_success)
        image_generation_failed.disconnect(on_failure)
    assert received == [
        ("ok", Article, article.pk, row.pk, True),
        ("failed", Article, other.pk, "authentication_failed"),
    ]
