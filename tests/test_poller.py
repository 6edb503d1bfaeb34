"""One poller follows every in-flight prediction; workers only submit."""

import time
from datetime import timedelta

import pytest
from django.core.cache import caches
from django.utils import timezone

from nanobanana_django import poller
from nanobanana_django.leases import lease_value, token_of
from nanobanana_django.lifecycle import submit_window
from nanobanana_django.models import GeneratedImage
from nanobanana_django.services import create_generation, run_generation
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db

Status = GeneratedImage.Status


@pytest.fixture
def emulator(replicate_emulator, settings):
    caches["default"].clear()
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        **replicate_emulator.settings(),
        "REPLICATE_WAIT": 0,
        "POLL_INTERVAL": 0.05,
        "TASK_RUNNER": "django_q",
    }
    return replicate_emulator


def submitted(count, latency, emulator):
    emulator.latency = latency
    rows = []
    for i in range(count):
        row = create_generation(Article.objects.create(title=f"Post {i}"))
        rows.append(run_generation(row.pk, wait=False))
    return rows


def test_submitting_returns_without_waiting_for_the_model(emulator, settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "REPLICATE_WAIT": 60}  # the default
    started = time.monotonic()
    [row] = submitted(1, latency=3, emulator=emulator)
    assert time.monotonic() - started < 1.5
    assert row.status == Status.RUNNING and row.prediction_id
    assert "prefer" not in emulator.requests[0].headers  # no sync mode in the background


def test_one_sweep_follows_many_predictions_with_one_request(emulator):
    rows = submitted(30, latency=0.2, emulator=emulator)
    time.sleep(0.3)
    gets_before = emulator.counts["get"]
    sweep = poller.poll_once()
    assert sweep.finished == 30 and sweep.in_flight == 0
    assert emulator.counts["list"] == 1
    assert emulator.counts["get"] == gets_before  # the listing carried every state
    for row in rows:
        row.refresh_from_db()
        assert row.status == Status.SUCCEEDED
    assert not Article.objects.filter(header_image="").exists()


def test_the_poller_runs_until_nothing_is_in_flight(emulator):
    submitted(3, latency=0.3, emulator=emulator)
    assert poller.run_poller() == 3
    assert caches["default"].get(poller.LEASE_KEY) is None  # released


def test_a_second_poller_leaves_when_the_first_is_alive(emulator, monkeypatch):
    caches["default"].set(poller.LEASE_KEY, "a-live-poller", timeout=60)  # kept renewed
    monkeypatch.setattr(poller, "lease_seconds", lambda: 0.5)
    started = time.monotonic()
    assert poller.run_poller() == 0
    assert time.monotonic() - started < 3
    assert caches["default"].get(poller.LEASE_KEY) == "a-live-poller"


def test_a_dead_pollers_lease_is_taken_over(emulator, settings, monkeypatch):
    submitted(1, latency=0.1, emulator=emulator)
    caches["default"].set(poller.LEASE_KEY, "dead-poller", timeout=1)
    monkeypatch.setattr(poller, "lease_seconds", lambda: 1.0)
    assert poller.run_poller() == 1


def test_an_overdue_prediction_is_canceled_and_failed(emulator, settings):
    [row] = submitted(1, latency=60, emulator=emulator)
    GeneratedImage.objects.filter(pk=row.pk).update(
        started_at=timezone.now() - timedelta(seconds=700)
    )
    poller.poll_once()
    row.refresh_from_db()
    assert (row.status, row.error_code) == (Status.FAILED, "timeout")
    assert emulator.predictions[row.prediction_id]["status"] == "canceled"


def test_a_row_orphaned_while_submitting_is_recovered_by_the_poller(emulator):
    row = create_generation(None, prompt="a lighthouse")
    GeneratedImage.objects.filter(pk=row.pk).update(
        status=Status.RUNNING,
        started_at=timezone.now() - submit_window() - timedelta(seconds=1),
        attempts=1,
    )
    poller.poll_once()
    row.refresh_from_db()
    assert row.prediction_id
    assert emulator.created_count == 1


def test_a_lost_webhook_is_caught_by_the_poller(emulator, settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "PUBLIC_URL": "https://www.example.com"}
    emulator.add_fault("webhook_lost")
    [row] = submitted(1, latency=0.1, emulator=emulator)
    time.sleep(0.2)
    poller.poll_once()
    row.refresh_from_db()
    assert row.status == Status.SUCCEEDED


def test_the_watchdog_starts_a_poller_only_when_work_is_in_flight(emulator, monkeypatch):
    started = []
    monkeypatch.setattr("nanobanana_django.poller.enqueue_poller", lambda: started.append(1))
    poller.watchdog()
    assert started == []
    submitted(1, latency=30, emulator=emulator)
    poller.watchdog()
    assert started == [1]


