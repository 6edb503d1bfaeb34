"""The Replicate emulator, exercised over HTTP the way a client sees it (no Django involved).

Latencies are kept to fractions of a second so the whole module runs in a few seconds.
"""

from __future__ import annotations

import base64
import io
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image

from nanobanana_django.dimensions import image_size
from nanobanana_django.providers.replicate_models import REPLICATE_MODELS, validate_input
from nanobanana_django.standard_webhooks import verify
from nanobanana_django.testing import ReplicateEmulator
from nanobanana_django.testing.emulator import (
    parse_duration,
    render_image,
    validate_prediction_request,
)

NB2 = "/v1/models/google/nano-banana-2/predictions"
PRO = "/v1/models/google/nano-banana-pro/predictions"
NANO = "/v1/models/google/nano-banana/predictions"
TERMINAL = {"succeeded", "failed", "canceled", "aborted"}


@pytest.fixture
def emu(replicate_emulator: ReplicateEmulator) -> ReplicateEmulator:
    """The packaged fixture, with Replicate's 5 s Cancel-After minimum lowered for speed."""
    replicate_emulator.min_cancel_after = 0.1
    return replicate_emulator


@pytest.fixture
def client(emu: ReplicateEmulator) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {emu.token}"}
    with httpx.Client(base_url=emu.base_url, headers=headers, timeout=10) as http:
        yield http


def create(
    client: httpx.Client,
    path: str = NB2,
    headers: dict[str, str] | None = None,
    **body: Any,
) -> httpx.Response:
    body.setdefault("input", {"prompt": "a lighthouse at dawn", "aspect_ratio": "16:9"})
    return client.post(path, json=body, headers=headers or {})


def poll(client: httpx.Client, prediction: dict[str, Any], timeout: float = 5) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while prediction["status"] not in TERMINAL:
        assert time.monotonic() < deadline, prediction
        time.sleep(0.05)
        prediction = client.get(prediction["urls"]["get"]).json()
    return prediction


def assert_problem(response: httpx.Response, status: int, detail: str = "") -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["title"]
    assert detail in problem["detail"]
    return problem


