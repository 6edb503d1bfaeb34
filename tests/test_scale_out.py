"""Scale-out on the real services: two django-q2 clusters ("machines") on one Redis broker and
one PostgreSQL database, two processes publishing at once, one cluster SIGKILLed mid-run.

Runs in the PostgreSQL+Redis job (``nox -s postgres``, started by ``make test``); selected
without those services, it fails (see the ``services`` fixture in conftest.py).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Count

from nanobanana_django.models import GeneratedImage
from tests.testapp.models import Article

ROOT = Path(__file__).resolve().parent.parent
ARTICLES = 200
RATE_LIMIT = 600

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

Status = GeneratedImage.Status

# One editor's process: publishes the articles whose ids it is given, one save at a time.
PUBLISHER = """
import sys

import django

django.setup()
from tests.testapp.models import Article

for pk in map(int, sys.argv[1:]):
    article = Article.objects.get(pk=pk)
    article.status = "published"
    article.save()
"""


@pytest.fixture
def machines(services, settings, replicate_emulator, media_root):
    """Start processes that share this test's PostgreSQL database, Redis and media folder."""
    app_settings = {
        **replicate_emulator.settings(),
        "TASK_RUNNER": "django_q",
        "REPLICATE_WAIT": 0,
        "POLL_INTERVAL": 0.2,
        "HTTP_TIMEOUT": 5,
        "GENERATION_TIMEOUT": 120,
        "RATE_LIMIT": RATE_LIMIT,
        "MODELS": {
            "testapp.Article": {
                "title_field": "title",
                "image_field": "header_image",
                "publish": {"field": "status", "values": ["published"]},
            }
        },
    }
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "NANOBANANA_TEST_DATABASE": str(connection.settings_dict["NAME"]),
        "NANOBANANA_TEST_SETTINGS": json.dumps(app_settings),
        "NANOBANANA_TEST_CLUSTER": json.dumps(
            {
                "name": "tests",
                "redis": settings.Q_CLUSTER["redis"],
                "workers": 2,
                "timeout": 60,
                "poll": 0.1,
            }
        ),
        "NANOBANANA_TEST_MEDIA_ROOT": str(media_root),
    }
    processes = []
    extra: dict = {}  # more NANOBANANA settings for the processes started after it is set

    def start(*command):
        env["NANOBANANA_TEST_SETTINGS"] = json.dumps({**app_settings, **extra})
        process = subprocess.Popen(
            [sys.executable, *command],
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

    yield start, kill, extra
    for process in processes:
        if process.poll() is None:
            kill(process)


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    what = what() if callable(what) else what
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_two_clusters_one_killed_give_every_article_one_image_and_one_bill(
    machines, replicate_emulator
):
    start, kill, _extra = machines
    replicate_emulator.latency = 2.0
    cluster = ["-m", "django", "qcluster"]
    first, _second = start(*cluster), start(*cluster)
    drafts = Article.objects.bulk_create(Article(title=f"Post {i}") for i in range(ARTICLES))
    ids = [article.pk for article in drafts]
    publishers = [start("-c", PUBLISHER, *map(str, ids[i::2])) for i in range(2)]

    # Mid-run: a third of the predictions made, the publishers still at work.
    wait_for(lambda: replicate_emulator.created_count >= ARTICLES // 3, 60, "the first creates")
    kill(first)
    time.sleep(2)
    start(*cluster)

    for publisher in publishers:
        assert publisher.wait(timeout=60) == 0
    wait_for(
        lambda: not Article.objects.filter(header_image="").exists(),
        210,  # lost tasks wait for the watchdog: a minute, checked every 30 s
        lambda: (
            "every image; rows by status: "
            + str(dict(GeneratedImage.objects.values_list("status").annotate(Count("pk"))))
        ),
    )
    rows = GeneratedImage.objects.all()
    assert rows.filter(status=Status.SUCCEEDED).count() == ARTICLES, list(
        rows.exclude(status=Status.SUCCEEDED).values_list("status", "error_message")
    )
    per_article = rows.values("object_id").annotate(n=Count("pk"))
    assert sorted(str(pk) for pk in ids) == sorted(row["object_id"] for row in per_article)
    assert {row["n"] for row in per_article} == {1}
    for article in Article.objects.all():
        assert article.header_image.name == rows.get(object_id=str(article.pk)).image.name
    assert replicate_emulator.created_count == ARTICLES
    assert replicate_emulator.max_creates_in_window(60) <= RATE_LIMIT
    # RATE_LIMIT a minute is one create per 0.1 s across both machines:
    assert replicate_emulator.max_creates_in_window(1.0) <= 11


def test_two_clusters_under_a_daily_cap_worth_ten_images_make_exactly_ten(
    machines, replicate_emulator, settings, admin_client
):
    start, _kill, extra = machines
    budget = {"PRICES": {"replicate": {"*": {"*": "0.04"}}}, "DAILY_BUDGET": "0.40"}
    extra.update(budget)
    settings.NANOBANANA = {**settings.NANOBANANA, **budget}  # for the spend page here
    replicate_emulator.latency = 0.5
    cluster = ["-m", "django", "qcluster"]
    start(*cluster), start(*cluster)
    drafts = Article.objects.bulk_create(Article(title=f"Capped {i}") for i in range(25))
    ids = [article.pk for article in drafts]
    publishers = [start("-c", PUBLISHER, *map(str, ids[i::2])) for i in range(2)]
    for publisher in publishers:
        assert publisher.wait(timeout=60) == 0

    wait_for(
        lambda: GeneratedImage.objects.filter(status__in=Status.finished()).count() == 25,
        120,
        lambda: str(dict(GeneratedImage.objects.values_list("status").annotate(Count("pk")))),
    )
    outcomes = list(GeneratedImage.objects.values_list("status", "error_code"))
    assert outcomes.count((Status.SUCCEEDED, "")) == 10
    assert outcomes.count((Status.FAILED, "budget_exceeded")) == 15
    assert replicate_emulator.created_count == 10
    page = admin_client.get("/admin/nanobanana_django/generatedimage/spend/").content.decode()
    assert "<td>10</td>" in page  # images today
    assert "0.40 USD" in page
