"""Replicate's signed webhooks: verification, deduplication, completion, checks."""

from __future__ import annotations

import base64
import io
import json
import logging
import time

import django
import pytest
from django.core.cache import caches
from django.core.checks import run_checks
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from nanobanana_django import views, webhooks
from nanobanana_django.conf import app_settings
from nanobanana_django.models import GeneratedImage
from nanobanana_django.pipeline import webhook_url
from nanobanana_django.poller import poll_once
from nanobanana_django.services import create_generation, run_generation
from nanobanana_django.standard_webhooks import new_message_id, new_secret, sign
from tests.testapp.models import Article

Status = GeneratedImage.Status

urlpatterns: list = []
"""A URLconf without ``nanobanana_django.urls``, for the W004 check."""

# The Standard Webhooks reference vector (PROVIDERS.md).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def use(settings, **values):
    settings.NANOBANANA = {**settings.NANOBANANA, **values}


def url() -> str:
    return reverse("nanobanana:replicate-webhook")


def signed(body: bytes, secret: str, *, msg_id: str | None = None, timestamp: int | None = None):
    msg_id = msg_id or new_message_id()
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def post(client, body: bytes, headers: dict[str, str]):
    return client.post(url(), data=body, content_type="application/json", headers=headers)


@pytest.fixture(autouse=True)
def fresh_receiver():
    """Each test starts with no fetched secret and no remembered webhook ids."""
    webhooks.forget_fetched_secrets()
    caches[app_settings.CACHE].clear()
    yield
    webhooks.forget_fetched_secrets()


@pytest.fixture
def emulator(replicate_emulator, settings):
    """Predictions take 0.2 s and are created without waiting, so a webhook finishes them."""
    replicate_emulator.latency = 0.2
    use(
        settings,
        **replicate_emulator.settings(),
        TASK_RUNNER="immediate",
        POLL_INTERVAL=0.05,
        REPLICATE_WAIT=0,
        WEBHOOK_SECRET=replicate_emulator.webhook_secret,
    )
    return replicate_emulator


@pytest.fixture
def fetched_secret(emulator, settings):
    """No secret in the settings: the receiver fetches it from the emulator."""
    use(settings, WEBHOOK_SECRET="")
    return emulator


@pytest.fixture
def completions(monkeypatch) -> list[int]:
    """The generations the receiver handed to the task runner (it still runs them)."""
    handed: list[int] = []
    real = views.enqueue_completion

    def spy(image_id: int) -> None:
        handed.append(image_id)
        real(image_id)

    monkeypatch.setattr(views, "enqueue_completion", spy)
    return handed


def submitted(title: str = "Lighthouses") -> GeneratedImage:
    """A running generation whose prediction exists at the emulator."""
    row = create_generation(Article.objects.create(title=title))
    row = run_generation(row.pk, wait=False)
    assert row.status == Status.RUNNING and row.prediction_id
    return row


def finished_body(emulator, row: GeneratedImage) -> bytes:
    """The webhook body Replicate sends once ``row``'s prediction has succeeded."""
    deadline = time.monotonic() + 5
    while emulator.predictions[row.prediction_id]["status"] != "succeeded":
        assert time.monotonic() < deadline, "the emulator never finished the prediction"
        time.sleep(0.02)
    return json.dumps(emulator.predictions[row.prediction_id]).encode()


def snapshot() -> tuple[list[dict], list[str]]:
    rows = list(GeneratedImage.objects.order_by("pk").values())
    images = list(Article.objects.order_by("pk").values_list("header_image", flat=True))
    return rows, images


def wait_for_row(row: GeneratedImage, timeout: float = 5.0) -> GeneratedImage:
    deadline = time.monotonic() + timeout
    row.refresh_from_db()
    while row.status == Status.RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)
        row.refresh_from_db()
    return row


# The reference vector -----------------------------------------------------------------------


def test_the_standard_webhooks_test_vector_verifies(settings, monkeypatch):
    use(settings, WEBHOOK_SECRET=VECTOR_SECRET)
    monkeypatch.setattr(webhooks, "clock", lambda: VECTOR_TIMESTAMP + 10)
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    assert webhooks.verify_delivery(headers, VECTOR_BODY) == VECTOR_ID
    with pytest.raises(webhooks.InvalidWebhook, match="no webhook signature matches"):
        webhooks.verify_delivery(headers, VECTOR_BODY.replace(b"2432", b"2433"))