def test_the_watchdog_hands_out_again_a_generation_whose_task_was_lost(emulator, monkeypatch):
    """Before: a cluster killed with tasks taken from Redis left their rows queued for good."""
    handed = []
    monkeypatch.setattr("nanobanana_django.poller.enqueue_generation", handed.append)
    lost = create_generation(Article.objects.create(title="Taken by a killed cluster"))
    GeneratedImage.objects.filter(pk=lost.pk).update(
        created_at=timezone.now() - timedelta(seconds=poller.LOST_AFTER + 1)
    )
    create_generation(Article.objects.create(title="Just queued"))
    poller.watchdog()
    assert handed == [lost.pk]
    run_generation(lost.pk, wait=False)
    run_generation(lost.pk, wait=False)  # the first task, only late after all
    assert emulator.created_count == 1


def test_the_watchdog_schedule_exists_after_migrate():
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="nanobanana-watchdog")
    assert schedule.func == "nanobanana_django.tasks.watchdog_task"
    assert schedule.minutes == 1


def run_poller_tasks(monkeypatch, seconds):
    """Play the task runner for ``seconds``: run each poller task queued; count them."""
    queued = []
    monkeypatch.setattr("nanobanana_django.poller.enqueue_poller", lambda: queued.append(1))
    poller.watchdog()
    ran = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if queued:
            queued.pop()
            ran += 1
            poller.run_poller()
        else:
            time.sleep(0.05)
    return ran


def test_a_row_still_being_submitted_does_not_keep_the_poller_looping(emulator, monkeypatch):
    # A worker (or a foreground generate_for) is inside its create request right now.
    row = create_generation(Article.objects.create(title="Slow model"))
    GeneratedImage.objects.filter(pk=row.pk).update(
        status=Status.RUNNING, started_at=timezone.now(), attempts=1
    )
    assert run_poller_tasks(monkeypatch, seconds=2) == 0
    row.refresh_from_db()
    assert (row.status, row.prediction_id, row.attempts) == (Status.RUNNING, "", 1)
    assert emulator.created_count == 0


def test_a_poller_with_other_work_ends_without_requeuing_for_a_row_being_submitted(
    emulator, monkeypatch
):
    submitted(1, latency=0.2, emulator=emulator)
    row = create_generation(Article.objects.create(title="Slow model"))
    GeneratedImage.objects.filter(pk=row.pk).update(
        status=Status.RUNNING, started_at=timezone.now(), attempts=1
    )
    assert run_poller_tasks(monkeypatch, seconds=2) == 1
    assert caches["default"].get(poller.LEASE_KEY) is None


def test_the_watchdog_recovers_a_row_orphaned_while_submitting(emulator, monkeypatch):
    row = create_generation(Article.objects.create(title="Crashed submit"))
    GeneratedImage.objects.filter(pk=row.pk).update(
        status=Status.RUNNING,
        started_at=timezone.now() - submit_window() - timedelta(seconds=1),
        attempts=1,
    )
    run_poller_tasks(monkeypatch, seconds=1)
    row.refresh_from_db()
    assert row.prediction_id
    assert emulator.created_count == 1


def test_a_long_sweep_keeps_the_pollers_lease(emulator, monkeypatch):
    submitted(4, latency=0.1, emulator=emulator)
    time.sleep(0.2)
    monkeypatch.setattr(poller, "lease_seconds", lambda: 1.0)
    monkeypatch.setattr(poller, "RENEW_DURING_SWEEP", 0.2, raising=False)
    from nanobanana_django import poller as services

    complete = services.complete_row
    lease_seen = []

    def slow_complete(*args, **kwargs):
        time.sleep(0.4)  # storing a large image, say
        lease_seen.append(caches["default"].get(poller.LEASE_KEY) is not None)
        return complete(*args, **kwargs)

    monkeypatch.setattr(services, "complete_row", slow_complete)
    assert poller.run_poller() == 4
    assert lease_seen == [True] * 4


def test_a_poller_that_lost_its_lease_mid_sweep_leaves_the_rest_to_the_new_one(
    emulator, monkeypatch
):
    rows = submitted(3, latency=0.1, emulator=emulator)
    time.sleep(0.2)
    monkeypatch.setattr(poller, "RENEW_DURING_SWEEP", 0.0, raising=False)
    from nanobanana_django import poller as services

    complete = services.complete_row

    def complete_then_lose_the_lease(*args, **kwargs):
        caches["default"].set(poller.LEASE_KEY, lease_value("another-poller"))
        return complete(*args, **kwargs)

    monkeypatch.setattr(services, "complete_row", complete_then_lose_the_lease)
    assert poller.run_poller() == 1
    assert (
        GeneratedImage.objects.filter(pk__in=[r.pk for r in rows], status=Status.RUNNING).count()
        == 2
    )
    assert token_of(caches["default"].get(poller.LEASE_KEY)) == "another-poller"


