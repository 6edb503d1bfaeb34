"""The Gemini API protocol client, sync and async, against the emulator over loopback HTTP."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from nanobanana_django.dimensions import image_size
from nanobanana_django.exceptions import (
    AuthenticationFailed,
    ImageTooLarge,
    InvalidImage,
    InvalidInput,
    ModelNotFound,
    NanoBananaError,
    PaymentRequired,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    SubmissionUncertain,
)
from nanobanana_django.providers.gemini_api import (
    AsyncGeminiClient,
    ContentBlocked,
    GeminiClient,
    GeminiResult,
    NoImageReturned,
    build_request,
    next_history,
)
from nanobanana_django.testing.emulator import render_image
from nanobanana_django.testing.gemini import GeminiEmulator

FLASH = "gemini-3.1-flash-image"
PRO = "gemini-3-pro-image-preview"
KEY_SETTING = "NANOBANANA['GEMINI_API_KEY']"
MODEL_SETTING = "NANOBANANA['GEMINI_MODEL']"


class Caller:
    """Runs ``generate`` through the sync or the async client, recording waits and hooks."""

    def __init__(self, flavour: str, emulator: GeminiEmulator) -> None:
        self.flavour = flavour
        self.emulator = emulator
        self.sleeps: list[float] = []
        self.throttles: list[float] = []
        self.sends = 0

    def options(self, overrides: dict[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {
            "api_key": self.emulator.api_key,
            "base_url": self.emulator.base_url,
            "key_setting": KEY_SETTING,
            "model_setting": MODEL_SETTING,
            "on_throttle": self.throttles.append,
            "before_send": self._sent,
        }
        options.update(overrides)
        return options

    def _sent(self) -> None:
        self.sends += 1

    def __call__(self, body: dict[str, Any], model: str = FLASH, **overrides: Any) -> GeminiResult:
        options = self.options(overrides)
        if self.flavour == "sync":
            options.setdefault("sleep", self.sleeps.append)
            with GeminiClient(**options) as client:
                return client.generate(model, body)

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        async def run() -> GeminiResult:
            options.setdefault("sleep", sleep)
            async with AsyncGeminiClient(**options) as client:
                return await client.generate(model, body)

        return asyncio.run(run())


@pytest.fixture
def emu(gemini_emulator: GeminiEmulator) -> GeminiEmulator:
    return gemini_emulator


@pytest.fixture(params=["sync", "async"])
def generate(request: pytest.FixtureRequest, emu: GeminiEmulator) -> Caller:
    return Caller(request.param, emu)


def raises(
    generate: Callable[..., Any], error: type[BaseException], *args: Any, **kwargs: Any
) -> NanoBananaError:
    with pytest.raises(error) as info:
        generate(*args, **kwargs)
    exc = info.value
    assert isinstance(exc, NanoBananaError)
    return exc


# ----------------------------------------------------------------------------- success


@pytest.mark.parametrize(
    ("ratio", "resolution"), [("16:9", "1K"), ("1:1", "2K"), ("9:16", "4K"), ("21:9", None)]
)
def test_the_image_has_the_requested_size(
    generate: Caller, ratio: str, resolution: str | None
) -> None:
    result = generate(build_request("a harbour", aspect_ratio=ratio, resolution=resolution))

    assert (result.info.width, result.info.height) == image_size(ratio, resolution or "1K")
    assert result.mime_type == "image/png" and result.image.startswith(b"\x89PNG")
    assert result.finish_reason == "STOP"


def test_thought_parts_are_skipped_and_usage_is_parsed(
    generate: Caller, emu: GeminiEmulator
) -> None:
    result = generate(build_request("a harbour", resolution="2K"))

    # The emulator sends a thought text and a 256x256 thought draft before the answer.
    assert (result.info.width, result.info.height) == (2048, 2048)
    assert result.text == "Here is your image." and "Composing" not in result.text
    image_tokens = [d for d in result.usage["candidatesTokensDetails"] if d["modality"] == "IMAGE"]
    assert image_tokens[0]["tokenCount"] == 1680
    assert result.usage["totalTokenCount"] > result.usage["candidatesTokenCount"] >= 1680
    assert result.model_version == FLASH and result.response_id
    signed = [p for p in result.model_turn["parts"] if p.get("thoughtSignature")]
    assert result.model_turn["role"] == "model" and signed
    assert "image=" not in repr(result) and "model_turn" not in repr(result)


def test_a_jpeg_answer_is_reported_as_jpeg(generate: Caller, emu: GeminiEmulator) -> None:
    emu.image_format = "jpeg"
    result = generate(build_request("a harbour"))
    assert (result.mime_type, result.info.format) == ("image/jpeg", "JPEG")


def test_grounding_flags_and_images_reach_google(generate: Caller, emu: GeminiEmulator) -> None:
    reference = render_image("ref", (300, 200), "png")
    generate(build_request("today in Oslo", google_search=True, images=[("image/png", reference)]))
    generate(build_request("the Oslo opera house", image_search=True))

    first, second = (request.body for request in emu.requests)
    assert first["tools"] == [{"googleSearch": {}}]
    inline = first["contents"][0]["parts"][1]["inlineData"]
    assert inline["mimeType"] == "image/png"
    assert emu.counts["generate"] == 2
    assert second["tools"] == [
        {"googleSearch": {"searchTypes": {"webSearch": {}, "imageSearch": {}}}}
    ]
    assert second["generationConfig"] == {"responseModalities": ["TEXT", "IMAGE"]}


def test_a_multi_turn_edit_replays_the_model_turn_with_its_signature(
    generate: Caller, emu: GeminiEmulator
) -> None:
    first_body = build_request("a red boat", aspect_ratio="3:2")
    first = generate(first_body)

    second = generate(build_request("make the boat blue", history=next_history(first_body, first)))

    contents = emu.requests[-1].body["contents"]
    assert [turn["role"] for turn in contents] == ["user", "model", "user"]
    assert any(part.get("thoughtSignature") for part in contents[1]["parts"])
    assert second.image != first.image


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("kind", "options", "error", "code", "words"),
    [
        ("safety", {}, ContentBlocked, "content_blocked", "safety filter blocked the image"),
        ("prohibited", {}, ContentBlocked, "content_blocked", "prohibited content"),
        ("recitation", {}, ContentBlocked, "content_blocked", "resembled existing material"),
        ("no_image", {}, NoImageReturned, "no_image", "without an image (NO_IMAGE)"),
        ("no_image", {"finish_reason": "STOP"}, NoImageReturned, "no_image", "text only"),
        ("other", {}, NoImageReturned, "no_image", "(IMAGE_OTHER)"),
        ("finish", {"reason": "SAFETY"}, ContentBlocked, "content_blocked", "(SAFETY)"),
        ("finish", {"reason": "MAX_TOKENS"}, NoImageReturned, "no_image", "(MAX_TOKENS)"),
        ("finish", {"reason": "LANGUAGE"}, NoImageReturned, "no_image", "(LANGUAGE)"),
        ("blocked_prompt", {}, ContentBlocked, "content_blocked", "blocked the prompt"),
    ],
)
def test_every_refusal_is_a_readable_error(
    generate: Caller,
    emu: GeminiEmulator,
    kind: str,
    options: dict,
    error: type[NanoBananaError],
    code: str,
    words: str,
) -> None:
    emu.add_fault(kind, **options)

    exc = raises(generate, error, build_request("a harbour"))

    assert exc.code == code and words in exc.message
    assert "retry" in exc.message.lower()
    assert generate.sends == 1 and generate.sleeps == []  # a refusal is not sent again


def test_the_models_own_words_are_quoted(generate: Caller, emu: GeminiEmulator) -> None:
    emu.add_fault("safety", text="I can't draw real people.")
    exc = raises(generate, ContentBlocked, build_request("a portrait"))
    assert exc.message.endswith('The model said: "I can\'t draw real people."')
    assert exc.reason == "IMAGE_SAFETY"


# ----------------------------------------------------------------------------- HTTP errors


def test_a_wrong_key_names_the_setting_and_never_shows_the_key(
    generate: Caller, emu: GeminiEmulator
) -> None:
    exc = raises(
        generate, AuthenticationFailed, build_request("a harbour"), api_key="AIza-secret-wrong"
    )

    assert "API_KEY_INVALID" in exc.message and KEY_SETTING in exc.message
    assert exc.status_code == 400
    assert "AIza-secret-wrong" not in f"{exc} {exc!r} {exc.detail} {exc.args}"
    assert emu.requests[0].headers["x-goog-api-key"] == "[redacted]"


def test_a_missing_key_fails_before_anything_is_sent(emu: GeminiEmulator) -> None:
    with pytest.raises(AuthenticationFailed, match=r"Set NANOBANANA\['GEMINI_API_KEY'\]"):
        GeminiClient("", emu.base_url, key_setting=KEY_SETTING)
    assert emu.requests == []


def test_permission_denied_and_billing(generate: Caller, emu: GeminiEmulator) -> None:
    emu.add_fault("permission_denied")
    exc = raises(generate, AuthenticationFailed, build_request("a harbour"))
    assert exc.code == "permission_denied" and "HTTP 403" in exc.message

    emu.add_fault("billing")
    exc = raises(generate, PaymentRequired, build_request("a harbour"))
    assert "FAILED_PRECONDITION" in exc.message and "enable billing" in exc.message


def test_a_retired_model_names_the_model_and_the_setting(emu: GeminiEmulator) -> None:
    emu.models = frozenset({"gemini-nano-banana-2.1"})
    generate = Caller("sync", emu)

    exc = raises(generate, ModelNotFound, build_request("a harbour"), model=FLASH)

    assert f"'{FLASH}'" in exc.message and MODEL_SETTING in exc.message
    assert "retired" in exc.message and exc.status_code == 404


def test_other_400s_quote_google_verbatim(generate: Caller) -> None:
    exc = raises(generate, InvalidInput, build_request("a harbour", aspect_ratio="1:8"), PRO)
    assert exc.message.startswith("Google rejected the request (HTTP 400 INVALID_ARGUMENT).")
    assert "'generation_config.image_config.aspect_ratio': '1:8' is not supported" in exc.message


# ----------------------------------------------------------------------------- retries


def test_retry_delay_is_honoured_through_the_throttle_hook(
    generate: Caller, emu: GeminiEmulator
) -> None:
    emu.add_fault("throttle", retry_delay="3s")

    result = generate(build_request("a harbour"))

    assert result.image
    assert generate.sleeps == [3.0] and generate.throttles == [3.0]
    assert generate.sends == 2 and emu.counts["generate"] == 1


def test_a_long_retry_delay_is_not_waited_out(generate: Caller, emu: GeminiEmulator) -> None:
    emu.add_fault("throttle", retry_delay="3600s")

    exc = raises(generate, RateLimited, build_request("a harbour"))

    assert exc.retry_after == 3600 and "Try again in 3600 s" in exc.message
    assert generate.sleeps == [] and emu.counts["generate"] == 0


def test_throttling_that_goes_on_ends_as_rate_limited(
    generate: Caller, emu: GeminiEmulator
) -> None:
    emu.add_fault("throttle", times=10, retry_delay="1.5s")

    exc = raises(generate, RateLimited, build_request("a harbour"), max_retries=3)

    assert exc.retry_after == 1.5 and generate.sleeps == [1.5] * 3
    assert emu.counts["throttle"] == 4 and emu.counts["generate"] == 0


def test_the_quota_per_minute_is_waited_out(generate: Caller, emu: GeminiEmulator) -> None:
    emu.quota_per_minute = 1
    generate(build_request("first"))

    exc = raises(generate, RateLimited, build_request("second"), max_retry_delay=10)

    assert 55 <= exc.retry_after <= 60 and generate.sleeps == []


def test_an_overloaded_model_is_retried(generate: Caller, emu: GeminiEmulator) -> None:
    emu.add_fault("server_error", times=2, status=503)

    assert generate(build_request("a harbour")).image

    assert len(generate.sleeps) == 2 and generate.throttles == []
    assert emu.counts["generate"] == 1


def test_server_errors_that_go_on_end_as_provider_unavailable(
    generate: Caller, emu: GeminiEmulator
) -> None:
    emu.add_fault("server_error", times=10, status=500)

    exc = raises(generate, ProviderUnavailable, build_request("a harbour"), max_retries=2)

    assert "HTTP 500 INTERNAL" in exc.message and "Google said: An internal error" in exc.message
    assert emu.counts["server_error"] == 3


def test_server_error_retries_can_be_turned_off(generate: Caller, emu: GeminiEmulator) -> None:
    emu.add_fault("server_error", status=503)
    raises(generate, ProviderUnavailable, build_request("a harbour"), retry_server_errors=False)
    assert generate.sends == 1


def test_a_gateway_timeout_is_not_sent_again(generate: Caller, emu: GeminiEmulator) -> None:
    emu.add_fault("server_error", status=504)

    exc = raises(generate, ProviderTimeout, build_request("a harbour"))

    assert "DEADLINE_EXCEEDED" in exc.message and "not sent again" in exc.message
    assert generate.sends == 1


def test_a_dropped_connection_after_sending_is_never_retried(
    generate: Caller, emu: GeminiEmulator
) -> None:
    emu.add_fault("drop")

    exc = raises(generate, SubmissionUncertain, build_request("a harbour"))

    assert "may have made and billed the image" in exc.message
    assert len(emu.requests) == 1 and emu.counts["generate"] == 1
    assert generate.sleeps == []


def test_a_read_timeout_is_never_retried(generate: Caller, emu: GeminiEmulator) -> None:
    emu.add_fault("hang", seconds=5)

    raises(generate, SubmissionUncertain, build_request("a harbour"), timeout=0.3)

    assert len(emu.requests) == 1


def test_a_refused_connection_is_retried_then_reported(generate: Caller) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    exc = raises(
        generate,
        ProviderUnavailable,
        build_request("a harbour"),
        base_url=f"http://127.0.0.1:{closed_port}",
        max_retries=2,
    )

    assert "Could not connect" in exc.message and len(generate.sleeps) == 2
    assert generate.sends == 3


# ----------------------------------------------------------------------------- image checks


@pytest.mark.parametrize("kind", ["non_image", "truncated"])
def test_damaged_image_data_is_invalid_image(
    generate: Caller, emu: GeminiEmulator, kind: str
) -> None:
    emu.add_fault(kind)
    exc = raises(generate, InvalidImage, build_request("a harbour"))
    assert exc.code == "invalid_image" and "not stored" in exc.message


def test_the_pixel_and_byte_caps_are_applied(generate: Caller) -> None:
    body = build_request("a harbour", resolution="2K")
    raises(generate, ImageTooLarge, body, max_pixels=1_000_000)
    raises(generate, ImageTooLarge, body, max_bytes=10_000)


# ----------------------------------------------------------------------------- secrets


def test_the_api_key_never_appears_in_errors_logs_or_repr(
    emu: GeminiEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    generate = Caller("sync", emu)
    seen: list[str] = []
    for kind, options in [
        ("throttle", {"retry_delay": "3600s"}),
        ("server_error", {"status": 504}),
        ("permission_denied", {}),
        ("billing", {}),
        ("safety", {}),
        ("drop", {}),
    ]:
        emu.add_fault(kind, **options)
        with pytest.raises(NanoBananaError) as info:
            generate(build_request("a harbour"))
        exc = info.value
        seen.append(f"{exc} {exc!r} {exc.detail} {exc.args} {exc.__cause__} {exc.__context__}")
    with GeminiClient(emu.api_key, emu.base_url) as client:
        seen.append(repr(client))

    for text in [*seen, caplog.text, repr(emu.requests)]:
        assert emu.api_key not in text


# ----------------------------------------------------------------------------- concurrency


def test_twenty_concurrent_async_calls_take_about_one_latency(emu: GeminiEmulator) -> None:
    emu.latency = 1.0

    async def run() -> list[GeminiResult]:
        async with AsyncGeminiClient(emu.api_key, emu.base_url) as client:
            return await asyncio.gather(
                *(client.generate(FLASH, build_request(f"harbour {i}")) for i in range(20))
            )

    started = time.monotonic()
    results = asyncio.run(run())
    elapsed = time.monotonic() - started

    assert len({result.image for result in results}) == 20
    assert emu.max_in_flight == 20 and emu.counts["generate"] == 20
    assert elapsed < 2.0, elapsed


# ----------------------------------------------------------------------------- build_request


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"prompt": " "}, "prompt is empty"),
        ({"aspect_ratio": "match_input_image"}, "leave aspect_ratio unset"),
        ({"aspect_ratio": "7:3"}, "aspect_ratio '7:3'"),
        ({"resolution": "1k"}, "uppercase K"),
        ({"images": [("image/gif", b"GIF89a")]}, "images[0] has type 'image/gif'"),
        ({"images": [("image/png", b"x")] * 15}, "at most 14"),
        ({"history": [{"parts": []}]}, "history[0] is not a turn"),
    ],
)
def test_bad_arguments_are_refused_before_sending(kwargs: dict, words: str) -> None:
    kwargs.setdefault("prompt", "a harbour")
    with pytest.raises(InvalidInput, match=words.replace("[", r"\[").replace("]", r"\]")):
        build_request(**kwargs)


def test_the_body_carries_only_what_is_set() -> None:
    body = build_request("a harbour", resolution="4K", images=[("image/jpeg", b"\xff\xd8")])

    assert body["generationConfig"] == {
        "responseModalities": ["TEXT", "IMAGE"],
        "imageConfig": {"imageSize": "4K"},
    }
    assert body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "a harbour"},
                {"inlineData": {"mimeType": "image/jpeg", "data": "/9g="}},
            ],
        }
    ]
    assert "tools" not in body
