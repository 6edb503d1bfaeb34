"""The direct Google Gemini route, end to end against the Gemini emulator over HTTP."""

import time
from datetime import timedelta

import pytest
from django.core.cache import caches
from django.utils import timezone
from PIL import Image

from nanobanana_django import poller
from nanobanana_django.dispatcher import run_dispatcher
from nanobanana_django.models import GeneratedImage
from nanobanana_django.services import create_generation, generate_for, generate_image
from tests.testapp.models import Article

Status = GeneratedImage.Status


@pytest.fixture
def gemini(settings, gemini_emulator):
    """The site switched to Gemini: the alias and a key, nothing else."""
    caches["default"].clear()
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        **gemini_emulator.settings(),
        "TASK_RUNNER": "immediate",
    }
    return gemini_emulator


@pytest.mark.django_db
def test_publishing_on_gemini_stores_an_image_of_the_requested_size_with_one_call(
    gemini, settings, django_capture_on_commit_callbacks
):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "MODELS": {
            "testapp.Article": {
                "title_field": "title",
                "topic_field": "topic",
                "image_field": "header_image",
                "publish": {"field": "status", "values": ["published"]},
                "input": {"aspect_ratio": "21:9", "resolution": "2K"},
            }
        },
    }
    with django_capture_on_commit_callbacks(execute=True):
        article = Article.objects.create(title="Night trains", topic="travel", status="published")

    row = GeneratedImage.objects.get()
    assert row.status == Status.SUCCEEDED, row.error_message
    assert (row.provider, row.model_name) == ("gemini", "gemini-3.1-flash-image")
    assert (row.width, row.height) == (3168, 1344)  # 21:9 at 2K
    assert gemini.counts["generate"] == 1
    [request] = gemini.requests
    assert request.body["generationConfig"]["imageConfig"] == {
        "aspectRatio": "21:9",
        "imageSize": "2K",
    }
    assert "Night trains" in request.body["contents"][-1]["parts"][0]["text"]
    article.refresh_from_db()
    assert article.header_image.name == row.image.name
    assert row.usage["candidatesTokenCount"] >= 1680  # what Google billed, recorded
    with Image.open(row.image.path) as image:
        assert image.format == "JPEG"  # output_format jpg, though Google answers PNG
        assert image.size == (3168, 1344)


@pytest.mark.django_db
def test_grounding_and_inline_images_reach_google(gemini):
    import base64
    import io

    picture = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(picture, "PNG")
    data_uri = "data:image/png;base64," + base64.b64encode(picture.getvalue()).decode()

    row = generate_image(
        "our mascot at a summer fair",
        input={
            "image_search": True,
            "image_input": [data_uri],
            "aspect_ratio": "match_input_image",
        },
    )

    assert row.status == Status.SUCCEEDED, row.error_message
    [request] = gemini.requests
    assert request.body["tools"] == [
        {"googleSearch": {"searchTypes": {"webSearch": {}, "imageSearch": {}}}}
    ]
    parts = request.body["contents"][-1]["parts"]
    assert parts[1]["inlineData"]["mimeType"] == "image/png"
    assert "aspectRatio" not in request.body["generationConfig"].get("imageConfig", {})


