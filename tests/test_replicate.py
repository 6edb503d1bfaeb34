"""The Replicate provider, over real HTTP against the emulator on loopback."""

import io
import logging
import time
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from email.utils import format_datetime

import httpx
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from nanobanana_django import exceptions
from nanobanana_django import pipeline as services
from nanobanana_django.models import GeneratedImage
from nanobanana_django.providers import GenerationRequest
from nanobanana_django.providers.replicate import ReplicateProvider
from nanobanana_django.services import (
    complete_generation,
    create_generation,
    generate_for,
    generate_image,
    run_generation,
)
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db

Status = GeneratedImage.Status


@pytest.fixture
def emulator(replicate_emulator, settings):
    """The app pointed at the emulator, polling fast."""
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        **replicate_emulator.settings(),
        "POLL_INTERVAL": 0.05,
        "MAX_RETRIES": 3,
    }
    return replicate_emulator


def configure(settings, **values):
    settings.NANOBANANA = {**settings.NANOBANANA, **values}


def provider_for(emulator, **options):
    defaults = {"api_token": emulator.token, "base_url": emulator.base_url, "max_retries": 3}
    return ReplicateProvider(**{**defaults, **options})


def request(**params):
    return GenerationRequest(
        model="google/nano-banana-2",
        input={"prompt": "a lighthouse", "aspect_ratio": "1:1", **params},
    )


# The whole path -----------------------------------------------------------------------


def test_the_command_stores_an_image_of_the_requested_size_with_one_prediction(
    emulator, settings, capsys
):
    configure(settings, DEFAULT_INPUT={"aspect_ratio": "21:9", "resolution": "2K"})
    article = Article.objects.create(title="Harbour lights", topic="photography")

    call_command("nanobanana_generate", "testapp.Article", "--ids", str(article.pk), "--sync")

    article.refresh_from_db()
    row = GeneratedImage.objects.get()
    assert row.status == Status.SUCCEEDED
    assert article.header_image.name == row.image.name
    with Image.open(article.header_image.path) as image:
        width, height = image.size
    assert abs((width / height) / (21 / 9) - 1) < 0.015
    assert width * height >= 4 * 1024 * 1024 * 0.95  # 2K has four times the pixels of 1K
    assert emulator.created_count == 1
    assert row.prediction_id in emulator.predictions
    assert row.predict_time is not None
    assert "succeeded" not in capsys.readouterr().err


def test_a_wrong_token_fails_readably_and_leaves_the_article_alone(emulator, settings, capsys):
    configure(settings, REPLICATE_API_TOKEN="r8_wrong")
    article = Article.objects.create(title="Locked out")

    with pytest.raises(CommandError, match="1 generation"):
        call_command("nanobanana_generate", "testapp.Article", "--ids", str(article.pk), "--sync")

    row = GeneratedImage.objects.get()
    assert row.status == Status.FAILED
    assert row.error_code == "authentication_failed"
    assert "token" in row.error_message and "REPLICATE_API_TOKEN" in row.error_message
    assert not Article.objects.get().header_image
    assert emulator.created_count == 0
    output = capsys.readouterr()
    assert "Traceback" not in output.err + output.out
    assert "token" in output.err


def test_the_request_uses_sync_mode_deadline_and_the_token(emulator, settings):
    configure(settings, REPLICATE_WAIT=15, CANCEL_AFTER="5m")
    generate_image("a lighthouse")
    create = next(r for r in emulator.requests if r.method == "POST")
    assert create.path == "/v1/models/google/nano-banana-2/predictions"
    assert create.headers["prefer"] == "wait=15"
    assert create.headers["cancel-after"] == "5m"
    assert create.headers["authorization"] == f"Bearer {emulator.token}"
    assert set(create.json()) == {"input"}
    assert create.json()["input"]["aspect_ratio"] == "16:9"


def test_a_slow_prediction_is_polled_to_the_end(emulator, settings):
    configure(settings, REPLICATE_WAIT=1)
    emulator.latency = 1.6
    row = generate_image("a lighthouse")
    assert row.status == Status.SUCCEEDED
    assert emulator.created_count == 1
    assert emulator.counts["get"] >= 1