@pytest.mark.django_db
def test_the_receiver_accepts_the_test_vector_signature_with_a_frozen_clock(
    client, settings, monkeypatch
):
    use(settings, WEBHOOK_SECRET=VECTOR_SECRET)
    monkeypatch.setattr(webhooks, "clock", lambda: VECTOR_TIMESTAMP)
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }

    # The signature verifies; the body is then refused because it is not a prediction.
    response = post(client, VECTOR_BODY, headers)
    assert response.status_code == 400
    assert b"not a prediction" in response.content

    # One byte changed: refused before the body is even looked at.
    response = post(client, VECTOR_BODY.replace(b"2432", b"2433"), headers)
    assert response.status_code == 400
    assert b"not a prediction" not in response.content


# Completing generations ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_correctly_signed_webhook_completes_a_generation(
    client, emulator, completions, django_capture_on_commit_callbacks
):
    row = submitted()
    body = finished_body(emulator, row)

    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, body, signed(body, emulator.webhook_secret))

    assert response.status_code == 200
    assert response.json() == {"result": "accepted"}
    assert completions == [row.pk]
    row.refresh_from_db()
    assert row.status == Status.SUCCEEDED
    assert row.image and row.width and row.height
    article = Article.objects.get()
    assert article.header_image.name == row.image.name
    assert emulator.created_count == 1
    assert emulator.counts["download"] == 1


@pytest.mark.django_db
def test_the_receiver_answers_without_talking_to_replicate(
    client, emulator, monkeypatch, django_capture_on_commit_callbacks
):
    handed: list[int] = []
    monkeypatch.setattr(views, "enqueue_completion", handed.append)  # a worker would run it
    row = submitted()
    body = finished_body(emulator, row)
    requests_before = len(emulator.requests)

    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, body, signed(body, emulator.webhook_secret))

    assert response.status_code == 200
    assert handed == [row.pk]
    assert len(emulator.requests) == requests_before  # no fetch, no download
    row.refresh_from_db()
    assert row.status == Status.RUNNING  # finishing is the worker's job


@pytest.mark.django_db
def test_a_fetched_secret_is_fetched_once_and_completes_generations(
    client, fetched_secret, completions, django_capture_on_commit_callbacks
):
    emulator = fetched_secret
    first, second = submitted("One"), submitted("Two")
    for row in (first, second):
        body = finished_body(emulator, row)
        with django_capture_on_commit_callbacks(execute=True):
            response = post(client, body, signed(body, emulator.webhook_secret))
        assert response.status_code == 200

    assert emulator.counts["secret"] == 1
    assert completions == [first.pk, second.pk]
    assert set(GeneratedImage.objects.values_list("status", flat=True)) == {Status.SUCCEEDED}


@pytest.mark.django_db
def test_a_webhook_for_an_unknown_prediction_is_answered_and_ignored(
    client, emulator, completions, caplog
):
    row = submitted()
    body = json.dumps({**json.loads(finished_body(emulator, row)), "id": "not-ours"}).encode()
    before = snapshot()

    with caplog.at_level(logging.INFO, logger="nanobanana_django"):
        response = post(client, body, signed(body, emulator.webhook_secret))

    assert response.status_code == 200
    assert response.json() == {"result": "ignored"}
    assert "unknown prediction 'not-ours'" in caplog.text
    assert completions == []
    assert snapshot() == before


@pytest.mark.django_db
def test_a_webhook_for_a_finished_generation_changes_nothing(
    client, emulator, completions, django_capture_on_commit_callbacks
):
    row = submitted()
    body = finished_body(emulator, row)
    with django_capture_on_commit_callbacks(execute=True):
        post(client, body, signed(body, emulator.webhook_secret))
    before = snapshot()

    response = post(client, body, signed(body, emulator.webhook_secret))  # a new webhook-id

    assert response.json() == {"result": "finished"}
    assert completions == [row.pk]
    assert snapshot() == before


# Refusals: nothing changes ------------------------------------------------------------------


def _wrong_signature(body, secret):
    return signed(body, new_secret())


def _stale_timestamp(body, secret):
    return signed(body, secret, timestamp=int(time.time()) - 301)


def _future_timestamp(body, secret):
    return signed(body, secret, timestamp=int(time.time()) + 301)


def _signature_of_another_body(body, secret):
    return signed(body + b" ", secret)


def _missing(name):
    def headers(body, secret):
        complete = signed(body, secret)
        del complete[name]
        return complete

    headers.__name__ = f"_missing_{name}"
    return headers


