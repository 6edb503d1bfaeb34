"""The Gemini API emulator, exercised over HTTP the way a client sees it (no Django involved)."""

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
from typing import Any

import httpx
import pytest
from PIL import Image

from nanobanana_django.dimensions import image_size
from nanobanana_django.testing.emulator import render_image
from nanobanana_django.testing.gemini import DEFAULT_API_KEY, GeminiEmulator

FLASH = "/v1beta/models/gemini-3.1-flash-image:generateContent"
PRO = "/v1beta/models/gemini-3-pro-image-preview:generateContent"


@pytest.fixture
def emu(gemini_emulator: GeminiEmulator) -> GeminiEmulator:
    return gemini_emulator


@pytest.fixture
def client(emu: GeminiEmulator) -> Iterator[httpx.Client]:
    headers = {"x-goog-api-key": emu.api_key}
    with httpx.Client(base_url=emu.base_url, headers=headers, timeout=10) as http:
        yield http


def body(prompt: str = "a lighthouse at dawn", *, images: Any = (), **image_config: str) -> dict:
    parts: list[dict[str, Any]] = [{"text": prompt}]
    for mime, data in images:
        parts.append({"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}})
    config: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"]}
    if image_config:
        config["imageConfig"] = image_config
    return {"contents": [{"role": "user", "parts": parts}], "generationConfig": config}


def answer_image(response: httpx.Response) -> tuple[Image.Image, str]:
    assert response.status_code == 200, response.text
    parts = response.json()["candidates"][0]["content"]["parts"]
    [inline] = [p["inlineData"] for p in parts if "inlineData" in p and not p.get("thought")]
    data = base64.b64decode(inline["data"])
    image = Image.open(io.BytesIO(data))
    image.load()
    return image, inline["mimeType"]


def assert_error(response: httpx.Response, code: int, status: str, text: str = "") -> dict:
    assert response.status_code == code, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["status"] == status
    assert text in error["message"]
    return error


# ----------------------------------------------------------------------------- keys and models


def test_a_wrong_key_is_a_400_with_api_key_invalid_like_google(
    emu: GeminiEmulator, client: httpx.Client
) -> None:
    response = client.post(FLASH, json=body(), headers={"x-goog-api-key": "AIza-wrong"})

    error = assert_error(response, 400, "INVALID_ARGUMENT", "API key not valid")
    info = error["details"][0]
    assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert info["reason"] == "API_KEY_INVALID"
    assert emu.counts["rejected"] == 1 and emu.counts["generate"] == 0


def test_a_missing_key_is_a_403_and_the_key_query_parameter_works(emu: GeminiEmulator) -> None:
    url = f"{emu.base_url}{FLASH}"
    assert_error(httpx.post(url, json=body()), 403, "PERMISSION_DENIED", "unregistered callers")

    assert httpx.post(f"{url}?key={emu.api_key}", json=body()).status_code == 200


def test_recorded_requests_never_hold_the_api_key(
    emu: GeminiEmulator, client: httpx.Client
) -> None:
    client.post(FLASH, json=body("first"))
    httpx.post(f"{emu.base_url}{FLASH}?key={emu.api_key}", json=body("second"))

    first, second = emu.requests
    assert first.headers["x-goog-api-key"] == "[redacted]"
    assert first.method == "POST" and first.path == FLASH
    assert first.body["contents"][0]["parts"][0]["text"] == "first"
    assert second.path == f"{FLASH}?key=[redacted]"
    assert emu.api_key not in repr(emu.requests)


def test_an_unknown_or_retired_model_is_a_404(client: httpx.Client) -> None:
    assert_error(
        client.post("/v1beta/models/gemini-1.0-pro-vision:generateContent", json=body()),
        404,
        "NOT_FOUND",
        "models/gemini-1.0-pro-vision is not found for API version v1beta",
    )
    assert_error(client.get(FLASH), 404, "NOT_FOUND")


def test_a_test_can_retire_a_model_id() -> None:
    with GeminiEmulator(models={"gemini-3.1-flash-image"}) as emu:
        headers = {"x-goog-api-key": DEFAULT_API_KEY}
        preview = f"{emu.base_url}/v1beta/models/gemini-3.1-flash-image-preview:generateContent"
        assert httpx.post(preview, json=body(), headers=headers).status_code == 404
        assert httpx.post(f"{emu.base_url}{FLASH}", json=body(), headers=headers).is_success


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (body(aspectRatio="7:3"), "generation_config.image_config.aspect_ratio"),
        (body(aspectRatio="match_input_image"), "generation_config.image_config.aspect_ratio"),
        (body(imageSize="1k"), "generation_config.image_config.image_size"),
        (body(imageSize="8K"), "generation_config.image_config.image_size"),
        ({"generationConfig": {}}, "contents"),
        ({"contents": []}, "contents"),
        ({"contents": [{"role": "user", "parts": []}]}, "parts"),
        (body(images=[("image/png", render_image("x", (8, 8), "png"))] * 15), "too many images"),
        (
            {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "%%%"}}]}]},
            "contents[0].parts[0].inline_data.data",
        ),
        (body(images=[("image/png", b"not an image")]), "Provided image is not valid"),
        (body(images=[("text/html", b"<p>")]), "mime_type"),
        ({**body(), "generation_config_typo": {}}, 'Unknown name "generation_config_typo"'),
    ],
)
def test_bad_bodies_are_400s_naming_the_field(
    emu: GeminiEmulator, client: httpx.Client, payload: dict, field: str
) -> None:
    response = client.post(FLASH, json=payload)

    assert_error(response, 400, "INVALID_ARGUMENT", field)
    assert emu.counts["generate"] == 0 and emu.counts["rejected"] == 1