# ----------------------------------------------------------------------------- auth


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Token r8_emulator_token"])
def test_every_route_needs_the_bearer_token(
    emu: ReplicateEmulator, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with httpx.Client(base_url=emu.base_url, headers=headers) as anonymous:
        responses = [
            anonymous.post(NB2, json={"input": {"prompt": "x"}}),
            anonymous.get("/v1/predictions/abc"),
            anonymous.post("/v1/predictions/abc/cancel"),
            anonymous.get("/v1/webhooks/default/secret"),
            anonymous.get("/files/abc/output.jpg"),
        ]
    for response in responses:
        problem = assert_problem(response, 401, "You did not pass a valid authentication token")
        assert problem["title"] == "Unauthenticated"
    assert emu.counts["unauthorized"] == 5
    assert emu.counts["create_rejected"] == 1
    assert emu.created_count == 0


def test_settings_secret_and_base_url(emu: ReplicateEmulator, client: httpx.Client) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", emu.base_url)
    assert emu.settings() == {
        "PROVIDER": "replicate",
        "REPLICATE_API_TOKEN": "r8_emulator_token",
        "REPLICATE_BASE_URL": emu.base_url,
    }
    assert emu.webhook_secret.startswith("whsec_")
    assert emu.webhook_secret != ReplicateEmulator().webhook_secret
    assert client.get("/v1/webhooks/default/secret").json() == {"key": emu.webhook_secret}
    assert emu.counts["secret"] == 1


def test_unknown_routes_models_and_predictions_are_404(
    emu: ReplicateEmulator, client: httpx.Client
) -> None:
    assert_problem(client.get("/v1/nothing"), 404)
    assert_problem(create(client, "/v1/models/acme/imaginary/predictions"), 404, "acme/imaginary")
    assert_problem(client.get("/v1/predictions/doesnotexist"), 404)
    assert_problem(client.post("/v1/predictions/doesnotexist/cancel"), 404)
    assert_problem(client.get("/files/doesnotexist/output.jpg"), 404)
    assert_problem(client.get(NB2), 405)
    assert emu.counts["create_rejected"] == 1


# ----------------------------------------------------------------------------- create


def test_create_without_prefer_answers_starting_then_progresses(
    emu: ReplicateEmulator, client: httpx.Client
) -> None:
    emu.queue_delay, emu.latency = 0.15, 0.15
    response = create(client)
    assert response.status_code == 201
    prediction = response.json()
    assert prediction["status"] == "starting"
    assert re.fullmatch(r"[a-z0-9]{26}", prediction["id"])
    assert prediction["model"] == "google/nano-banana-2"
    assert prediction["version"] == "hidden"
    assert prediction["input"] == {"prompt": "a lighthouse at dawn", "aspect_ratio": "16:9"}
    assert prediction["output"] is None and prediction["error"] is None
    assert prediction["metrics"] == {} and prediction["started_at"] is None
    assert prediction["data_removed"] is False
    assert prediction["urls"] == {
        "get": f"{emu.base_url}/v1/predictions/{prediction['id']}",
        "cancel": f"{emu.base_url}/v1/predictions/{prediction['id']}/cancel",
        "web": f"https://replicate.com/p/{prediction['id']}",
    }
    assert "deadline" not in prediction

    time.sleep(0.2)
    processing = client.get(prediction["urls"]["get"]).json()
    assert processing["status"] == "processing" and processing["started_at"].endswith("Z")
    assert processing["output"] is None

    done = poll(client, processing)
    assert done["status"] == "succeeded"
    assert done["output"] == f"{emu.base_url}/files/{done['id']}/output.jpg"
    assert done["completed_at"].endswith("Z")
    assert done["created_at"] < done["started_at"] < done["completed_at"]
    assert done["metrics"]["predict_time"] == pytest.approx(0.15, abs=0.01)
    assert done["metrics"]["total_time"] == pytest.approx(0.30, abs=0.01)
    assert emu.predictions[done["id"]] == done


def test_fresh_prediction_reads_starting_even_without_queue_delay(
    emu: ReplicateEmulator, client: httpx.Client
) -> None:
    emu.latency = 1
    prediction = create(client).json()
    assert prediction["status"] == "starting" and prediction["started_at"] is None
    time.sleep(0.01)
    assert client.get(prediction["urls"]["get"]).json()["status"] == "processing"


def test_zero_latency_create_is_already_terminal(client: httpx.Client) -> None:
    response = create(client)
    assert response.status_code == 201
    assert response.json()["status"] == "succeeded"


def test_prefer_wait_blocks_until_done(emu: ReplicateEmulator, client: httpx.Client) -> None:
    emu.latency = 0.2
    started = time.monotonic()
    response = create(client, headers={"Prefer": "wait"})
    assert 0.18 < time.monotonic() - started < 2
    assert response.status_code == 201
    assert response.json()["status"] == "succeeded"
    assert emu.counts["get"] == 0


def test_prefer_wait_times_out_with_202_and_location(
    emu: ReplicateEmulator, client: httpx.Client
) -> None:
    emu.latency = 5
    started = time.monotonic()
    response = create(client, headers={"Prefer": "wait=1"})
    assert 0.95 < time.monotonic() - started < 2.5
    assert response.status_code == 202
    prediction = response.json()
    assert prediction["status"] == "processing"
    assert response.headers["location"] == prediction["urls"]["get"]


@pytest.mark.parametrize("prefer", ["wait=0", "wait=61", "wait=soon"])
def test_invalid_prefer_wait_is_rejected(
    emu: ReplicateEmulator, client: httpx.Client, prefer: str
) -> None:
    assert_problem(create(client, headers={"Prefer": prefer}), 422, "Prefer")
    assert emu.created_count == 0


def test_output_as_list_and_png(emu: ReplicateEmulator, client: httpx.Client) -> None:
    emu.output_as_list = True
    prediction = create(client, input={"prompt": "x", "output_format": "png"}).json()
    assert prediction["output"] == [f"{emu.base_url}/files/{prediction['id']}/output.png"]


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("path", "body", "detail"),
    [
        (NB2, {"input": {}}, "- input: prompt is required"),
        (NB2, {"input": {"prompt": "  "}}, "input.prompt: String length"),
        (NB2, {"input": {"prompt": 3}}, "input.prompt: Invalid type. Expected: string"),
        (
            NB2,
            {"input": {"prompt": "x", "aspect_ratio": "7:5"}},
            'input.aspect_ratio: aspect_ratio must be one of the following: "match_input_image"',
        ),
        (NB2, {"input": {"prompt": "x", "resolution": "8K"}}, "input.resolution: resolution"),
        (PRO, {"input": {"prompt": "x", "aspect_ratio": "4:1"}}, "input.aspect_ratio"),
        (PRO, {"input": {"prompt": "x", "aspect_ratio": "1:8"}}, "input.aspect_ratio"),
        (
            PRO,
            {"input": {"prompt": "x", "safety_filter_level": "none"}},
            "input.safety_filter_level",
        ),
        (NB2, {"input": {"prompt": "x", "safety_filter_level": "block_only_high"}}, "property"),
        (NANO, {"input": {"prompt": "x", "aspect_ratio": "1:1"}}, "aspect_ratio is not allowed"),
        (NB2, {"input": {"prompt": "x", "output_format": "webp"}}, "input.output_format"),
        (NB2, {"input": {"prompt": "x", "google_search": "yes"}}, "input.google_search: Invalid"),
        (NB2, {"input": {"prompt": "x", "image_search": 1}}, "input.image_search: Invalid"),
        (
            NB2,
            {"input": {"prompt": "x", "image_input": ["https://e.com/a.png"] * 15}},
            "input.image_input: Array must have at most 14 items",
        ),
        (NB2, {"input": {"prompt": "x", "image_input": ["a.png"]}}, "input.image_input.0"),
        (NB2, {"input": {"prompt": "x", "image_input": "https://e.com/a.png"}}, "image_input"),
        (NB2, {"input": {"prompt": "x", "seed": 4}}, "Additional property seed is not allowed"),
        (NB2, {"input": {"prompt": "x"}, "version": "abc"}, "Additional property version"),
        (NB2, {"prompt": "x"}, "input is required"),
        (NB2, {"input": "x"}, "input: Invalid type. Expected: object"),
        (NB2, {"input": {"prompt": "x"}, "webhook": "ftp://x/y"}, "webhook: Does not match"),
        (
            NB2,
            {"input": {"prompt": "x"}, "webhook_events_filter": ["done"]},
            "webhook_events_filter.0",
        ),
    ],
)
def test_invalid_input_is_422_naming_the_field(
    emu: ReplicateEmulator, client: httpx.Client, path: str, body: dict[str, Any], detail: str
) -> None:
    problem = assert_problem(client.post(path, json=body), 422, detail)
    assert problem["title"] == "Input validation failed"
    assert problem["invalid_fields"]
    assert emu.created_count == 0 and emu.counts["create_rejected"] == 1