@pytest.mark.django_db
@pytest.mark.parametrize(
    "forge",
    [
        _wrong_signature,
        _stale_timestamp,
        _future_timestamp,
        _signature_of_another_body,
        _missing("webhook-id"),
        _missing("webhook-timestamp"),
        _missing("webhook-signature"),
    ],
    ids=lambda forge: forge.__name__.strip("_").replace("_", " "),
)
def test_a_forged_or_stale_webhook_is_refused_and_changes_nothing(
    client, emulator, completions, forge, django_capture_on_commit_callbacks
):
    row = submitted()
    body = finished_body(emulator, row)
    before = snapshot()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post(client, body, forge(body, emulator.webhook_secret))

    assert response.status_code == 400
    assert callbacks == [] and completions == []
    assert snapshot() == before
    assert emulator.counts["download"] == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [b"not json", b"\xff\xfe", b"[]", b'{"status": "succeeded"}', b'{"id": 5}', b'{"id": ""}'],
)
def test_a_signed_body_that_is_not_a_prediction_is_refused(client, emulator, completions, body):
    submitted()
    before = snapshot()

    response = post(client, body, signed(body, emulator.webhook_secret))

    assert response.status_code == 400
    assert completions == []
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_only_post_is_allowed(client, emulator, method):
    response = getattr(client, method)(url())
    assert response.status_code == 405
    assert response["Allow"] == "POST"


@pytest.mark.django_db
def test_the_receiver_needs_no_csrf_token(emulator):
    row = submitted()
    body = finished_body(emulator, row)
    strict = Client(enforce_csrf_checks=True)
    response = post(strict, body, signed(body, emulator.webhook_secret))
    assert response.status_code == 200


@pytest.mark.django_db
def test_the_receiver_is_reachable_on_a_site_that_requires_login(emulator, settings):
    """Django 5.1+'s LoginRequiredMiddleware must not send Replicate to the login page."""
    if django.VERSION < (5, 1):
        pytest.skip("LoginRequiredMiddleware is new in Django 5.1")
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.contrib.auth.middleware.LoginRequiredMiddleware",
    ]
    row = submitted()
    body = finished_body(emulator, row)
    response = post(Client(), body, signed(body, emulator.webhook_secret))
    assert response.status_code == 200
    assert response.json() == {"result": "accepted"}


# Deduplication ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_replayed_webhook_id_changes_nothing(
    client, emulator, completions, django_capture_on_commit_callbacks
):
    first, second = submitted("One"), submitted("Two")
    msg_id = new_message_id()
    body = finished_body(emulator, first)
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            post(client, body, signed(body, emulator.webhook_secret, msg_id=msg_id)).status_code
            == 200
        )
    before = snapshot()

    # The same id again, freshly signed, even carrying another prediction: ignored.
    for replay in (body, finished_body(emulator, second)):
        with django_capture_on_commit_callbacks(execute=True):
            response = post(client, replay, signed(replay, emulator.webhook_secret, msg_id=msg_id))
        assert response.status_code == 200
        assert response.json() == {"result": "duplicate"}

    assert completions == [first.pk]
    assert snapshot() == before
    second.refresh_from_db()
    assert second.status == Status.RUNNING


@pytest.mark.django_db(transaction=True)  # the completion is queued at once, as in production
def test_a_delivery_that_failed_is_processed_when_replicate_retries_it(emulator, monkeypatch):
    row = submitted()
    body = finished_body(emulator, row)
    msg_id = new_message_id()
    real = views.enqueue_completion

    def broker_down(image_id: int) -> None:
        raise ConnectionError("the broker is down")

    monkeypatch.setattr(views, "enqueue_completion", broker_down)
    client = Client(raise_request_exception=False)
    response = post(client, body, signed(body, emulator.webhook_secret, msg_id=msg_id))
    assert response.status_code == 500  # Replicate will try again
    row.refresh_from_db()
    assert row.status == Status.RUNNING

    monkeypatch.setattr(views, "enqueue_completion", real)
    response = post(client, body, signed(body, emulator.webhook_secret, msg_id=msg_id))
    assert response.json() == {"result": "accepted"}
    row.refresh_from_db()
    assert row.status == Status.SUCCEEDED