def test_an_oversized_body_is_a_400_the_client_reads_and_the_connection_survives(
    emu: GeminiEmulator, client: httpx.Client
) -> None:
    big = body("x" * (21 * 1024 * 1024))
    for _ in range(3):
        assert_error(client.post(FLASH, json=big), 400, "INVALID_ARGUMENT", "payload size")
    assert client.post(FLASH, json=body()).status_code == 200
    assert emu.counts["rejected"] == 3 and emu.counts["generate"] == 1


def test_a_chunked_body_is_read_like_any_other(client: httpx.Client) -> None:
    chunks = iter([json.dumps(body()).encode()])
    answer_image(client.post(FLASH, content=chunks, headers={"content-type": "application/json"}))


def test_each_model_accepts_its_own_ratios_and_sizes(client: httpx.Client) -> None:
    assert client.post(FLASH, json=body(aspectRatio="8:1")).status_code == 200
    assert_error(client.post(PRO, json=body(aspectRatio="8:1")), 400, "INVALID_ARGUMENT", "8:1")
    nano = "/v1beta/models/gemini-2.5-flash-image:generateContent"
    assert_error(client.post(nano, json=body(imageSize="2K")), 400, "INVALID_ARGUMENT", "2K")


def test_snake_case_field_names_are_accepted_as_google_does(client: httpx.Client) -> None:
    payload = {
        "contents": [{"role": "user", "parts": [{"text": "a barn"}]}],
        "generation_config": {"image_config": {"aspect_ratio": "4:3"}},
    }
    image, _ = answer_image(client.post(FLASH, json=payload))
    assert image.size == image_size("4:3", "1K")


def test_a_replayed_model_turn_needs_its_thought_signature(client: httpx.Client) -> None:
    first = client.post(FLASH, json=body("a red boat"))
    model_turn = first.json()["candidates"][0]["content"]
    edit = body("make it blue")
    edit["contents"] = [body("a red boat")["contents"][0], model_turn, *edit["contents"]]
    assert client.post(FLASH, json=edit).status_code == 200

    for part in model_turn["parts"]:
        part.pop("thoughtSignature", None)
    assert_error(client.post(FLASH, json=edit), 400, "INVALID_ARGUMENT", "thought_signature")


# ----------------------------------------------------------------------------- answers


@pytest.mark.parametrize(
    ("ratio", "size", "tokens"),
    [("1:1", "1K", 1120), ("16:9", "2K", 1680), ("9:16", "1K", 1120), ("21:9", "4K", 2520)],
)
def test_the_image_has_the_size_the_model_returns(
    client: httpx.Client, ratio: str, size: str, tokens: int
) -> None:
    response = client.post(FLASH, json=body(aspectRatio=ratio, imageSize=size))

    image, mime = answer_image(response)
    assert image.size == image_size(ratio, size)
    assert (image.format, mime) == ("PNG", "image/png")
    usage = response.json()["usageMetadata"]
    image_tokens = [d for d in usage["candidatesTokensDetails"] if d["modality"] == "IMAGE"]
    assert image_tokens == [{"modality": "IMAGE", "tokenCount": tokens}]
    assert usage["candidatesTokenCount"] >= tokens
    assert usage["totalTokenCount"] >= usage["promptTokenCount"] + usage["candidatesTokenCount"]


def test_the_answer_has_the_shape_google_sends(client: httpx.Client) -> None:
    data = client.post(FLASH, json=body()).json()

    [candidate] = data["candidates"]
    assert candidate["finishReason"] == "STOP"
    assert candidate["content"]["role"] == "model"
    thought, draft, text, image = candidate["content"]["parts"]
    assert thought["thought"] is True and "text" in thought
    assert draft["thought"] is True and "inlineData" in draft
    assert text["text"] and text["thoughtSignature"]
    assert image["inlineData"]["mimeType"] == "image/png" and image["thoughtSignature"]
    assert data["modelVersion"] == "gemini-3.1-flash-image"
    assert data["responseId"]