def test_without_sync_mode_the_prediction_is_polled(emulator, settings):
    configure(settings, REPLICATE_WAIT=0)
    emulator.latency = 0.3
    row = generate_image("a lighthouse")
    assert row.status == Status.SUCCEEDED
    assert "prefer" not in emulator.requests[0].headers
    assert emulator.counts["get"] >= 2


def test_a_list_output_is_accepted(emulator):
    emulator.output_as_list = True
    assert generate_image("a lighthouse").status == Status.SUCCEEDED


# Terminal statuses ----------------------------------------------------------------------


def test_a_failed_prediction_records_the_models_reason(emulator):
    emulator.add_fault("fail", error="E005: The output was flagged as sensitive.")
    row = generate_for(Article.objects.create(title="Flagged"))
    assert row.status == Status.FAILED
    assert row.error_code == "prediction_failed"
    assert "flagged as sensitive" in row.error_message
    assert not Article.objects.get().header_image


def test_a_deadline_before_start_is_aborted_and_said_to_be_unbilled(emulator, settings):
    emulator.min_cancel_after = 0.1
    emulator.queue_delay = 5
    configure(settings, CANCEL_AFTER="5s", REPLICATE_WAIT=0)
    emulator.min_cancel_after = 0.1
    row = create_generation(None, prompt="a lighthouse")
    # A 5 s deadline is Replicate's minimum; shorten it on the wire for the test.
    provider = provider_for(emulator, wait=0, cancel_after="300ms")
    row = run_generation(row.pk, provider=provider)
    assert row.status == Status.FAILED
    assert row.error_code == "aborted"
    assert "not billed" in row.error_message


def test_a_deadline_while_running_is_canceled(emulator):
    emulator.min_cancel_after = 0.1
    emulator.latency = 5
    row = create_generation(None, prompt="a lighthouse")
    row = run_generation(row.pk, provider=provider_for(emulator, wait=0, cancel_after="300ms"))
    assert row.status == Status.FAILED
    assert row.error_code == "canceled"


def test_a_generation_that_takes_too_long_is_canceled_at_replicate(emulator, settings):
    configure(settings, GENERATION_TIMEOUT=0.5, REPLICATE_WAIT=0)
    emulator.latency = 30
    row = generate_image("a lighthouse")
    assert row.status == Status.FAILED
    assert row.error_code == "timeout"
    assert emulator.predictions[row.prediction_id]["status"] == "canceled"


# HTTP errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault, code, words",
    [
        ("payment_required", "payment_required", "credit"),
        ("file_too_large", "request_too_large", "413"),
    ],
)
def test_refused_creates_are_explained(emulator, fault, code, words):
    emulator.add_fault(fault)
    row = generate_image("a lighthouse")
    assert (row.status, row.error_code) == (Status.FAILED, code)
    assert words in row.error_message
    assert emulator.created_count == 0


def test_an_unknown_model_is_a_404_naming_the_setting(emulator):
    with pytest.raises(exceptions.ModelNotFound, match="NANOBANANA\\['MODEL'\\]"):
        provider_for(emulator).submit(
            GenerationRequest(model="acme/painter", input={"prompt": "x"})
        )


def test_a_422_carries_replicates_detail(emulator):
    with pytest.raises(exceptions.InvalidInput) as excinfo:
        provider_for(emulator).submit(request(aspect_ratio="7:3"))
    assert "aspect_ratio" in str(excinfo.value)
    assert excinfo.value.status_code == 422


def test_throttling_is_waited_out_as_replicate_asks(emulator):
    emulator.add_fault("throttle", times=2, retry_after=2)
    slept = []
    prediction = provider_for(emulator, sleep=slept.append).submit(request())
    assert slept == [2.0, 2.0]
    assert prediction.id in emulator.predictions
    assert emulator.created_count == 1


def test_throttling_that_does_not_end_fails_without_creating(emulator, settings):
    configure(settings, THROTTLE_TIMEOUT=0.5)
    emulator.add_fault("throttle", times=1000, retry_after=0)
    row = generate_image("a lighthouse")
    assert (row.status, row.error_code) == (Status.FAILED, "rate_limited")
    assert emulator.created_count == 0