def test_valid_full_inputs_are_accepted(emu: ReplicateEmulator, client: httpx.Client) -> None:
    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, format="PNG")
    emu.remote_images["https://example.com/a.png"] = png.getvalue()
    data_uri = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    nb2 = {
        "prompt": "x",
        "image_input": ["https://example.com/a.png", data_uri] * 7,
        "aspect_ratio": "8:1",
        "resolution": "2K",
        "google_search": True,
        "image_search": False,
        "output_format": "png",
    }
    hook = {"webhook": "http://127.0.0.1:9/hook", "webhook_events_filter": ["completed"]}
    assert create(client, input=nb2, **hook).status_code == 201
    pro = {"prompt": "x", "aspect_ratio": "21:9", "safety_filter_level": "block_only_high"}
    assert create(client, PRO, input=pro).status_code == 201
    assert create(client, NANO, input={"prompt": "x", "output_format": "jpg"}).status_code == 201


@pytest.mark.parametrize("spec", REPLICATE_MODELS.values(), ids=lambda spec: spec.name)
def test_the_emulator_takes_what_the_app_sends_and_refuses_what_it_refuses(spec) -> None:
    """The emulator's schemas come from REPLICATE_MODELS: the two cannot drift apart."""

    def errors(**data: Any) -> list[dict[str, str]]:
        return validate_prediction_request(spec.name, {"input": {"prompt": "x", **data}})

    assert validate_prediction_request(spec.name, {"input": validate_input(spec.name, "x")}) == []
    for name, choices in spec.choices.items():
        assert all(errors(**{name: value}) == [] for value in choices)
        assert [e["field"] for e in errors(**{name: "nope"})] == [f"input.{name}"]
    for name in spec.booleans:
        assert errors(**{name: True}) == []
        assert [e["field"] for e in errors(**{name: "yes"})] == [f"input.{name}"]
    images = ["https://example.com/a.png"] * spec.max_image_inputs
    assert errors(image_input=images) == []
    [error] = errors(image_input=[*images, images[0]])
    assert error["type"] == "array_max_items"
    assert str(spec.max_image_inputs) in error["description"]
    assert [e["description"] for e in errors(seed=1)] == ["Additional property seed is not allowed"]


def test_non_json_and_oversized_bodies(emu: ReplicateEmulator, client: httpx.Client) -> None:
    assert_problem(client.post(NB2, content=b"{nope"), 400, "JSON")
    emu.max_request_bytes = 1000
    big = {"input": {"prompt": "x" * 2000}}
    assert_problem(client.post(NB2, json=big), 413)
    assert emu.created_count == 0 and emu.counts["create_rejected"] == 2
    # The connection stays usable after a drained 413.
    assert create(client).status_code == 201


# ----------------------------------------------------------------------------- deadlines


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("1h30m45s", 5445), ("500ms", 0.5), ("45", 45)],
)
def test_parse_duration(value: str, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "soon", "5x", "s", "1h 30m", "1.5s", "0.2"])
def test_parse_duration_rejects_garbage(value: str) -> None:
    """Whole numbers of h, m, s (and ms, for fast tests): Replicate documents no fractions."""
    with pytest.raises(ValueError):
        parse_duration(value)


def test_cancel_after_before_start_aborts(emu: ReplicateEmulator, client: httpx.Client) -> None:
    emu.queue_delay, emu.latency = 1.0, 1.0
    response = create(client, headers={"Cancel-After": "200ms", "Prefer": "wait=5"})
    prediction = response.json()
    assert response.status_code == 201
    assert prediction["status"] == "aborted"
    assert prediction["started_at"] is None and prediction["output"] is None
    assert "predict_time" not in prediction["metrics"]
    assert prediction["deadline"] == prediction["completed_at"]


def test_cancel_after_while_processing_cancels(
    emu: ReplicateEmulator, client: httpx.Client
) -> None:
    emu.latency = 2.0
    response = create(client, headers={"Cancel-After": "200ms", "Prefer": "wait=5"})
    prediction = response.json()
    assert prediction["status"] == "canceled"
    assert prediction["started_at"] is not None and prediction["output"] is None
    assert prediction["metrics"]["predict_time"] == pytest.approx(0.2, abs=0.01)