def test_defaults_are_a_1k_square_and_jpeg_is_an_option(emu: GeminiEmulator) -> None:
    headers = {"x-goog-api-key": emu.api_key}
    url = f"{emu.base_url}{FLASH}"
    image, _ = answer_image(httpx.post(url, json=body(), headers=headers))
    assert image.size == (1024, 1024)

    emu.image_format = "jpeg"
    image, mime = answer_image(httpx.post(url, json=body(), headers=headers))
    assert (image.format, mime) == ("JPEG", "image/jpeg")


def test_without_a_ratio_the_first_input_image_sets_it(client: httpx.Client) -> None:
    wide = render_image("input", (1600, 900), "png")
    tall = render_image("input", (600, 900), "jpg")

    image, _ = answer_image(client.post(FLASH, json=body(images=[("image/png", wide)])))
    assert image.size == image_size("16:9")
    image, _ = answer_image(
        client.post(FLASH, json=body(images=[("image/jpeg", tall), ("image/png", wide)]))
    )
    assert image.size == image_size("2:3")


def test_different_prompts_and_inputs_give_different_images(client: httpx.Client) -> None:
    def pixels(payload: dict) -> bytes:
        return answer_image(client.post(FLASH, json=payload))[0].tobytes()

    reference = ("image/png", render_image("ref", (64, 64), "png"))
    other_reference = ("image/png", render_image("other", (64, 64), "png"))
    seen = {
        pixels(body("a fox")),
        pixels(body("a hen")),
        pixels(body("a fox", images=[reference])),
        pixels(body("a fox", images=[other_reference])),
    }
    assert len(seen) == 4


def test_grounding_adds_grounding_metadata(client: httpx.Client) -> None:
    payload = {**body("today's weather in Oslo"), "tools": [{"googleSearch": {}}]}
    data = client.post(FLASH, json=payload).json()
    assert data["candidates"][0]["groundingMetadata"]["webSearchQueries"]


def test_a_text_only_request_gets_no_image(emu: GeminiEmulator, client: httpx.Client) -> None:
    payload = body()
    payload["generationConfig"]["responseModalities"] = ["TEXT"]
    data = client.post(FLASH, json=payload).json()
    parts = data["candidates"][0]["content"]["parts"]
    assert all("inlineData" not in p for p in parts)
    assert emu.counts["generate"] == 0 and emu.counts["answered"] == 1


# ----------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("kind", "options", "reason"),
    [
        ("safety", {}, "IMAGE_SAFETY"),
        ("prohibited", {}, "IMAGE_PROHIBITED_CONTENT"),
        ("recitation", {}, "IMAGE_RECITATION"),
        ("no_image", {}, "NO_IMAGE"),
        ("no_image", {"finish_reason": "STOP"}, "STOP"),
        ("other", {}, "IMAGE_OTHER"),
        ("finish", {"reason": "SAFETY", "text": "No."}, "SAFETY"),
    ],
)
def test_finish_reason_faults_answer_200_without_an_image(
    emu: GeminiEmulator, client: httpx.Client, kind: str, options: dict, reason: str
) -> None:
    emu.add_fault(kind, **options)

    data = client.post(FLASH, json=body()).json()

    [candidate] = data["candidates"]
    assert candidate["finishReason"] == reason
    assert all("inlineData" not in p for p in candidate["content"]["parts"])
    assert emu.counts[kind] == 1 and emu.counts["generate"] == 0
    assert answer_image(client.post(FLASH, json=body()))  # one use only


def test_a_blocked_prompt_has_prompt_feedback_and_no_candidates(
    emu: GeminiEmulator, client: httpx.Client
) -> None:
    emu.add_fault("blocked_prompt", reason="SAFETY")
    data = client.post(FLASH, json=body()).json()
    assert data["promptFeedback"] == {"blockReason": "SAFETY"}
    assert "candidates" not in data


def test_throttle_is_a_429_with_retry_info(emu: GeminiEmulator, client: httpx.Client) -> None:
    emu.add_fault("throttle", times=2, retry_delay="13s")

    for _ in range(2):
        error = assert_error(client.post(FLASH, json=body()), 429, "RESOURCE_EXHAUSTED", "quota")
        retry = [d for d in error["details"] if d["@type"].endswith("google.rpc.RetryInfo")]
        assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "13s"}]
    assert client.post(FLASH, json=body()).status_code == 200
    assert emu.counts["throttle"] == 2 and emu.counts["rejected"] == 2


