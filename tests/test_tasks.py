"""Task runners, and the exactly-once guarantee when tasks are delivered twice or die."""

from datetime import timedelta

import django
import pytest
from django.core.checks import run_checks
from django.utils import timezone

from nanobanana_django.lifecycle import submit_window
from nanobanana_django.models import GeneratedImage
from nanobanana_django.providers.replicate import ReplicateProvider
from nanobanana_django.runners import TASK_PATH
from nanobanana_django.services import (
    create_generation,
    queue_generation,
    run_generation,
)
from nanobanana_django.tasks import run_generation_task
from tests.backends import queued_tasks
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db

Status = GeneratedImage.Status


def use(settings, **values):
    settings.NANOBANANA = {**settings.NANOBANANA, **values}


@pytest.fixture
def emulator(replicate_emulator, settings):
    use(settings, **replicate_emulator.settings(), POLL_INTERVAL=0.05, REPLICATE_WAIT=0)
    return replicate_emulator


def queue_and_commit(obj, capture, **kwargs):
    with capture(execute=True):
        row = queue_generation(obj, **kwargs)
    row.refresh_from_db()
    return row


# Runners ----------------------------------------------------------------------------------


def test_django_q_gets_the_task_path_and_only_the_primary_key(
    settings, django_capture_on_commit_callbacks, monkeypatch
):
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)  # django-q2 reads Q_CLUSTER once, at import
    use(settings, TASK_RUNNER="django_q")
    row = queue_and_commit(
        Article.objects.create(title="Queued"), django_capture_on_commit_callbacks
    )

    assert row.status == Status.QUEUED  # waiting for a cluster
    (task,) = queued_tasks()
    assert task["func"] == TASK_PATH
    assert task["args"] == (row.pk,)
    assert task["kwargs"] == {}

    assert run_generation_task(*task["args"]) == Status.SUCCEEDED


def test_django_q_in_sync_mode_runs_at_once(settings, django_capture_on_commit_callbacks):
    # tests/settings.py runs django-q2 in sync mode
    use(settings, TASK_RUNNER="django_q")
    row = queue_and_commit(Article.objects.create(title="Sync"), django_capture_on_commit_callbacks)
    assert row.status == Status.SUCCEEDED


def test_the_immediate_runner_runs_after_commit(settings, django_capture_on_commit_callbacks):
    use(settings, TASK_RUNNER="immediate")
    row = queue_and_commit(Article.objects.create(title="Now"), django_capture_on_commit_callbacks)
    assert row.status == Status.SUCCEEDED


def test_the_django_tasks_runner(settings, django_capture_on_commit_callbacks):
    use(settings, TASK_RUNNER="django_tasks")
    row = queue_and_commit(
        Article.objects.create(title="Tasks"), django_capture_on_commit_callbacks
    )
    if django.VERSION >= (6, 0):
        # Django's default TASKS backend runs tasks immediately.
        assert row.status == Status.SUCCEEDED
        assert "nanobanana.E007" not in {m.id for m in run_checks(tags=["nanobanana"])}
    else:
        assert row.status == Status.FAILED
        assert row.error_code == "enqueue_failed"
        assert "Django 6.0" in row.error_message
        assert "nanobanana.E007" in {m.id for m in run_checks(tags=["nanobanana"])}


@pytest.mark.skipif(django.VERSION < (6, 0), reason="django.tasks arrived in Django 6.0")
def test_django_tasks_enqueues_the_primary_key(settings, django_capture_on_commit_callbacks):
    from django.tasks import default_task_backend

    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    use(settings, TASK_RUNNER="django_tasks")
    row = queue_and_commit(
        Article.objects.create(title="Dummy"), django_capture_on_commit_callbacks
    )
    assert row.status == Status.QUEUED
    [result] = default_task_backend.results
    assert result.args == [row.pk]