def test_cancel_after_minimum_and_syntax(emu: ReplicateEmulator, client: httpx.Client) -> None:
    emu.min_cancel_after = 5.0
    assert_problem(create(client, headers={"Cancel-After": "4s"}), 422, "minimum")
    assert_problem(create(client, headers={"Cancel-After": "soon"}), 422, "Cancel-After")
    assert_problem(create(client, headers={"Cancel-After": "5.5s"}), 422, "invalid duration")
    assert create(client, headers={"Cancel-After": "5s"}).status_code == 201
    assert emu.created_count == 1


def test_cancel_endpoint(emu: ReplicateEmulator, client: httpx.Client) -> None:
    emu.latency = 5
    running = create(client).json()
    canceled = client.post(running["urls"]["cancel"])
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    assert client.get(running["urls"]["get"]).json()["status"] == "canceled"
    assert client.post(running["urls"]["cancel"]).json()["status"] == "canceled"

    emu.latency = 0
    done = create(client).json()
    assert client.post(done["urls"]["cancel"]).json()["status"] == "succeeded"
    assert emu.counts["cancel"] == 3


def test_cancel_wakes_a_waiting_sync_create(emu: ReplicateEmulator, client: httpx.Client) -> None:
    emu.latency = 10

    def cancel_soon() -> None:
        while not emu.predictions:
            time.sleep(0.01)
        client.post(f"/v1/predictions/{next(iter(emu.predictions))}/cancel")

    canceller = threading.Thread(target=cancel_soon)
    canceller.start()
    started = time.monotonic()
    response = create(client, headers={"Prefer": "wait=30"})
    canceller.join()
    assert time.monotonic() - started < 2
    assert response.status_code == 201 and response.json()["status"] == "canceled"


# ----------------------------------------------------------------------------- files


@pytest.mark.parametrize(
    ("path", "inputs", "expected_ratio", "resolution", "fmt"),
    [
        (NB2, {"aspect_ratio": "16:9"}, "16:9", "1K", "jpg"),
        (
            NB2,
            {"aspect_ratio": "1:8", "resolution": "2K", "output_format": "png"},
            "1:8",
            "2K",
            "png",
        ),
        (NB2, {}, "16:9", "1K", "jpg"),  # match_input_image without inputs: fallback
        (PRO, {"aspect_ratio": "4:5"}, "4:5", "2K", "jpg"),  # pro defaults to 2K
        (NANO, {"output_format": "png"}, "1:1", "1K", "png"),
    ],
)
def test_download_is_a_real_image_of_the_documented_size(
    emu: ReplicateEmulator,
    client: httpx.Client,
    path: str,
    inputs: dict[str, str],
    expected_ratio: str,
    resolution: str,
    fmt: str,
) -> None:
    prediction = create(client, path, input={"prompt": "x", **inputs}).json()
    response = client.get(prediction["output"])
    assert response.status_code == 200
    assert response.headers["content-type"] == ("image/png" if fmt == "png" else "image/jpeg")
    assert int(response.headers["content-length"]) == len(response.content)
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.format == ("PNG" if fmt == "png" else "JPEG")
        assert image.size == image_size(expected_ratio, resolution)
    # Cached: the second download is the same bytes.
    assert client.get(prediction["output"]).content == response.content
    assert emu.counts["download"] == 2


def test_downloads_need_auth_and_matching_extension(
    emu: ReplicateEmulator, client: httpx.Client
) -> None:
    prediction = create(client).json()
    assert_problem(httpx.get(prediction["output"]), 401)
    assert_problem(client.get(prediction["output"].replace(".jpg", ".png")), 404)


def test_4k_png_renders_quickly() -> None:
    size = image_size("16:9", "4K")
    started = time.perf_counter()
    data = render_image("abcdefghijklmnopqrstuvwxyz", size, "png")
    elapsed = time.perf_counter() - started
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (5504, 3072)
    assert elapsed < 2.0, f"4K PNG took {elapsed:.2f} s"


def test_outputs_differ_between_predictions() -> None:
    assert render_image("a", (64, 64), "png") != render_image("b", (64, 64), "png")


def test_expire_outputs(emu: ReplicateEmulator, client: httpx.Client) -> None:
    prediction = create(client).json()
    assert client.get(prediction["output"]).status_code == 200
    emu.expire_outputs()
    after = client.get(prediction["urls"]["get"]).json()
    assert after["status"] == "succeeded"
    assert after["output"] is None and after["data_removed"] is True
    assert emu.predictions[prediction["id"]]["data_removed"] is True
    assert_problem(client.get(prediction["output"]), 404)


# ----------------------------------------------------------------------------- faults


def test_throttle_fault(emu: ReplicateEmulator, client: httpx.Client) -> None:
    emu.add_fault("throttle")
    problem = assert_problem(create(client), 429, "Request was throttled. Expected available in 1")
    assert problem["detail"] == "Request was throttled. Expected available in 1 second."
    assert emu.created_count == 0 and emu.counts["create_rejected"] == 1
    emu.add_fault("throttle", retry_after=7)
    assert create(client).headers["retry-after"] == "7"
    assert create(client).status_code == 201