# The signing secret -------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_rotated_secret_is_refetched_at_most_every_few_minutes(
    client, fetched_secret, completions, monkeypatch, django_capture_on_commit_callbacks
):
    emulator = fetched_secret
    now = [1000.0]
    monkeypatch.setattr(webhooks, "monotonic", lambda: now[0])
    first, second, third = submitted("One"), submitted("Two"), submitted("Three")
    body = finished_body(emulator, first)
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, body, signed(body, emulator.webhook_secret)).status_code == 200
    assert emulator.counts["secret"] == 1

    emulator.webhook_secret = new_secret()  # rotated in the Replicate dashboard
    body = finished_body(emulator, second)
    now[0] += 60
    # Fetched a minute ago: not asked again yet (a flood of forgeries costs one fetch).
    assert post(client, body, signed(body, emulator.webhook_secret)).status_code == 400
    assert emulator.counts["secret"] == 1

    now[0] += webhooks.REFETCH_INTERVAL
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, body, signed(body, emulator.webhook_secret))
    assert response.status_code == 200
    assert emulator.counts["secret"] == 2

    # The new secret is kept: the next delivery needs no fetch.
    body = finished_body(emulator, third)
    now[0] += webhooks.REFETCH_INTERVAL
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, body, signed(body, emulator.webhook_secret)).status_code == 200
    assert emulator.counts["secret"] == 2
    assert completions == [first.pk, second.pk, third.pk]


@pytest.mark.django_db
def test_a_secret_that_cannot_be_fetched_answers_503_so_replicate_retries(
    client, fetched_secret, settings, completions, caplog
):
    emulator = fetched_secret
    row = submitted()
    body = finished_body(emulator, row)
    use(settings, REPLICATE_API_TOKEN="r8_revoked_token")

    with caplog.at_level(logging.DEBUG):
        for _ in range(2):
            response = post(client, body, signed(body, emulator.webhook_secret))
            assert response.status_code == 503

    assert emulator.counts["unauthorized"] == 1  # the second answer did not ask again
    assert "Replicate answered 401" in caplog.text
    assert "r8_revoked_token" not in caplog.text
    assert completions == []


@pytest.mark.django_db
def test_without_a_secret_or_a_token_webhooks_are_answered_503(client, settings):
    use(settings, PROVIDER="placeholder", REPLICATE_API_TOKEN="", WEBHOOK_SECRET="")
    body = b'{"id": "abc"}'
    response = post(client, body, signed(body, new_secret()))
    assert response.status_code == 503


@pytest.mark.django_db
def test_a_malformed_configured_secret_is_not_blamed_on_the_sender(client, settings, caplog):
    use(settings, WEBHOOK_SECRET="whsec_not base64!")
    body = b'{"id": "abc"}'
    with caplog.at_level(logging.ERROR, logger="nanobanana_django"):
        response = post(client, body, signed(body, new_secret()))
    assert response.status_code == 503
    assert "NANOBANANA['WEBHOOK_SECRET'] is not a valid" in caplog.text
    assert "not base64!" not in caplog.text


@pytest.mark.django_db
def test_a_configured_secret_without_its_padding_completes_generations(
    client, emulator, settings, completions, django_capture_on_commit_callbacks
):
    assert emulator.webhook_secret.endswith("=")
    use(settings, WEBHOOK_SECRET=emulator.webhook_secret.rstrip("="))
    row = submitted()
    body = finished_body(emulator, row)
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, body, signed(body, emulator.webhook_secret))
    assert response.status_code == 200
    assert completions == [row.pk]
    row.refresh_from_db()
    assert row.status == Status.SUCCEEDED