def test_a_server_error_on_create_is_not_resent(emulator):
    emulator.add_fault("server_error", status=503)
    row = generate_image("a lighthouse")
    assert (row.status, row.error_code) == (Status.FAILED, "provider_unavailable")
    assert "not re-sent" in row.error_message
    assert emulator.counts["create_rejected"] == 1
    assert emulator.created_count == 0


def test_server_errors_on_reads_are_retried(emulator, settings):
    configure(settings, REPLICATE_WAIT=0)
    emulator.latency = 0.2
    emulator.add_fault("server_error", status=502, on="get", times=2)
    emulator.add_fault("server_error", status=500, on="download")
    row = generate_image("a lighthouse")
    assert row.status == Status.SUCCEEDED
    assert emulator.created_count == 1


def test_a_create_that_times_out_after_sending_is_found_not_resent(emulator, settings):
    configure(settings, HTTP_TIMEOUT=0.5, REPLICATE_WAIT=0)
    emulator.add_fault("hang", on="create", seconds=2)
    row = generate_image("a lighthouse")
    assert row.status == Status.SUCCEEDED, row.error_message
    assert emulator.created_count == 1
    assert row.prediction_id in emulator.predictions
    time.sleep(1.6)  # let the hung handler finish before the emulator stops


def test_a_billed_prediction_whose_answer_was_dropped_is_found_and_attached(emulator):
    emulator.add_fault("drop", on="create")
    article = Article.objects.create(title="Dropped on the way back")
    row = generate_for(article)
    assert row.status == Status.SUCCEEDED, row.error_message
    assert emulator.created_count == 1
    assert row.prediction_id in emulator.predictions
    assert emulator.counts["list"] >= 1
    assert Article.objects.get().header_image.name == row.image.name


def test_a_background_create_whose_answer_was_dropped_is_found_and_finished(emulator, settings):
    configure(settings, REPLICATE_WAIT=0)
    emulator.latency = 0.2
    emulator.add_fault("drop", on="create")
    article = Article.objects.create(title="Dropped in the background")
    row = run_generation(create_generation(article).pk, wait=False)
    assert row.status == Status.RUNNING
    assert row.prediction_id in emulator.predictions  # the poller or a webhook takes it from here
    deadline = time.monotonic() + 5
    while emulator.predictions[row.prediction_id]["status"] != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    row = complete_generation(row.pk)
    assert row.status == Status.SUCCEEDED, row.error_message
    assert emulator.created_count == 1
    assert Article.objects.get().header_image.name == row.image.name


def test_an_unreachable_api_fails_clearly(settings, emulator):
    configure(settings, REPLICATE_BASE_URL="http://127.0.0.1:9", MAX_RETRIES=1)
    row = generate_image("a lighthouse")
    assert (row.status, row.error_code) == (Status.FAILED, "provider_unavailable")
    assert "Could not connect" in row.error_message


# Outputs --------------------------------------------------------------------------------


def test_an_output_already_deleted_is_reported(emulator):
    emulator.add_fault("expired_output")
    row = generate_image("a lighthouse")
    assert (row.status, row.error_code) == (Status.FAILED, "output_expired")
    assert "one hour" in row.error_message


def test_a_prediction_whose_data_was_removed_is_reported(emulator):
    emulator.add_fault("data_removed")
    row = generate_image("a lighthouse")
    assert (row.status, row.error_code) == (Status.FAILED, "output_expired")


@pytest.mark.parametrize(
    "fault, code",
    [("non_image", "invalid_image"), ("truncated", "invalid_image"), ("bomb", "image_too_large")],
)
def test_bad_output_bytes_are_not_stored(emulator, media_root, fault, code):
    emulator.add_fault(fault)
    row = generate_for(Article.objects.create(title="Bad bytes"))
    assert (row.status, row.error_code) == (Status.FAILED, code)
    assert not row.image
    assert not Article.objects.get().header_image
    assert not any(media_root.rglob("*.*"))