def test_throttle_sets_retry_after_header(emu: ReplicateEmulator, client: httpx.Client) -> None:
    emu.add_fault("throttle")
    assert create(client).headers["retry-after"] == "1"


@pytest.mark.parametrize(
    ("kind", "status", "detail"),
    [
        ("payment_required", 402, "You have insufficient credit to run this model."),
        ("file_too_large", 413, ""),
    ],
)
def test_rejecting_create_faults(
    emu: ReplicateEmulator, client: httpx.Client, kind: str, status: int, detail: str
) -> None:
    emu.add_fault(kind)
    assert_problem(create(client), status, detail)
    assert emu.created_count == 0 and emu.counts["create_rejected"] == 1
    assert create(client).status_code == 201


def test_server_error_faults_on_each_route(emu: ReplicateEmulator, client: httpx.Client) -> None:
    emu.add_fault("server_error", status=503)
    assert_problem(create(client), 503)
    assert emu.created_count == 0

    prediction = create(client).json()
    emu.add_fault("server_error", on="get")
    assert_problem(client.get(prediction["urls"]["get"]), 500)
    assert client.get(prediction["urls"]["get"]).status_code == 200

    emu.add_fault("server_error", on="download", status=502)
    assert_problem(client.get(prediction["output"]), 502)
    assert client.get(prediction["output"]).status_code == 200

    emu.add_fault("server_error", on="cancel")
    assert_problem(client.post(prediction["urls"]["cancel"]), 500)


def test_fault_times(emu: ReplicateEmulator, client: httpx.Client) -> None:
    emu.add_fault("throttle", times=2)
    assert [create(client).status_code for _ in range(3)] == [429, 429, 201]


def test_fault_arguments_are_checked(emu: ReplicateEmulator) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        emu.add_fault("gremlins")
    with pytest.raises(TypeError, match="retry"):
        emu.add_fault("fail", retry_after=3)
    with pytest.raises(ValueError, match="'on'"):
        emu.add_fault("hang", on="webhook")


def test_fail_fault(emu: ReplicateEmulator, client: httpx.Client) -> None:
    emu.add_fault("fail")
    failed = create(client).json()
    assert failed["status"] == "failed"
    assert failed["output"] is None and "E005" in failed["error"]
    assert_problem(client.get(f"/files/{failed['id']}/output.jpg"), 404)
    emu.add_fault("fail", error="Prediction interrupted; please retry (code: PA)")
    assert create(client).json()["error"] == "Prediction interrupted; please retry (code: PA)"
    assert create(client).json()["status"] == "succeeded"
    assert emu.created_count == 3  # failed predictions exist (and are billed)


def test_data_removed_fault(emu: ReplicateEmulator, client: httpx.Client) -> None:
    emu.latency = 0.1
    emu.add_fault("data_removed")
    prediction = create(client).json()
    assert prediction["data_removed"] is False  # only once terminal
    done = poll(client, prediction)
    assert done["status"] == "succeeded"
    assert done["output"] is None and done["data_removed"] is True


def test_expired_output_fault(emu: ReplicateEmulator, client: httpx.Client) -> None:
    prediction = create(client).json()
    emu.add_fault("expired_output")
    assert_problem(client.get(prediction["output"]), 404)
    assert client.get(prediction["output"]).status_code == 200