@pytest.mark.django_db
def test_the_secret_never_appears_in_logs_answers_or_the_database(
    client, fetched_secret, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    emulator = fetched_secret
    monkeypatch.setattr(webhooks, "REFETCH_INTERVAL", 0.0)
    first, second = submitted("One"), submitted("Two")
    secrets_seen = [emulator.webhook_secret]
    answers = []
    with caplog.at_level(logging.DEBUG):
        body = finished_body(emulator, first)
        with django_capture_on_commit_callbacks(execute=True):
            answers.append(post(client, body, signed(body, emulator.webhook_secret)))
        answers.append(post(client, body, signed(body, new_secret())))  # forged: refetches
        emulator.webhook_secret = new_secret()
        secrets_seen.append(emulator.webhook_secret)
        body = finished_body(emulator, second)
        with django_capture_on_commit_callbacks(execute=True):
            answers.append(post(client, body, signed(body, emulator.webhook_secret)))
    assert [answer.status_code for answer in answers] == [200, 400, 200]
    assert emulator.counts["secret"] == 3

    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    texts = [caplog.text, dump.getvalue(), *(answer.content.decode() for answer in answers)]
    for secret in secrets_seen:
        key = secret.removeprefix("whsec_")
        for text in texts:
            assert key not in text
            assert base64.b64decode(key).hex() not in text
    assert emulator.token not in caplog.text


# End to end, through the emulator's real deliveries ----------------------------------------


@pytest.fixture
def public_site(live_server, fetched_secret, settings):
    """The emulator delivers webhooks over HTTP to a live server running this app."""
    use(settings, PUBLIC_URL=live_server.url)
    return fetched_secret


@pytest.mark.django_db(transaction=True)
def test_webhooks_from_replicate_finish_generations_without_polling(public_site, completions):
    emulator = public_site
    row = submitted()
    (create,) = [request for request in emulator.requests if request.method == "POST"]
    assert json.loads(create.body)["webhook"] == webhook_url()
    assert webhook_url() == f"{app_settings.PUBLIC_URL}/nanobanana/webhooks/replicate/"

    assert emulator.wait_for_webhooks(timeout=10)
    row = wait_for_row(row)

    assert row.status == Status.SUCCEEDED
    assert Article.objects.get().header_image.name == row.image.name
    assert emulator.counts["webhook_delivered"] == 1
    assert completions == [row.pk]
    # No polling: the one GET is the completion confirming the prediction it was told of.
    assert emulator.counts["get"] == 1
    assert emulator.counts["secret"] == 1


@pytest.mark.django_db(transaction=True)
def test_a_webhook_delivered_twice_completes_the_generation_once(
    public_site, completions, media_root, caplog
):
    emulator = public_site
    emulator.add_fault("webhook_duplicate")
    caplog.set_level(logging.DEBUG, logger="nanobanana_django")
    row = submitted()

    assert emulator.wait_for_webhooks(timeout=10)
    row = wait_for_row(row)

    assert row.status == Status.SUCCEEDED
    assert emulator.counts["webhook_delivered"] == 2
    assert len({attempt.webhook_id for attempt in emulator.webhook_attempts}) == 1
    assert "already handled" in caplog.text
    assert completions == [row.pk]
    assert emulator.counts["download"] == 1
    stored = [path.relative_to(media_root).as_posix() for path in media_root.rglob("*.*")]
    assert sorted(stored) == sorted([row.image.name, *row.renditions.values()])  # one image


@pytest.mark.django_db(transaction=True)
def test_a_lost_webhook_is_caught_by_the_poller(public_site, completions):
    emulator = public_site
    emulator.add_fault("webhook_lost")
    row = submitted()

    assert emulator.wait_for_webhooks(timeout=10)  # the prediction ended, nothing came
    row.refresh_from_db()
    assert row.status == Status.RUNNING
    assert emulator.counts["webhook_lost"] == 1

    poll_once()  # what the poller does every WEBHOOK_POLL_INTERVAL seconds
    row.refresh_from_db()
    assert row.status == Status.SUCCEEDED
    assert completions == []


# System checks ------------------------------------------------------------------------------


def check_ids(settings) -> list[str]:
    return [message.id for message in run_checks(tags=["nanobanana"])]


def test_the_webhook_url_is_under_the_mounted_prefix(settings):
    use(settings, PUBLIC_URL="https://blog.example.com/")
    assert url() == "/nanobanana/webhooks/replicate/"
    assert webhook_url() == "https://blog.example.com/nanobanana/webhooks/replicate/"


def test_check_public_url_without_the_urls_mounted(settings):
    use(settings, PUBLIC_URL="https://blog.example.com")
    assert "nanobanana.W004" not in check_ids(settings)
    settings.ROOT_URLCONF = __name__
    assert "nanobanana.W004" in check_ids(settings)


@pytest.mark.parametrize(
    ("public_url", "warned"),
    [
        ("https://blog.example.com", False),
        ("http://blog.example.com", True),
        ("http://localhost:8000", False),
        ("http://blog.localhost:8000", False),
        ("http://127.0.0.1:8000", False),
        ("http://[::1]:8000", False),
        ("http://10.0.0.5", True),
    ],
)
def test_check_public_url_must_be_https_except_on_this_machine(settings, public_url, warned):
    use(settings, PUBLIC_URL=public_url)
    assert ("nanobanana.W005" in check_ids(settings)) is warned


def test_check_invalid_public_url(settings):
    use(settings, PUBLIC_URL="blog.example.com")
    assert "nanobanana.E001" in check_ids(settings)


def test_no_webhook_checks_without_a_public_url(settings):
    use(settings, PUBLIC_URL="")
    settings.ROOT_URLCONF = __name__
    ids = check_ids(settings)
    assert "nanobanana.W004" not in ids and "nanobanana.W005" not in ids
