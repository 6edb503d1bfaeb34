"""A real django-q2 cluster (ORM broker) against the emulator, killed mid-prediction."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from nanobanana_django.models import GeneratedImage
from tests.testapp.models import Article

ROOT = Path(__file__).resolve().parent.parent
RETRY = 8  # seconds before the broker hands an unacknowledged task out again

pytestmark = pytest.mark.django_db(transaction=True)

Status = GeneratedImage.Status


@pytest.fixture
def app_settings(replicate_emulator):
    return {
        **replicate_emulator.settings(),
        "TASK_RUNNER": "django_q",
        "REPLICATE_WAIT": 0,
        "POLL_INTERVAL": 0.1,
        "HTTP_TIMEOUT": 2,
        "GENERATION_TIMEOUT": 5,
        "MODELS": {
            "testapp.Article": {
                "title_field": "title",
                "image_field": "header_image",
                "publish": {"field": "status", "values": ["published"]},
            }
        },
    }


@pytest.fixture
def cluster(app_settings, settings, media_root, monkeypatch):
    """Start (and restart) a ``qcluster`` process sharing this test's database."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)  # this process only enqueues
    settings.NANOBANANA = {**settings.NANOBANANA, **app_settings}
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "NANOBANANA_TEST_DATABASE": str(connection.settings_dict["NAME"]),
        "NANOBANANA_TEST_SETTINGS": json.dumps(app_settings),
        "NANOBANANA_TEST_CLUSTER": json.dumps(
            {
                "name": "tests",
                "orm": "default",
                "workers": 1,
                "timeout": RETRY - 2,
                "retry": RETRY,
                "poll": 0.1,
                "max_attempts": 3,
            }
        ),
        "NANOBANANA_TEST_MEDIA_ROOT": str(media_root),
    }
    processes = []

    def start():
        process = subprocess.Popen(
            [sys.executable, "-m", "django", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so a kill takes every worker
        )
        processes.append(process)
        return process

    def kill(process):
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    yield start, kill
    for process in processes:
        if process.poll() is None:
            kill(process)


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def row_of(article):
    return GeneratedImage.objects.for_object(article).first()


def test_a_cluster_attaches_an_image_on_publish_and_bills_once(cluster, replicate_emulator):
    start, _ = cluster
    replicate_emulator.latency = 0.5
    start()
    article = Article.objects.create(title="Published from the admin")
    article.status = "published"
    article.save()

    wait_for(lambda: Article.objects.get().header_image, 30, "the image to be attached")
    assert row_of(article).status == Status.SUCCEEDED

    article = Article.objects.get()
    article.body = "a typo fixed"
    article.save()
    time.sleep(1.0)
    assert GeneratedImage.objects.count() == 1
    assert replicate_emulator.created_count == 1


def test_a_cluster_killed_mid_prediction_finishes_it_after_a_restart(cluster, replicate_emulator):
    start, kill = cluster
    replicate_emulator.latency = 3.0
    first = start()
    article = Article.objects.create(title="Killed in flight", status="published")

    wait_for(lambda: row_of(article) and row_of(article).prediction_id, 20, "the prediction")
    kill(first)
    row = row_of(article)
    assert row.status == Status.RUNNING
    assert not Article.objects.get().header_image

    start()
    wait_for(lambda: row_of(article).is_finished, RETRY + 25, "the restarted cluster")
    row = row_of(article)
    assert row.status == Status.SUCCEEDED, row.error_message
    assert Article.objects.get().header_image.name == row.image.name
    assert replicate_emulator.created_count == 1
    assert row.attempts == 1  # resumed by prediction id, never submitted again