def test_non_image_fault(emu: ReplicateEmulator, client: httpx.Client) -> None:
    prediction = create(client).json()
    emu.add_fault("non_image")
    response = client.get(prediction["output"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert b"<html>" in response.content
    with pytest.raises(OSError):
        Image.open(io.BytesIO(response.content))


@pytest.mark.parametrize("content_length", [True, False])
def test_oversized_fault(
    emu: ReplicateEmulator, client: httpx.Client, content_length: bool
) -> None:
    prediction = create(client).json()
    size = 3 * 1024 * 1024
    emu.add_fault("oversized", size=size, content_length=content_length)
    with client.stream("GET", prediction["output"]) as response:
        assert response.status_code == 200
        if content_length:
            assert response.headers["content-length"] == str(size)
        else:
            assert "content-length" not in response.headers
            assert response.headers["transfer-encoding"] == "chunked"
        received = sum(len(chunk) for chunk in response.iter_raw())
    assert received == size


def test_oversized_default_is_60_mib_and_client_may_hang_up(
    emu: ReplicateEmulator, client: httpx.Client
) -> None:
    prediction = create(client, input={"prompt": "x", "output_format": "png"}).json()
    emu.add_fault("oversized")
    with client.stream("GET", prediction["output"]) as response:
        assert response.headers["content-length"] == str(60 * 1024 * 1024)
        first = next(response.iter_raw())
        assert first.startswith(b"\x89PNG")
    # Hanging up mid-stream does not break the emulator.
    assert client.get(prediction["urls"]["get"]).status_code == 200


def test_bomb_fault(emu: ReplicateEmulator, client: httpx.Client) -> None:
    prediction = create(client).json()
    emu.add_fault("bomb")
    response = client.get(prediction["output"])
    assert response.status_code == 200 and len(response.content) < 200_000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(response.content))
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # look at the header without the guard
    try:
        with Image.open(io.BytesIO(response.content)) as image:
            assert image.size == (30_000, 30_000)
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def test_truncated_fault(emu: ReplicateEmulator, client: httpx.Client) -> None:
    prediction = create(client).json()
    whole = client.get(prediction["output"]).content
    emu.add_fault("truncated")
    half = client.get(prediction["output"]).content
    assert half == whole[: len(whole) // 2]
    with pytest.raises(OSError), Image.open(io.BytesIO(half)) as image:
        image.load()


def test_hang_on_create_creates_before_hanging(
    emu: ReplicateEmulator, client: httpx.Client
) -> None:
    emu.add_fault("hang", seconds=3)
    with pytest.raises(httpx.ReadTimeout):
        client.post(NB2, json={"input": {"prompt": "x"}}, timeout=0.3)
    assert emu.created_count == 1  # the ambiguous case: a blind retry would bill twice


@pytest.mark.parametrize("on", ["get", "download"])
def test_hang_on_reads(emu: ReplicateEmulator, client: httpx.Client, on: str) -> None:
    prediction = create(client).json()
    emu.add_fault("hang", seconds=3, on=on)
    url = prediction["urls"]["get"] if on == "get" else prediction["output"]
    with pytest.raises(httpx.ReadTimeout):
        client.get(url, timeout=0.3)
    assert client.get(url).status_code == 200


def test_drop_on_create_creates_then_closes(emu: ReplicateEmulator, client: httpx.Client) -> None:
    emu.add_fault("drop")
    with pytest.raises(httpx.RemoteProtocolError):
        create(client)
    assert emu.created_count == 1
    assert emu.counts["create_rejected"] == 0


# ----------------------------------------------------------------------------- listing


def make_predictions(client: httpx.Client, count: int) -> list[str]:
    """Create ``count`` predictions; their ids, oldest first."""
    return [create(client).json()["id"] for _ in range(count)]


def list_page(client: httpx.Client, url: str = "/v1/predictions") -> dict[str, Any]:
    response = client.get(url)
    assert response.status_code == 200, response.text
    page = response.json()
    assert set(page) == {"next", "previous", "results"}
    return page


def ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["results"]]


def cursor_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["cursor"][0]


def test_list_is_newest_first_100_a_page_with_absolute_links_both_ways(
    emu: ReplicateEmulator, client: httpx.Client
) -> None:
    created = make_predictions(client, 150)
    newest_first = created[::-1]

    first = list_page(client)
    assert ids(first) == newest_first[:100]
    assert first["previous"] is None
    assert first["next"].startswith(f"{emu.base_url}/v1/predictions?")

    second = list_page(client, first["next"])
    assert ids(second) == newest_first[100:]
    assert second["next"] is None
    assert second["previous"].startswith(f"{emu.base_url}/v1/predictions?")

    back = list_page(client, second["previous"])
    assert ids(back) == ids(first)
    assert back["previous"] is None  # nothing newer exists
    assert ids(list_page(client, back["next"])) == ids(second)


def test_a_prediction_created_between_page_reads_is_listed_once(
    emu: ReplicateEmulator, client: httpx.Client
) -> None:
    created = make_predictions(client, 150)
    first = list_page(client)
    late = create(client).json()["id"]
    second = list_page(client, first["next"])

    listed = ids(first) + ids(second)
    assert len(listed) == len(set(listed)), "a prediction was listed on both pages"
    assert sorted(listed) == sorted(created), "a prediction was skipped"

    # Walking back from page 2 finds page 1 again, and then the newcomer above it.
    back = list_page(client, second["previous"])
    assert ids(back) == ids(first)
    newer = list_page(client, back["previous"])
    assert ids(newer) == [late]
    assert newer["previous"] is None


def test_list_cursors_are_opaque_and_a_bad_one_is_a_clear_400(
    emu: ReplicateEmulator, client: httpx.Client
) -> None:
    make_predictions(client, 101)
    cursor = cursor_of(list_page(client)["next"])
    assert not cursor.isdigit()
    assert re.fullmatch(r"[A-Za-z0-9_-]+=*", cursor)
    for bad in ("100", "garbage", cursor[:-4]):
        problem = assert_problem(client.get("/v1/predictions", params={"cursor": bad}), 400)
        assert "cursor" in problem["detail"]


def test_list_filters_by_creation_time_on_every_page(
    emu: ReplicateEmulator, client: httpx.Client
) -> None:
    emu.list_page_size = 2
    created = make_predictions(client, 6)
    stamp = emu.predictions[created[2]]["created_at"]

    after = list_page(client, f"/v1/predictions?created_after={stamp}")
    assert ids(after) == [created[5], created[4]]
    assert "created_after=" in after["next"]
    assert ids(list_page(client, after["next"])) == [created[3], created[2]]  # at or after

    before = list_page(client, f"/v1/predictions?created_before={stamp}")
    assert ids(before) == [created[1], created[0]]
    assert before["next"] is None

    both = f"/v1/predictions?created_after={stamp}&created_before=2999-01-01T00:00:00Z"
    assert ids(list_page(client, both)) == [created[5], created[4]]
    problem = assert_problem(client.get("/v1/predictions?created_before=yesterday"), 400)
    assert "created_before" in problem["detail"]


def test_list_source_filter(client: httpx.Client) -> None:
    make_predictions(client, 1)
    assert list_page(client, "/v1/predictions?source=web")["results"] == []
    problem = assert_problem(client.get("/v1/predictions?source=api"), 400)
    assert "source" in problem["detail"]


# ----------------------------------------------------------------------------- rate limit


def test_create_rate_limit(emu: ReplicateEmulator, client: httpx.Client) -> None:
    emu.create_rate_limit = 3
    assert [create(client).status_code for _ in range(3)] == [201, 201, 201]
    throttled = create(client)
    assert_problem(throttled, 429, "Request was throttled")
    assert 1 <= int(throttled.headers["retry-after"]) <= 60
    assert emu.created_count == 3 and emu.counts["create_rejected"] == 1
    assert emu.max_creates_in_window() == 3


def test_rate_limit_window_slides(emu: ReplicateEmulator, client: httpx.Client) -> None:
    emu.create_rate_limit, emu.create_rate_window = 1, 0.3
    assert create(client).status_code == 201
    assert create(client).status_code == 429
    time.sleep(0.35)
    assert create(client).status_code == 201


def test_max_creates_in_window(emu: ReplicateEmulator) -> None:
    emu.create_times[:] = [0.0, 10.0, 20.0, 59.0, 61.0, 62.0, 200.0]
    assert emu.max_creates_in_window(60.0) == 5  # 10, 20, 59, 61, 62
    assert emu.max_creates_in_window(1.0) == 1
    assert emu.max_creates_in_window(2.0) == 2


# ----------------------------------------------------------------------------- bookkeeping


def test_counts_requests_and_reset(emu: ReplicateEmulator, client: httpx.Client) -> None:
    prediction = create(client, headers={"X-Trace": "t1"}).json()
    client.get(prediction["urls"]["get"])
    client.get(prediction["output"])
    client.post(prediction["urls"]["cancel"])
    assert emu.counts["create"] == 1 and emu.created_count == 1
    assert (emu.counts["get"], emu.counts["download"], emu.counts["cancel"]) == (1, 1, 1)
    assert len(emu.create_times) == 1
    first = emu.requests[0]
    assert (first.method, first.path) == ("POST", NB2)
    assert first.headers["x-trace"] == "t1" and "authorization" in first.headers
    assert json.loads(first.body)["input"]["prompt"] == "a lighthouse at dawn"
    assert [r.method for r in emu.requests] == ["POST", "GET", "GET", "POST"]

    emu.add_fault("throttle")
    emu.reset()
    assert emu.predictions == {} and not emu.counts and not emu.requests
    assert create(client).status_code == 201  # the fault went too


def test_stop_closes_everything(client: httpx.Client) -> None:
    emulator = ReplicateEmulator().start()
    with httpx.Client(headers={"Authorization": f"Bearer {emulator.token}"}) as http:
        assert http.get(f"{emulator.base_url}/v1/webhooks/default/secret").status_code == 200
        emulator.stop()
        with pytest.raises(httpx.TransportError):
            http.get(f"{emulator.base_url}/v1/webhooks/default/secret")
    emulator.stop()  # idempotent


def test_stop_wakes_a_hanging_request_without_answering_it(emu: ReplicateEmulator) -> None:
    emu.add_fault("hang", seconds=30)
    outcome: list[object] = []

    def send() -> None:
        try:
            outcome.append(
                httpx.post(
                    f"{emu.base_url}{NB2}",
                    json={"input": {"prompt": "x"}},
                    headers={"Authorization": f"Bearer {emu.token}"},
                )
            )
        except httpx.TransportError as exc:
            outcome.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    while not emu.created_count:
        time.sleep(0.01)
    started = time.monotonic()
    emu.stop()
    sender.join(timeout=5)
    assert time.monotonic() - started < 1
    assert isinstance(outcome[0], httpx.TransportError)


def test_context_manager() -> None:
    with ReplicateEmulator(token="r8_other", latency=0.5) as emulator:
        assert emulator.settings()["REPLICATE_API_TOKEN"] == "r8_other"
        assert httpx.get(f"{emulator.base_url}/v1/predictions/x").status_code == 401


# ----------------------------------------------------------------------------- webhooks


@dataclass
class Receiver:
    """A loopback HTTP server that records webhook POSTs and answers scripted statuses."""

    url: str = ""
    deliveries: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    default_status: int = 204

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.deliveries]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body))
            status = state.statuses.pop(0) if state.statuses else state.default_status
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/replicate"
    yield state
    server.shutdown()
    server.server_close()