def test_a_sweep_opens_one_http_client_and_loads_the_ca_bundle_at_most_once(emulator, monkeypatch):
    import ssl

    import httpx

    submitted(5, latency=0.1, emulator=emulator)
    time.sleep(0.2)
    clients, bundles = [], []
    client_init = httpx.Client.__init__
    load = ssl.SSLContext.load_verify_locations

    def counting_init(self, *args, **kwargs):
        clients.append(1)
        client_init(self, *args, **kwargs)

    def counting_load(self, *args, **kwargs):
        bundles.append(1)
        return load(self, *args, **kwargs)

    monkeypatch.setattr(httpx.Client, "__init__", counting_init)
    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counting_load)
    sweep = poller.poll_once()
    assert sweep.finished == 5
    assert len(clients) == 1
    assert len(bundles) <= 1
    assert not Article.objects.filter(header_image="").exists()


def test_a_billed_prediction_whose_image_fails_its_checks_keeps_its_predict_time(emulator):
    emulator.add_fault("truncated")
    [row] = submitted(1, latency=0.1, emulator=emulator)
    time.sleep(0.2)
    poller.poll_once()
    row.refresh_from_db()
    assert (row.status, row.error_code) == (Status.FAILED, "invalid_image")
    assert row.predict_time is not None


def test_a_stored_image_records_its_predict_time_and_size(emulator):
    [row] = submitted(1, latency=0.1, emulator=emulator)
    time.sleep(0.2)
    poller.poll_once()
    row.refresh_from_db()
    assert row.status == Status.SUCCEEDED
    assert row.predict_time == pytest.approx(0.1, abs=0.05)
    assert (row.image_format, row.size_bytes) == ("JPEG", row.image.size)
    assert Article.objects.get().header_image.name == row.image.name


def test_a_sweep_longer_than_the_interval_is_followed_at_once_by_the_next(
    emulator, settings, monkeypatch
):
    settings.NANOBANANA = {**settings.NANOBANANA, "POLL_INTERVAL": 0.5}
    sweeps = []

    def long_sweep(**kwargs):
        sweeps.append(time.monotonic())
        time.sleep(0.6)  # storing a backlog of images
        return poller.Sweep(in_flight=1 if len(sweeps) < 3 else 0)

    monkeypatch.setattr(poller, "poll_once", long_sweep)
    poller.run_poller()
    gaps = [later - earlier - 0.6 for earlier, later in zip(sweeps, sweeps[1:], strict=False)]
    assert len(gaps) == 2 and max(gaps) < 0.2


def test_the_image_generated_signal_gets_the_object_with_its_image(emulator):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from nanobanana_django.signals import image_generated

    received = []

    def listener(sender, instance, generated_image, attached, **kwargs):
        received.append((sender, instance.header_image.name, generated_image.image.name, attached))

    [row] = submitted(1, latency=0.1, emulator=emulator)
    time.sleep(0.2)
    image_generated.connect(listener)
    try:
        with CaptureQueriesContext(connection) as queries:
            poller.poll_once()
    finally:
        image_generated.disconnect(listener)
    row.refresh_from_db()
    assert received == [(Article, row.image.name, row.image.name, True)]
    article_reads = [
        q for q in queries if q["sql"].startswith("SELECT") and "testapp_article" in q["sql"]
    ]
    assert len(article_reads) == 1  # read once, to attach the image


def test_a_sweep_downloads_images_while_it_stores_others(emulator, monkeypatch):
    from nanobanana_django.providers.replicate import ReplicateProvider

    submitted(8, latency=0.1, emulator=emulator)
    time.sleep(0.3)
    download = ReplicateProvider.open_output

    def slow_download(self, prediction, *, max_bytes):
        time.sleep(0.3)  # a CDN a round trip away
        return download(self, prediction, max_bytes=max_bytes)

    monkeypatch.setattr(ReplicateProvider, "open_output", slow_download)
    started = time.monotonic()
    sweep = poller.poll_once()
    assert sweep.finished == 8
    assert time.monotonic() - started < 8 * 0.3 / 2
    assert not Article.objects.filter(header_image="").exists()


def test_a_failed_download_ends_on_its_own_row_only(emulator):
    rows = submitted(3, latency=0.1, emulator=emulator)
    time.sleep(0.3)
    emulator.add_fault("truncated")  # the first image served is cut short
    poller.poll_once()
    statuses = sorted(GeneratedImage.objects.values_list("status", "error_code"))
    assert statuses == [(Status.FAILED, "invalid_image")] + [(Status.SUCCEEDED, "")] * 2
    assert Article.objects.exclude(header_image="").count() == 2
    assert len(rows) == 3