def test_an_oversized_output_is_cut_off(emulator, settings, media_root):
    configure(settings, MAX_IMAGE_BYTES=2 * 1024 * 1024)
    emulator.add_fault("oversized", size=8 * 1024 * 1024)
    row = generate_image("a lighthouse")
    assert (row.status, row.error_code) == (Status.FAILED, "image_too_large")
    assert "MAX_IMAGE_BYTES" in row.error_message
    assert not any(media_root.rglob("*.*"))


def test_the_output_is_downloaded_with_the_token(emulator):
    generate_image("a lighthouse")
    download = next(r for r in emulator.requests if r.path.startswith("/files/"))
    assert download.headers["authorization"] == f"Bearer {emulator.token}"


def test_the_token_is_only_sent_to_replicate_hosts(emulator):
    provider = provider_for(emulator)
    assert provider._may_send_token(f"{emulator.base_url}/files/x/output.jpg")
    assert provider._may_send_token("https://replicate.delivery/xezq/abc/out.jpg")
    assert provider._may_send_token("https://pbxt.replicate.delivery/abc/out.jpg")
    assert not provider._may_send_token("https://evil.example/replicate.delivery/out.jpg")
    assert not provider._may_send_token("http://replicate.delivery/out.jpg")
    assert not provider._may_send_token("https://notreplicate.delivery/out.jpg")


# Billing and secrets --------------------------------------------------------------------


def test_a_row_with_a_prediction_is_resumed_not_resubmitted(emulator, settings):
    configure(settings, REPLICATE_WAIT=0)
    emulator.latency = 0.3
    prediction = provider_for(emulator, wait=0).submit(request())
    row = create_generation(None, prompt="a lighthouse")
    GeneratedImage.objects.filter(pk=row.pk).update(
        status=Status.RUNNING, prediction_id=prediction.id
    )
    row = run_generation(row.pk)
    assert row.status == Status.SUCCEEDED
    assert emulator.created_count == 1


def test_the_token_never_reaches_rows_messages_or_logs(emulator, settings, caplog):
    secret = "r8_ThisIsTheSecretToken0123456789"
    emulator.token = secret
    configure(settings, REPLICATE_API_TOKEN=secret)
    caplog.set_level(logging.DEBUG)
    emulator.add_fault("fail")
    emulator.add_fault("server_error", status=503)
    rows = [generate_image("a lighthouse"), generate_image("a lighthouse")]
    configure(settings, REPLICATE_API_TOKEN=secret + "x")
    rows.append(generate_image("a lighthouse"))
    provider = provider_for(emulator, api_token=secret)
    assert secret not in repr(provider)
    for row in rows:
        assert row.status == Status.FAILED
        values = [str(getattr(row, f.attname)) for f in GeneratedImage._meta.fields]
        assert not any(secret in value for value in values)
    assert secret not in caplog.text


def test_a_live_create_is_never_repeated_by_retries(emulator, settings):
    """Across every fault that can hit a create, at most one prediction per row."""
    for fault, options in [
        ("throttle", {"retry_after": 0}),
        ("server_error", {"status": 500}),
        ("drop", {}),
        ("hang", {"seconds": 1.0}),
    ]:
        configure(settings, HTTP_TIMEOUT=0.5, REPLICATE_WAIT=0)
        before = emulator.created_count
        emulator.add_fault(fault, **options)
        generate_image("a lighthouse")
        assert emulator.created_count - before <= 1, fault
    time.sleep(0.6)  # let the hung handler finish before the emulator stops


# Response shapes the official client copes with (answered by a mock transport) -------------

API = "https://api.replicate.test"


def mock_provider(handler, slept=None):
    """A provider whose HTTP goes to ``handler``; each request is also kept in ``.seen``."""
    seen = []

    def record(http_request):
        seen.append(http_request)
        return handler(http_request)

    provider = ReplicateProvider(
        api_token="r8_test",
        base_url=API,
        wait=0,
        max_retries=3,
        transport=httpx.MockTransport(record),
        sleep=(slept.append if slept is not None else lambda seconds: None),
    )
    provider.seen = seen
    return provider


def prediction_json(**fields):
    return {"id": "p1", "model": "google/nano-banana-2", "status": "starting", **fields}


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "navy").save(buffer, "PNG")
    return buffer.getvalue()


def run_with(handler) -> GeneratedImage:
    row = create_generation(None, prompt="a lighthouse")
    return run_generation(row.pk, provider=mock_provider(handler))