def test_completed_webhook_is_signed_and_needs_no_polling(
    emu: ReplicateEmulator, client: httpx.Client, receiver: Receiver
) -> None:
    emu.latency = 0.2
    prediction = create(client, webhook=receiver.url).json()
    assert prediction["status"] == "starting"
    assert emu.wait_for_webhooks(timeout=5)
    assert emu.counts["get"] == 0
    assert len(receiver.deliveries) == 1
    headers, body = receiver.deliveries[0]
    verify(emu.webhook_secret, headers, body)
    assert headers["webhook-id"].startswith("msg_")
    assert headers["content-type"] == "application/json"
    payload = json.loads(body)
    assert payload["id"] == prediction["id"] and payload["status"] == "succeeded"
    assert payload["output"].endswith("/output.jpg")
    assert emu.counts["webhook_delivery"] == 1 and emu.counts["webhook_delivered"] == 1


def test_start_event_when_filtered_in(
    emu: ReplicateEmulator, client: httpx.Client, receiver: Receiver
) -> None:
    emu.latency = 0.1
    create(client, webhook=receiver.url, webhook_events_filter=["start", "completed"])
    assert emu.wait_for_webhooks()
    assert [b["status"] for b in receiver.bodies()] == ["starting", "succeeded"]
    ids = {headers["webhook-id"] for headers, _ in receiver.deliveries}
    assert len(ids) == 2