@pytest.mark.parametrize(
    ("kind", "options", "code", "status"),
    [
        ("server_error", {}, 500, "INTERNAL"),
        ("server_error", {"status": 503}, 503, "UNAVAILABLE"),
        ("server_error", {"status": 504}, 504, "DEADLINE_EXCEEDED"),
        ("permission_denied", {}, 403, "PERMISSION_DENIED"),
        ("billing", {}, 400, "FAILED_PRECONDITION"),
    ],
)
def test_error_faults_answer_googles_error_bodies(
    emu: GeminiEmulator, client: httpx.Client, kind: str, options: dict, code: int, status: str
) -> None:
    emu.add_fault(kind, **options)
    assert_error(client.post(FLASH, json=body()), code, status)
    assert emu.counts["generate"] == 0 and emu.counts["rejected"] == 1


def test_quota_per_minute_answers_429_beyond_it(client: httpx.Client, emu: GeminiEmulator) -> None:
    emu.quota_per_minute = 2
    assert client.post(FLASH, json=body()).status_code == 200
    assert client.post(FLASH, json=body()).status_code == 200

    error = assert_error(client.post(FLASH, json=body()), 429, "RESOURCE_EXHAUSTED")
    [retry] = [d for d in error["details"] if d["@type"].endswith("RetryInfo")]
    assert re.fullmatch(r"(59|60)s", retry["retryDelay"])
    assert emu.counts["generate"] == 2


def test_a_dropped_call_is_counted_as_billed(emu: GeminiEmulator, client: httpx.Client) -> None:
    emu.add_fault("drop")
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(FLASH, json=body())
    assert emu.counts["generate"] == 1 and len(emu.requests) == 1


def test_a_hang_delays_the_answer(emu: GeminiEmulator, client: httpx.Client) -> None:
    emu.add_fault("hang", seconds=0.5)
    started = time.monotonic()
    assert client.post(FLASH, json=body()).status_code == 200
    assert time.monotonic() - started >= 0.5


def test_bad_image_faults_send_damaged_inline_data(
    emu: GeminiEmulator, client: httpx.Client
) -> None:
    emu.add_fault("non_image")
    emu.add_fault("truncated")
    for _ in range(2):
        with pytest.raises(OSError):
            answer_image(client.post(FLASH, json=body()))


def test_unknown_faults_and_options_are_refused(emu: GeminiEmulator) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        emu.add_fault("explode")
    with pytest.raises(TypeError, match="seconds"):
        emu.add_fault("drop", seconds=1)
    with pytest.raises(ValueError, match="500, 503 or 504"):
        emu.add_fault("server_error", status=502)


def test_reset_forgets_counts_requests_and_faults(
    emu: GeminiEmulator, client: httpx.Client
) -> None:
    emu.add_fault("safety", times=5)
    client.post(FLASH, json=body())

    emu.reset()

    assert (emu.counts, emu.requests, emu.max_in_flight) == ({}, [], 0)
    assert answer_image(client.post(FLASH, json=body()))


def test_stop_wakes_slow_calls(emu: GeminiEmulator, client: httpx.Client) -> None:
    emu.latency = 30
    errors: list[BaseException] = []

    def call() -> None:
        try:
            client.post(FLASH, json=body())
        except httpx.HTTPError as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    while emu.calls_in_flight == 0:
        time.sleep(0.01)
    started = time.monotonic()
    emu.stop()
    thread.join(timeout=5)
    assert time.monotonic() - started < 2 and len(errors) == 1


# ----------------------------------------------------------------------------- concurrency


def test_many_slow_calls_are_answered_at_once_and_measured(emu: GeminiEmulator) -> None:
    emu.latency = 2.0
    statuses: list[int] = []
    limits = httpx.Limits(max_connections=30)
    headers = {"x-goog-api-key": emu.api_key}
    with httpx.Client(base_url=emu.base_url, headers=headers, limits=limits, timeout=10) as http:

        def call() -> None:
            statuses.append(http.post(FLASH, json=body()).status_code)

        threads = [threading.Thread(target=call) for _ in range(30)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started

    assert statuses == [200] * 30
    assert elapsed < 3.5, elapsed  # one latency and some, not fifteen
    assert (emu.max_in_flight, emu.calls_in_flight) == (30, 0)
    assert emu.counts["generate"] == 30


# ----------------------------------------------------------------------------- CLI


def test_command_line_serves_until_interrupted() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "nanobanana_django.testing.gemini", "--port", "0"]
        + ["--latency", "0", "--api-key", "AIza-cli"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = re.search(r"http://127\.0\.0\.1:\d+", process.stdout.readline())
        assert base_url
        assert "GEMINI_BASE_URL=" in process.stdout.readline()
        assert process.stdout.readline().strip() == "GEMINI_API_KEY=AIza-cli"
        response = httpx.post(
            f"{base_url[0]}{FLASH}", json=body(), headers={"x-goog-api-key": "AIza-cli"}
        )
        assert answer_image(response)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
        assert process.returncode == 0
        assert "Warning" not in stderr, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