def test_an_error_given_as_an_object_is_recorded_as_its_message():
    error = {"message": "The output was flagged as sensitive.", "code": "E005"}
    row = run_with(
        lambda r: httpx.Response(201, json=prediction_json(status="failed", error=error))
    )
    assert (row.status, row.error_code) == (Status.FAILED, "prediction_failed")
    assert "The output was flagged as sensitive" in row.error_message
    assert "{" not in row.error_message and "'message'" not in row.error_message


def test_an_error_object_without_a_message_is_recorded_as_compact_json():
    error = {"code": "E999", "retryable": False}
    row = run_with(
        lambda r: httpx.Response(201, json=prediction_json(status="failed", error=error))
    )
    assert '{"code":"E999","retryable":false}' in row.error_message
    assert "'code'" not in row.error_message and "False" not in row.error_message


@pytest.mark.parametrize(
    "output",
    [
        {"image": "https://replicate.delivery/xezq/abc/out.png"},
        {"seed": 7, "images": ["https://replicate.delivery/xezq/abc/out.png"]},
        [{"url": "https://replicate.delivery/xezq/abc/out.png"}],
    ],
)
def test_an_image_url_inside_an_object_output_is_downloaded(output, media_root):
    def handler(http_request):
        if http_request.url.host == "replicate.delivery":
            return httpx.Response(200, content=png_bytes(), headers={"Content-Type": "image/png"})
        return httpx.Response(201, json=prediction_json(status="succeeded", output=output))

    row = run_with(handler)
    assert row.status == Status.SUCCEEDED, row.error_message
    assert (row.image_format, row.width, row.height) == ("PNG", 64, 48)


def test_an_object_output_without_an_image_says_what_it_was_not_expired():
    output = {"caption": "a lighthouse at dusk", "seed": 7}
    row = run_with(
        lambda r: httpx.Response(201, json=prediction_json(status="succeeded", output=output))
    )
    assert row.status == Status.FAILED
    assert row.error_code == "unexpected_output"
    assert "expired" not in row.error_message and "one hour" not in row.error_message
    assert "'caption'" in row.error_message and "'seed'" in row.error_message
    assert "lighthouse at dusk" not in row.error_message  # values are not echoed


def test_retry_after_given_as_an_http_date_is_honoured_on_reads():
    answers = iter(["busy", "ok"])

    def handler(http_request):
        if next(answers) == "busy":
            later = datetime.now(dt_timezone.utc) + timedelta(seconds=20)
            return httpx.Response(503, headers={"Retry-After": format_datetime(later, usegmt=True)})
        return httpx.Response(200, json=prediction_json(status="processing"))

    slept = []
    assert mock_provider(handler, slept).fetch("p1").status == "processing"
    assert len(slept) == 1 and 18.5 <= slept[0] <= 20


def test_retry_after_given_as_an_http_date_is_honoured_on_a_throttled_create():
    answers = iter(["throttled", "created"])

    def handler(http_request):
        if next(answers) == "throttled":
            later = datetime.now(dt_timezone.utc) + timedelta(seconds=12)
            return httpx.Response(429, headers={"Retry-After": format_datetime(later, usegmt=True)})
        return httpx.Response(201, json=prediction_json())

    slept = []
    assert mock_provider(handler, slept).submit(request()).id == "p1"
    assert len(slept) == 1 and 10.5 <= slept[0] <= 12


def test_a_retry_after_date_in_the_past_retries_at_once():
    answers = iter(["busy", "ok"])

    def handler(http_request):
        if next(answers) == "busy":
            return httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
        return httpx.Response(200, json=prediction_json())

    slept = []
    mock_provider(handler, slept).fetch("p1")
    assert slept == [0.0]


def listed(**fields):
    return {**prediction_json(input={"prompt": "a lighthouse", "aspect_ratio": "1:1"}), **fields}