def test_no_webhook_without_completed_in_filter(
    emu: ReplicateEmulator, client: httpx.Client, receiver: Receiver
) -> None:
    create(client, webhook=receiver.url, webhook_events_filter=["logs"])
    assert emu.wait_for_webhooks()
    assert receiver.deliveries == []


def test_failed_deliveries_are_retried_with_the_same_id(
    emu: ReplicateEmulator, client: httpx.Client, receiver: Receiver
) -> None:
    emu.webhook_retry_delays = (0.05, 0.05, 0.05)
    receiver.statuses = [500, 302]  # redirects are failures too: Replicate does not follow
    create(client, webhook=receiver.url)
    assert emu.wait_for_webhooks()
    assert len(receiver.deliveries) == 3
    assert len({headers["webhook-id"] for headers, _ in receiver.deliveries}) == 1
    assert [a.status_code for a in emu.webhook_attempts] == [500, 302, 204]
    assert [a.attempt for a in emu.webhook_attempts] == [0, 1, 2]
    for headers, body in receiver.deliveries:
        verify(emu.webhook_secret, headers, body)


def test_delivery_gives_up_after_the_last_delay(
    emu: ReplicateEmulator, client: httpx.Client, receiver: Receiver
) -> None:
    emu.webhook_retry_delays = (0.02, 0.02)
    receiver.default_status = 503
    create(client, webhook=receiver.url)
    assert emu.wait_for_webhooks()
    assert len(receiver.deliveries) == 3
    assert emu.counts["webhook_gave_up"] == 1


def test_unreachable_receiver_counts_as_failure(
    emu: ReplicateEmulator, client: httpx.Client
) -> None:
    emu.webhook_retry_delays = (0.02,)
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as closed:
        port = closed.server_address[1]
    create(client, webhook=f"http://127.0.0.1:{port}/hook")
    assert emu.wait_for_webhooks()
    assert [a.status_code for a in emu.webhook_attempts] == [None, None]
    assert emu.webhook_attempts[0].error


def test_webhook_lost_and_duplicate_faults(
    emu: ReplicateEmulator, client: httpx.Client, receiver: Receiver
) -> None:
    emu.add_fault("webhook_lost")
    create(client)  # no webhook: does not consume the fault
    lost = create(client, webhook=receiver.url).json()
    assert emu.wait_for_webhooks()
    assert receiver.deliveries == [] and emu.counts["webhook_lost"] == 1
    assert emu.predictions[lost["id"]]["status"] == "succeeded"

    emu.add_fault("webhook_duplicate")
    create(client, webhook=receiver.url)
    assert emu.wait_for_webhooks()
    assert len(receiver.deliveries) == 2
    first, second = (headers for headers, _ in receiver.deliveries)
    assert first["webhook-id"] == second["webhook-id"]
    assert receiver.deliveries[0][1] == receiver.deliveries[1][1]


def test_cancel_sends_the_completed_webhook_at_once(
    emu: ReplicateEmulator, client: httpx.Client, receiver: Receiver
) -> None:
    emu.latency = 30
    prediction = create(client, webhook=receiver.url).json()
    client.post(prediction["urls"]["cancel"])
    assert emu.wait_for_webhooks(timeout=3)
    assert [b["status"] for b in receiver.bodies()] == ["canceled"]


def test_wait_for_webhooks_times_out_on_a_long_prediction(
    emu: ReplicateEmulator, client: httpx.Client, receiver: Receiver
) -> None:
    emu.latency = 30
    create(client, webhook=receiver.url)
    assert emu.wait_for_webhooks(timeout=0.1) is False


# ----------------------------------------------------------------------------- CLI


def test_command_line_serves_until_interrupted() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "nanobanana_django.testing.emulator", "--port", "0"]
        + ["--latency", "0", "--token", "r8_cli"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        base_url = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert base_url, first
        assert "REPLICATE_BASE_URL=" in process.stdout.readline()
        assert process.stdout.readline().strip() == "REPLICATE_API_TOKEN=r8_cli"
        response = httpx.post(
            f"{base_url[0]}{NB2}",
            json={"input": {"prompt": "x"}},
            headers={"Authorization": "Bearer r8_cli"},
        )
        assert response.json()["status"] == "succeeded"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
        assert process.returncode == 0
        assert "Warning" not in stderr, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