def test_a_broker_that_refuses_fails_the_row_visibly(
    settings, django_capture_on_commit_callbacks, monkeypatch
):
    import django_q.tasks

    def broken(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(django_q.tasks, "async_task", broken)
    use(settings, TASK_RUNNER="django_q")
    row = queue_and_commit(
        Article.objects.create(title="Lost?"), django_capture_on_commit_callbacks
    )
    assert (row.status, row.error_code) == (Status.FAILED, "enqueue_failed")
    assert "ConnectionError" in row.error_message


# Exactly once -------------------------------------------------------------------------------


def test_a_task_delivered_twice_bills_once(emulator):
    row = create_generation(Article.objects.create(title="Twice"))
    assert run_generation_task(row.pk) == Status.SUCCEEDED
    assert run_generation_task(row.pk) == Status.SUCCEEDED
    assert emulator.created_count == 1


def test_a_second_worker_leaves_a_row_being_submitted_alone(emulator):
    row = create_generation(None, prompt="a lighthouse")
    GeneratedImage.objects.filter(pk=row.pk).update(
        status=Status.RUNNING, started_at=timezone.now()
    )
    again = run_generation(row.pk)
    assert (again.status, again.prediction_id) == (Status.RUNNING, "")
    assert emulator.created_count == 0


def test_a_worker_killed_while_polling_is_resumed_by_prediction_id(emulator):
    emulator.latency = 0.3
    row = create_generation(None, prompt="a lighthouse")
    # The first worker submitted and saved the id, then died.
    prediction = ReplicateProvider(
        api_token=emulator.token, base_url=emulator.base_url, wait=0
    ).submit(_request_of(row))
    GeneratedImage.objects.filter(pk=row.pk).update(
        status=Status.RUNNING, started_at=timezone.now(), attempts=1, prediction_id=prediction.id
    )
    row = run_generation(row.pk)
    assert row.status == Status.SUCCEEDED
    assert emulator.created_count == 1


def test_a_worker_killed_while_submitting_is_recovered_from_the_provider(emulator):
    """Died after Replicate made the prediction but before the id was saved."""
    row = create_generation(None, prompt="a lighthouse")
    long_ago = timezone.now() - submit_window() - timedelta(seconds=5)
    GeneratedImage.objects.filter(pk=row.pk).update(
        status=Status.RUNNING, started_at=long_ago, attempts=1
    )
    made = ReplicateProvider(api_token=emulator.token, base_url=emulator.base_url, wait=0).submit(
        _request_of(row)
    )
    row = run_generation(row.pk)
    assert row.status == Status.SUCCEEDED
    assert row.prediction_id == made.id
    assert emulator.created_count == 1
    assert emulator.counts["list"] == 1


def test_a_worker_killed_before_submitting_is_submitted_once(emulator):
    row = create_generation(None, prompt="a lighthouse")
    long_ago = timezone.now() - submit_window() - timedelta(seconds=5)
    GeneratedImage.objects.filter(pk=row.pk).update(
        status=Status.RUNNING, started_at=long_ago, attempts=1
    )
    other = create_generation(None, prompt="something else")
    run_generation(other.pk)  # a different prediction must not be adopted
    row = run_generation(row.pk)
    assert row.status == Status.SUCCEEDED
    assert row.prediction_id != other.prediction_id
    assert emulator.created_count == 2
    assert row.attempts == 2


def test_a_prediction_owned_by_another_row_is_not_adopted(emulator):
    first = create_generation(None, prompt="same prompt")
    first = run_generation(first.pk)
    second = create_generation(None, prompt="same prompt")
    long_ago = timezone.now() - submit_window() - timedelta(seconds=5)
    GeneratedImage.objects.filter(pk=second.pk).update(
        status=Status.RUNNING, started_at=long_ago, attempts=1
    )
    second = run_generation(second.pk)
    assert second.prediction_id != first.prediction_id
    assert emulator.created_count == 2


def _request_of(row):
    from nanobanana_django.pipeline import _request_for

    return _request_for(row)


# Cluster settings ---------------------------------------------------------------------------


def cluster_ids(settings, **cluster):
    settings.Q_CLUSTER = {"name": "t", "orm": "default", **cluster}
    use(settings, TASK_RUNNER="django_q")
    return {m.id for m in run_checks(tags=["nanobanana"])}


def test_a_cluster_timeout_shorter_than_a_generation_is_warned_about(settings):
    assert "nanobanana.W001" in cluster_ids(settings, timeout=60, retry=90)
    assert "nanobanana.W001" not in cluster_ids(settings, timeout=900, retry=960)


def test_a_retry_not_above_the_timeout_is_warned_about(settings):
    assert "nanobanana.W002" in cluster_ids(settings, timeout=900, retry=900)
    assert "nanobanana.W002" not in cluster_ids(settings, timeout=900, retry=960)


def test_django_q_must_be_installed_for_its_runner(settings):
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "django_q"]
    use(settings, TASK_RUNNER="django_q")
    assert "nanobanana.E007" in {m.id for m in run_checks(tags=["nanobanana"])}


def test_a_per_process_cache_is_warned_about(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    use(settings, TASK_RUNNER="django_q")
    assert "nanobanana.W003" in {m.id for m in run_checks(tags=["nanobanana"])}
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "cache_table",
        }
    }
    assert "nanobanana.W003" not in {m.id for m in run_checks(tags=["nanobanana"])}


def test_an_unknown_cache_alias_is_an_error(settings):
    use(settings, TASK_RUNNER="django_q", CACHE="shared")
    assert "nanobanana.E008" in {m.id for m in run_checks(tags=["nanobanana"])}


def test_succeeded_django_q_tasks_leave_no_result_rows_behind(
    settings, django_capture_on_commit_callbacks
):
    from django_q.models import Success

    use(settings, TASK_RUNNER="django_q")  # sync mode: the task runs and its result is saved
    row = queue_and_commit(Article.objects.create(title="Sync"), django_capture_on_commit_callbacks)
    assert row.status == Status.SUCCEEDED
    assert not Success.objects.exists()