def test_a_relative_next_page_is_followed():
    def handler(http_request):
        if "cursor" not in http_request.url.params:
            return httpx.Response(
                200,
                json={
                    "next": "/v1/predictions?cursor=page2",
                    "results": [listed(id="other", model="x/y")],
                },
            )
        return httpx.Response(200, json={"next": None, "results": [listed(id="p1")]})

    provider = mock_provider(handler)
    found = provider.find(request(), created_after=datetime.now(dt_timezone.utc))
    assert [p.id for p in found] == ["p1"]
    assert str(provider.seen[1].url) == f"{API}/v1/predictions?cursor=page2"


@pytest.mark.parametrize(
    "next_url", ["https://evil.example/v1/predictions?cursor=2", "//evil.example/v1/predictions"]
)
def test_a_next_page_on_another_origin_is_not_followed(next_url):
    def handler(http_request):
        return httpx.Response(200, json={"next": next_url, "results": [listed(id="p1")]})

    provider = mock_provider(handler)
    found = provider.find(request(), created_after=datetime.now(dt_timezone.utc))
    assert [p.id for p in found] == ["p1"]
    assert [r.url.host for r in provider.seen] == ["api.replicate.test"]


# A create whose answer was lost, at the HTTP level ------------------------------------------


@pytest.fixture
def quick_lookups(monkeypatch):
    """The lost create's lookups happen without the real pauses between them."""
    monkeypatch.setattr(services, "LOOKUP_DELAYS", (0.0, 0.0, 0.0, 0.0))


def lost_create(listings, *, download=None):
    """A handler: the create is sent and its answer lost; each listing answers the next page."""
    pages = iter(listings)

    def handler(http_request):
        if http_request.method == "POST":
            raise httpx.ReadError("connection reset", request=http_request)
        if http_request.url.path == "/v1/predictions":
            page = next(pages, [])
            if isinstance(page, httpx.Response):
                return page
            return httpx.Response(200, json={"next": None, "results": page})
        if http_request.url.host == "replicate.delivery":
            return httpx.Response(200, content=png_bytes())
        raise AssertionError(f"unexpected request {http_request.method} {http_request.url}")

    return handler


def run_against(handler) -> tuple[GeneratedImage, ReplicateProvider]:
    provider = mock_provider(handler)
    row = create_generation(None, prompt="a lighthouse", input={"aspect_ratio": "1:1"})
    return run_generation(row.pk, provider=provider), provider


def made_for_us(**fields):
    sent = {"prompt": "a lighthouse", "aspect_ratio": "1:1", "resolution": "1K"}
    return {
        **prediction_json(input={**sent, "output_format": "jpg"}),
        "status": "succeeded",
        "output": "https://replicate.delivery/xezq/lost/out.png",
        **fields,
    }


def test_a_lost_create_that_shows_up_late_in_the_list_is_adopted(quick_lookups):
    row, provider = run_against(lost_create([[], [], [made_for_us(id="late")]]))
    assert row.status == Status.SUCCEEDED, row.error_message
    assert row.prediction_id == "late"
    assert [r.method for r in provider.seen].count("POST") == 1


def test_a_lost_create_never_listed_fails_without_a_second_create(quick_lookups):
    owned = create_generation(None, prompt="a lighthouse", input={"aspect_ratio": "1:1"})
    GeneratedImage.objects.filter(pk=owned.pk).update(
        status=Status.SUCCEEDED, prediction_id="someone-elses"
    )
    row, provider = run_against(lost_create([[made_for_us(id="someone-elses")]] * 10))
    assert (row.status, row.error_code) == (Status.FAILED, "submission_uncertain")
    assert "not sent again" in row.error_message
    assert "probably" in row.error_message
    methods = [r.method for r in provider.seen]
    assert methods.count("POST") == 1
    assert methods.count("GET") == 5  # the first look and four more over a few seconds


def test_a_lost_create_whose_lookup_fails_says_so(quick_lookups):
    refused = httpx.Response(401, json={"detail": "Invalid token."})
    row, provider = run_against(lost_create([refused]))
    assert (row.status, row.error_code) == (Status.FAILED, "submission_uncertain")
    assert "dashboard" in row.error_message and "401" in row.error_message
    assert [r.method for r in provider.seen].count("POST") == 1


def test_the_lookups_of_a_lost_create_take_a_few_seconds_at_most():
    assert 3 <= sum(services.LOOKUP_DELAYS) <= 10