REFUSALS = [
    ("safety", {}, "content_blocked", "safety"),
    ("prohibited", {}, "content_blocked", "prohibited"),
    ("recitation", {}, "content_blocked", "recitation"),
    ("no_image", {}, "no_image", "without an image"),
    ("other", {}, "no_image", ""),
    ("blocked_prompt", {}, "content_blocked", "prompt"),
    ("permission_denied", {}, "permission_denied", "403"),
    ("billing", {}, "payment_required", "billing"),
    ("server_error", {"status": 504}, "timeout", "504"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("fault, options, code, words", REFUSALS)
def test_every_way_google_says_no_ends_as_a_readable_failed_row(
    gemini, fault, options, code, words
):
    article = Article.objects.create(title="Refused")
    gemini.add_fault(fault, **options)

    row = generate_for(article)

    assert row.status == Status.FAILED
    assert row.error_code == code, row.error_message
    assert words.lower() in row.error_message.lower()
    assert "Traceback" not in row.error_message and "{" not in row.error_message
    assert not Article.objects.get().header_image
    assert gemini.api_key not in row.error_message


@pytest.mark.django_db
def test_a_bad_key_names_the_setting_like_replicates_401(gemini, settings):
    settings.NANOBANANA["PROVIDERS"]["gemini"]["OPTIONS"]["api_key"] = "AIza-wrong-key"
    row = generate_image("a lighthouse")
    assert row.error_code == "authentication_failed"
    assert "GEMINI_API_KEY" in row.error_message
    assert "AIza-wrong-key" not in row.error_message


@pytest.mark.django_db
def test_a_retired_model_id_names_the_option_to_change(gemini, settings):
    settings.NANOBANANA["PROVIDERS"]["gemini"]["OPTIONS"]["model"] = (
        "gemini-3.1-flash-image-preview"
    )
    gemini.models = frozenset({"gemini-3.1-flash-image"})
    row = generate_image("a lighthouse")
    assert row.error_code == "not_found"
    assert "gemini-3.1-flash-image-preview" in row.error_message
    assert "['OPTIONS']['model']" in row.error_message


@pytest.mark.django_db
def test_a_429_is_waited_out_as_google_asks_and_shared_with_every_process(gemini, settings):
    settings.NANOBANANA["PROVIDERS"]["gemini"]["OPTIONS"]["rate_limit"] = 600
    gemini.add_fault("throttle", retry_delay="1s")
    started = time.monotonic()

    row = generate_image("a lighthouse")

    assert row.status == Status.SUCCEEDED
    assert time.monotonic() - started >= 1.0
    assert gemini.counts["generate"] == 1
    paused_until = caches["default"].get(
        "nanobanana:create-pause-until:gemini:gemini-3.1-flash-image"
    )
    assert paused_until is not None  # the other processes wait too


@pytest.mark.django_db
def test_a_call_dropped_after_sending_is_never_sent_again(gemini):
    gemini.add_fault("drop")

    row = generate_image("a lighthouse")

    assert row.status == Status.FAILED
    assert row.error_code == "submission_uncertain"
    assert "billed" in row.error_message
    assert gemini.counts["generate"] == 1  # processed once, and not re-sent


@pytest.mark.django_db(transaction=True)
def test_the_dispatcher_runs_many_calls_at_once_in_one_worker(gemini, settings):
    settings.NANOBANANA["TASK_RUNNER"] = "django_q"
    settings.NANOBANANA["PROVIDERS"]["gemini"]["OPTIONS"]["concurrency"] = 6
    gemini.latency = 1.0
    articles = [Article.objects.create(title=f"Article {n}") for n in range(12)]
    rows = [create_generation(article) for article in articles]

    done = run_dispatcher("gemini")

    assert done == 12
    assert gemini.max_in_flight == 6
    assert gemini.counts["generate"] == 12
    for row in rows:
        row.refresh_from_db()
        assert row.status == Status.SUCCEEDED, row.error_message
    first = min(row.started_at for row in rows)
    last = max(row.finished_at for row in rows)
    # Two rounds of six 1 s calls (about 2 s), not twelve in a row (12 s); loose enough for
    # a loaded 2-core machine.
    assert (last - first).total_seconds() < 6.0
    assert all(a.header_image for a in Article.objects.all())


@pytest.mark.django_db(transaction=True)
def test_a_queued_gemini_task_hands_over_to_the_dispatcher(gemini, settings, monkeypatch):
    from nanobanana_django import dispatcher, tasks

    settings.NANOBANANA["TASK_RUNNER"] = "django_q"
    started = []
    monkeypatch.setattr(dispatcher, "enqueue_dispatcher", started.append)
    row = create_generation(None, prompt="a lighthouse")

    assert tasks.run_generation_task(row.pk) == Status.QUEUED  # no call from this worker

    assert started == ["gemini"]
    assert gemini.counts["generate"] == 0


@pytest.mark.django_db
def test_a_worker_killed_mid_call_is_not_billed_twice_and_the_row_says_so(gemini):
    row = create_generation(None, prompt="a lighthouse")
    # What a killed worker leaves: claimed, the call sent, no answer recorded.
    long_ago = timezone.now() - timedelta(hours=1)
    GeneratedImage.objects.filter(pk=row.pk).update(
        status=Status.RUNNING, started_at=long_ago, attempts=1
    )

    poller.poll_once()

    row.refresh_from_db()
    assert row.status == Status.FAILED
    assert row.error_code == "interrupted"
    assert "may have made and billed" in row.error_message
    assert gemini.counts["generate"] == 0  # nothing sent again


@pytest.mark.django_db
def test_the_poller_leaves_a_gemini_image_being_stored_to_its_dispatcher(gemini):
    """A call that has answered has a prediction id while its image is stored: the poller
    must not take the row from under the dispatcher (it would fail a billed image)."""
    row = create_generation(None, prompt="a lighthouse")
    GeneratedImage.objects.filter(pk=row.pk).update(
        status=Status.RUNNING, started_at=timezone.now(), attempts=1, prediction_id="gemini-abc"
    )

    assert not poller.has_work()
    poller.poll_once()

    row.refresh_from_db()
    assert row.status == Status.RUNNING


@pytest.mark.django_db
def test_a_gemini_image_lost_before_storing_is_failed_as_interrupted_later(gemini):
    row = create_generation(None, prompt="a lighthouse")
    long_ago = timezone.now() - timedelta(hours=1)
    GeneratedImage.objects.filter(pk=row.pk).update(
        status=Status.RUNNING, started_at=long_ago, attempts=1, prediction_id="gemini-abc"
    )

    assert poller.has_work()
    poller.poll_once()

    row.refresh_from_db()
    assert (row.status, row.error_code) == (Status.FAILED, "interrupted")
    assert "billed" in row.error_message
    assert gemini.counts["generate"] == 0


@pytest.mark.django_db
def test_queueing_gemini_generations_starts_one_dispatcher_not_a_task_each(
    gemini, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from nanobanana_django import dispatcher, runners
    from nanobanana_django.services import queue_generation

    settings.NANOBANANA["TASK_RUNNER"] = "django_q"
    dispatchers, tasks = [], []
    monkeypatch.setattr(dispatcher, "enqueue_dispatcher", dispatchers.append)
    monkeypatch.setattr(runners, "_dispatch", lambda *args, **kwargs: tasks.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(5):
            queue_generation(Article.objects.create(title=f"Queued {n}"))

    assert dispatchers == ["gemini"]  # once: the others see it queued
    assert tasks == []
    assert GeneratedImage.objects.filter(status=Status.QUEUED).count() == 5
