"""Google's Gemini API (``models/{model}:generateContent``) for the image models, over httpx.

A protocol client only: it builds the request body, sends it, and turns the answer into a
:class:`GeminiResult` or one of our errors with a message an editor can act on. It reads no
Django settings; whatever it needs (the key, limits, the names of the settings to mention
in messages) is passed in.

Billing rule: a ``generateContent`` call that Google may have processed is never sent
again. It is repeated only when Google cannot have made an image:

* the connection never opened (refused, connect timeout, no free connection in the pool);
* a 429 ``RESOURCE_EXHAUSTED`` (after the ``retryDelay`` Google names, capped);
* a 500 ``INTERNAL`` or 503 ``UNAVAILABLE``: Google documents both as failures on its side
  with "retry" as the fix, and it bills only the tokens of a response it returns
  (``usageMetadata``), so an error answer cannot have billed an image.

A 504 ``DEADLINE_EXCEEDED`` is not repeated (the call ran out of time inside Google and
would most likely do so again, doubling the wait), and neither is anything that fails
after the request was sent (a read timeout, a dropped connection): that raises
:class:`SubmissionUncertain`, since Google may have made and billed the image.

The API key travels only in the ``x-goog-api-key`` header; it is never part of a URL,
an exception, a log line or a ``repr``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import inspect as pyinspect
import json
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from .. import __version__
from ..dimensions import ASPECT_RATIOS
from ..exceptions import (
    AuthenticationFailed,
    ImageTooLarge,
    InvalidImage,
    InvalidInput,
    ModelNotFound,
    NanoBananaError,
    PaymentRequired,
    PredictionFailed,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    RequestTooLarge,
    SubmissionUncertain,
)
from ..images import ImageInfo, inspect, spool
from .http import tls_context

__all__ = [
    "AsyncGeminiClient",
    "ContentBlocked",
    "GeminiClient",
    "GeminiResult",
    "NoImageReturned",
    "build_request",
    "next_history",
    "parse_response",
    "replay_history",
    "turn_state",
]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
API_VERSION = "v1beta"
IMAGE_SIZES = ("512", "1K", "2K", "4K")
"""``imageConfig.imageSize`` values Google documents (``512``: 3.1 Flash only, reported)."""
INPUT_MIME_TYPES = ("image/png", "image/jpeg", "image/webp", "image/heic", "image/heif")
MAX_INPUT_IMAGES = 14
MAX_REQUEST_BYTES = 20 * 1024 * 1024
"""Google's limit for an inline request ("keep it under about 20 MB")."""

KEY_SETTING = "NANOBANANA['GEMINI_API_KEY'] or the GEMINI_API_KEY environment variable"
MODEL_SETTING = "NANOBANANA['GEMINI_MODEL']"
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_BYTES = 50 * 1024 * 1024

MAX_RETRY_DELAY = 60.0
"""The longest a single ``retryDelay`` is waited out; a longer one ends the call."""
MAX_BACKOFF = 30.0
MAX_MESSAGE_LENGTH = 500
MAX_MODEL_TEXT = 300


# --------------------------------------------------------------------------- errors


class ContentBlocked(PredictionFailed):
    """Google refused the prompt or withheld the image (safety, prohibited content,
    recitation). Sending the same request again gives the same answer."""

    code = "content_blocked"

    def __init__(self, message: str, *, reason: str, **kwargs: Any) -> None:
        super().__init__(message, detail=reason, **kwargs)
        self.reason = reason


class NoImageReturned(PredictionFailed):
    """Google answered, but without an image (``NO_IMAGE``, ``IMAGE_OTHER``, text only)."""

    code = "no_image"

    def __init__(self, message: str, *, reason: str, **kwargs: Any) -> None:
        super().__init__(message, detail=reason, **kwargs)
        self.reason = reason


_FINISH_MESSAGES: dict[str, tuple[type[PredictionFailed], str]] = {
    "IMAGE_SAFETY": (
        ContentBlocked,
        "Google's safety filter blocked the image (IMAGE_SAFETY). Change the prompt and retry.",
    ),
    "IMAGE_PROHIBITED_CONTENT": (
        ContentBlocked,
        "Google refused to make the image because it would show prohibited content "
        "(IMAGE_PROHIBITED_CONTENT). Change the prompt or the reference images and retry.",
    ),
    "IMAGE_RECITATION": (
        ContentBlocked,
        "Google withheld the image because it resembled existing material too closely "
        "(IMAGE_RECITATION). Make the prompt more original (no named artworks, logos or "
        "characters) and retry.",
    ),
    "SAFETY": (
        ContentBlocked,
        "Google's safety filter blocked the answer (SAFETY). Change the prompt and retry.",
    ),
    "PROHIBITED_CONTENT": (
        ContentBlocked,
        "Google refused the answer as prohibited content (PROHIBITED_CONTENT). Change the "
        "prompt or the reference images and retry.",
    ),
    "BLOCKLIST": (
        ContentBlocked,
        "The prompt contains a term Google does not allow (BLOCKLIST). Change the prompt "
        "and retry.",
    ),
    "SPII": (
        ContentBlocked,
        "Google blocked the answer because it could reveal personal information (SPII). "
        "Remove personal details from the prompt and retry.",
    ),
    "RECITATION": (
        ContentBlocked,
        "Google withheld the answer because it resembled existing material too closely "
        "(RECITATION). Make the prompt more original and retry.",
    ),
    "NO_IMAGE": (
        NoImageReturned,
        "The model answered without an image (NO_IMAGE). Ask for a picture plainly in the "
        'prompt ("an illustration of ...") and retry.',
    ),
    "IMAGE_OTHER": (
        NoImageReturned,
        "Google could not make the image and gave no reason (IMAGE_OTHER). Retry; if it "
        "happens again, rephrase the prompt.",
    ),
    "MAX_TOKENS": (
        NoImageReturned,
        "The model ran out of output before it made the image (MAX_TOKENS). Shorten the "
        "prompt and retry.",
    ),
    "STOP": (
        NoImageReturned,
        "The model answered with text only and no image. Ask for a picture plainly in the "
        'prompt ("an illustration of ...") and retry.',
    ),
}

_BLOCK_MESSAGES = {
    "SAFETY": "Google's safety filter blocked the prompt (SAFETY).",
    "PROHIBITED_CONTENT": "Google blocked the prompt as prohibited content (PROHIBITED_CONTENT).",
    "BLOCKLIST": "The prompt contains a term Google does not allow (BLOCKLIST).",
    "IMAGE_SAFETY": "Google's safety filter blocked a reference image (IMAGE_SAFETY).",
}


# --------------------------------------------------------------------------- requests


def build_request(
    prompt: str,
    *,
    aspect_ratio: str | None = None,
    resolution: str | None = None,
    google_search: bool = False,
    image_search: bool = False,
    images: Iterable[tuple[str, bytes]] = (),
    history: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The JSON body of a ``generateContent`` call that asks for one image.

    ``images`` are ``(mime_type, bytes)`` reference images, sent inline after the prompt.
    ``history`` replays earlier turns before this one, for multi-turn edits: pass
    :func:`next_history` of the previous body and result (the model's turn keeps its
    ``thoughtSignature``, which Google requires). Raises :class:`InvalidInput` naming the
    argument for a value Google is known to refuse.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidInput("prompt is empty: describe the image to make.")
    if aspect_ratio == "match_input_image":
        raise InvalidInput(
            "aspect_ratio 'match_input_image' is a Replicate value; for the Gemini API leave "
            "aspect_ratio unset to follow the first reference image."
        )
    if aspect_ratio is not None and aspect_ratio not in ASPECT_RATIOS:
        raise InvalidInput(
            f"aspect_ratio {aspect_ratio!r} is not one Google offers; use one of "
            f"{', '.join(ASPECT_RATIOS)}."
        )
    if resolution is not None and resolution not in IMAGE_SIZES:
        raise InvalidInput(
            f"resolution {resolution!r} is not one Google offers; use one of "
            f"{', '.join(IMAGE_SIZES)} (with an uppercase K)."
        )

    parts: list[dict[str, Any]] = [{"text": prompt}]
    size = len(prompt)
    for index, (mime_type, data) in enumerate(images):
        if mime_type not in INPUT_MIME_TYPES:
            raise InvalidInput(
                f"images[{index}] has type {mime_type!r}; Google accepts "
                f"{', '.join(INPUT_MIME_TYPES)}."
            )
        if not data:
            raise InvalidInput(f"images[{index}] is empty.")
        encoded = base64.b64encode(data).decode("ascii")
        size += len(encoded)
        parts.append({"inlineData": {"mimeType": mime_type, "data": encoded}})
    count = len(parts) - 1
    if count > MAX_INPUT_IMAGES:
        raise InvalidInput(
            f"images: {count} reference images, but Google accepts at most {MAX_INPUT_IMAGES}."
        )

    contents = [_checked_turn(turn, index) for index, turn in enumerate(history or ())]
    contents.append({"role": "user", "parts": parts})
    body: dict[str, Any] = {
        "contents": contents,
        "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]},
    }
    image_config: dict[str, str] = {}
    if aspect_ratio:
        image_config["aspectRatio"] = aspect_ratio
    if resolution:
        image_config["imageSize"] = resolution
    if image_config:
        body["generationConfig"]["imageConfig"] = image_config
    if image_search:
        body["tools"] = [{"googleSearch": {"searchTypes": {"webSearch": {}, "imageSearch": {}}}}]
    elif google_search:
        body["tools"] = [{"googleSearch": {}}]
    if size + len(json.dumps(contents[:-1])) > MAX_REQUEST_BYTES:
        raise RequestTooLarge(
            "The prompt and reference images add up to more than the 20 MB Google accepts "
            "inline. Send fewer or smaller reference images."
        )
    return body


def _checked_turn(turn: Mapping[str, Any], index: int) -> dict[str, Any]:
    if (
        not isinstance(turn, Mapping)
        or turn.get("role") not in ("user", "model")
        or not isinstance(turn.get("parts"), list)
    ):
        raise InvalidInput(
            f"history[{index}] is not a turn: expected {{'role': 'user' or 'model', "
            "'parts': [...]}, as next_history() returns."
        )
    return copy.deepcopy(dict(turn))


def next_history(body: Mapping[str, Any], result: GeminiResult) -> list[dict[str, Any]]:
    """The ``history`` for the next turn of an edit: this call's turns plus the model's."""
    return [copy.deepcopy(turn) for turn in body["contents"]] + [copy.deepcopy(result.model_turn)]


STORED_IMAGE = "nanobanana:stored-image"
"""Stands in a kept model turn for the image's bytes, which are in storage."""


def turn_state(body: Mapping[str, Any], result: GeminiResult) -> dict[str, Any]:
    """What to keep of this call to continue from its image in a later edit, without bytes:
    the user turn's text and the model's answer with its ``thoughtSignature`` s, the image
    part's data replaced by :data:`STORED_IMAGE` and thought drafts left out."""
    user = body["contents"][-1]
    texts = [p for p in user.get("parts", []) if isinstance(p, dict) and "text" in p]
    model_parts = []
    for part in result.model_turn.get("parts", []):
        if not isinstance(part, dict) or part.get("thought") is True:
            continue
        part = copy.deepcopy(part)
        inline = part.get("inlineData")
        if isinstance(inline, dict):
            part["inlineData"] = {"mimeType": inline.get("mimeType", ""), "data": STORED_IMAGE}
        model_parts.append(part)
    return {
        "gemini": {
            "user": {"role": "user", "parts": copy.deepcopy(texts)},
            "model": {"role": "model", "parts": model_parts},
        }
    }


def replay_history(
    state: Mapping[str, Any] | None, mime_type: str, image: bytes
) -> list[dict[str, Any]] | None:
    """The ``history`` that continues from a kept :func:`turn_state`, its image put back
    from ``image`` (the stored copy); ``None`` when the state cannot be replayed (none
    kept, another provider's, no signed image part), so the image is sent inline instead."""
    kept = state.get("gemini") if isinstance(state, Mapping) else None
    if not isinstance(kept, Mapping):
        return None
    user, model = kept.get("user"), kept.get("model")
    if not (isinstance(user, Mapping) and isinstance(model, Mapping)):
        return None
    parts = []
    restored = False
    for part in model.get("parts") or []:
        part = copy.deepcopy(part)
        inline = part.get("inlineData") if isinstance(part, dict) else None
        if isinstance(inline, dict) and inline.get("data") == STORED_IMAGE:
            if not part.get("thoughtSignature"):
                return None
            encoded = base64.b64encode(image).decode("ascii")
            part["inlineData"] = {"mimeType": mime_type, "data": encoded}
            restored = True
        parts.append(part)
    if not restored or not user.get("parts"):
        return None
    return [
        _checked_turn(copy.deepcopy(dict(user)), 0),
        _checked_turn({"role": "model", "parts": parts}, 1),
    ]


# --------------------------------------------------------------------------- responses


@dataclass(frozen=True)
class GeminiResult:
    """A generated image and what came with it."""

    image: bytes = field(repr=False)
    mime_type: str
    """The checked format of ``image`` (``image/png`` or ``image/jpeg``), not the declared one."""
    info: ImageInfo
    text: str
    """The model's words outside its thoughts (often a caption or a remark)."""
    usage: dict[str, Any]
    """``usageMetadata`` as Google sent it: the tokens actually billed."""
    model_version: str | None
    finish_reason: str | None
    model_turn: dict[str, Any] = field(repr=False)
    """The model's content with its thought signatures, to replay in a later turn."""
    response_id: str | None = None


def parse_response(
    status_code: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    model: str = "",
    key_setting: str = KEY_SETTING,
    model_setting: str = MODEL_SETTING,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> GeminiResult:
    """Turn one HTTP answer into a :class:`GeminiResult`, or raise the matching error.

    ``key_setting`` and ``model_setting`` name where the site configures the key and the
    model id, for the messages about a bad key or a retired model. The image is checked
    with :func:`nanobanana_django.images.inspect` against ``max_pixels`` and ``max_bytes``.
    """
    if status_code != 200:
        raise _http_error(status_code, headers, body, model, key_setting, model_setting)
    data = _json_object(body)
    if data is None:
        raise ProviderError(f"Google answered HTTP {status_code} with a body that is not JSON.")

    candidates = [c for c in data.get("candidates") or [] if isinstance(c, dict)]
    feedback = data.get("promptFeedback") or {}
    block = feedback.get("blockReason") if isinstance(feedback, dict) else None
    if block and not candidates:
        lead = _BLOCK_MESSAGES.get(
            str(block), f"Google blocked the prompt ({block}) before making an image."
        )
        raise ContentBlocked(
            f"{lead} Change the prompt or the reference images and retry.", reason=str(block)
        )
    if not candidates:
        raise NoImageReturned(
            "Google answered without any result and gave no reason. Retry.", reason="EMPTY"
        )

    chosen = candidates[0]
    for candidate in candidates:
        if _image_part(candidate) is not None:
            chosen = candidate
            break
    content = chosen.get("content") if isinstance(chosen.get("content"), dict) else {}
    finish = chosen.get("finishReason")
    text = _visible_text(chosen)
    part = _image_part(chosen)
    if part is None:
        raise _no_image(str(finish) if finish else None, text)
    image, mime_type, info = _checked_image(part, max_pixels, max_bytes)
    usage = data.get("usageMetadata")
    return GeminiResult(
        image=image,
        mime_type=mime_type,
        info=info,
        text=text,
        usage=usage if isinstance(usage, dict) else {},
        model_version=data.get("modelVersion"),
        finish_reason=str(finish) if finish else None,
        model_turn={"role": "model", **content, "parts": list(content.get("parts") or [])},
        response_id=data.get("responseId"),
    )


def _answer_parts(candidate: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The candidate's parts that are its answer: thought parts (drafts) are skipped."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts or [] if isinstance(p, dict) and p.get("thought") is not True]


def _image_part(candidate: Mapping[str, Any]) -> dict[str, Any] | None:
    for part in _answer_parts(candidate):
        inline = part.get("inlineData")
        if isinstance(inline, dict) and str(inline.get("mimeType", "")).startswith("image/"):
            return inline
    return None


def _visible_text(candidate: Mapping[str, Any]) -> str:
    texts = [p["text"] for p in _answer_parts(candidate) if isinstance(p.get("text"), str)]
    return "\n".join(t.strip() for t in texts if t.strip())


def _no_image(finish: str | None, text: str) -> NanoBananaError:
    error_class, message = _FINISH_MESSAGES.get(
        finish or "",
        (
            NoImageReturned,
            f"The model stopped without an image ({finish or 'no reason given'}). Retry, or "
            "change the prompt.",
        ),
    )
    if text:
        said = " ".join(text.split())
        if len(said) > MAX_MODEL_TEXT:
            said = said[: MAX_MODEL_TEXT - 1] + "…"
        message += f' The model said: "{said}"'
    return error_class(message, reason=finish or "NONE")


def _checked_image(
    inline: Mapping[str, Any], max_pixels: int, max_bytes: int
) -> tuple[bytes, str, ImageInfo]:
    encoded = inline.get("data")
    if not isinstance(encoded, str) or not encoded:
        raise InvalidImage("Google's answer has an image part without data; nothing was stored.")
    if len(encoded) // 4 * 3 > max_bytes + 2:
        raise ImageTooLarge(
            f"Google's image is about {len(encoded) // 4 * 3:,} bytes, more than the "
            f"{max_bytes:,} allowed; it was not stored."
        )
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage(
            "Google's answer has image data that is not valid base64; nothing was stored."
        ) from None
    with spool([data], max_bytes) as file:
        info = inspect(file, max_pixels=max_pixels)
    return data, info.content_type, info


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _http_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    model: str,
    key_setting: str,
    model_setting: str,
) -> NanoBananaError:
    data = _json_object(body) or {}
    error = data.get("error") if isinstance(data.get("error"), dict) else {}
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    state = str(error.get("status") or "")
    message = " ".join(str(error.get("message") or "").split())
    if not message and not data:
        text = body.decode("utf-8", "replace") if "text/" in headers.get("content-type", "") else ""
        message = " ".join(text.split())
    if len(message) > MAX_MESSAGE_LENGTH:
        message = message[: MAX_MESSAGE_LENGTH - 1] + "…"
    said = f" Google said: {message}" if message else ""
    label = f"HTTP {status} {state}".rstrip()
    reasons = {str(d.get("reason")) for d in details if d.get("reason")}
    common = {"status_code": status, "detail": message or None}

    if "API_KEY_INVALID" in reasons:
        return AuthenticationFailed(
            f"Google rejected the API key ({label}, API_KEY_INVALID). Check {key_setting}.",
            **common,
        )
    if status in (401, 403):
        return AuthenticationFailed(
            f"Google refused access ({label}).{said} Check that the key in {key_setting} "
            "belongs to a project with the Gemini API enabled.",
            code="permission_denied" if status == 403 else None,
            **common,
        )
    if status == 400 and state == "FAILED_PRECONDITION":
        return PaymentRequired(
            f"Google refused to generate ({label}).{said} Image generation needs a Google "
            f"project with billing enabled: enable billing for the project of the key in "
            f"{key_setting}, then retry.",
            **common,
        )
    if status == 404:
        which = f"the model {model!r}" if model else "the model"
        return ModelNotFound(
            f"Google does not serve {which} for generateContent ({label}); model ids are "
            f"retired as new ones ship. Set {model_setting} to a current image model id.{said}",
            **common,
        )
    if status == 413:
        return RequestTooLarge(
            f"Google refused the request as too large ({label}).{said} Send fewer or smaller "
            "reference images.",
            **common,
        )
    if status == 400:
        return InvalidInput(f"Google rejected the request ({label}).{said}", **common)
    if status == 429:
        delay = _retry_delay(details)
        when = f" Try again in {delay:g} s." if delay is not None else " Try again shortly."
        return RateLimited(
            f"Google is throttling requests or the quota is used up ({label}).{said}{when}",
            retry_after=delay,
            **common,
        )
    if status == 504:
        return ProviderTimeout(
            f"Google ran out of time making the image ({label}).{said} It was not sent again; "
            "retry later, or ask for a smaller resolution.",
            **common,
        )
    if status >= 500:
        return ProviderUnavailable(f"Google had a server error ({label}).{said}", **common)
    return ProviderError(f"Google answered {label}.{said}", **common)


_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)s\s*")


def _retry_delay(details: Iterable[Mapping[str, Any]]) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail (a Duration such as ``"13s"``)."""
    for detail in details:
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, dict):  # the proto form, {"seconds": 13, "nanos": 0}
                try:
                    return float(delay.get("seconds", 0)) + float(delay.get("nanos", 0)) / 1e9
                except (TypeError, ValueError):
                    return None
            match = _DURATION.fullmatch(str(delay or ""))
            if match:
                return float(match.group(1))
    return None


# --------------------------------------------------------------------------- the call


@dataclass
class _Retry:
    seconds: float
    throttled: bool


class _Attempts:
    """The retry policy of one call, shared by the sync and the async client."""

    def __init__(self, client: _BaseClient, model: str) -> None:
        self.client = client
        self.model = model
        self.connect_failures = 0
        self.throttles = 0
        self.server_errors = 0

    def failed(self, exc: httpx.HTTPError) -> _Retry:
        client = self.client
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
            # Nothing was sent: safe to repeat.
            if self.connect_failures >= client.max_retries:
                raise ProviderUnavailable(
                    f"Could not connect to Google's Gemini API at {client.base_url} "
                    f"({type(exc).__name__})."
                ) from None
            self.connect_failures += 1
            return _Retry(_backoff(self.connect_failures - 1), throttled=False)
        if isinstance(exc, _ResponseTooLarge):
            raise ImageTooLarge(
                f"Google's answer is larger than the {client.max_bytes:,} bytes allowed for an "
                "image; it was not stored."
            ) from None
        raise SubmissionUncertain(
            f"The call to Google failed after it was sent ({type(exc).__name__}). Google may "
            "have made and billed the image, so it was not sent again; check the usage in "
            "Google AI Studio before retrying."
        ) from None

    def answered(
        self, status: int, headers: Mapping[str, str], body: bytes
    ) -> GeminiResult | _Retry:
        client = self.client
        try:
            return parse_response(
                status,
                headers,
                body,
                model=self.model,
                key_setting=client.key_setting,
                model_setting=client.model_setting,
                max_pixels=client.max_pixels,
                max_bytes=client.max_bytes,
            )
        except NanoBananaError as exc:
            client._redact(exc)
            retry = self._retry(exc)
            if retry is None:
                raise
            return retry

    def _retry(self, exc: NanoBananaError) -> _Retry | None:
        client = self.client
        if isinstance(exc, RateLimited):
            delay = exc.retry_after
            if delay is None:
                delay = _backoff(self.throttles)
            if self.throttles >= client.max_retries or delay > client.max_retry_delay:
                return None
            self.throttles += 1
            return _Retry(delay, throttled=True)
        if (
            isinstance(exc, ProviderUnavailable)
            and client.retry_server_errors
            and exc.status_code in (500, 503)
            and self.server_errors < client.max_retries
        ):
            self.server_errors += 1
            return _Retry(_backoff(self.server_errors - 1), throttled=False)
        return None


class _ResponseTooLarge(httpx.HTTPError):
    def __init__(self) -> None:
        super().__init__("response too large")


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter: about 0.5, 1, 2, 4 s ..., at most 30 s."""
    return min(MAX_BACKOFF, 0.5 * 2**attempt) * random.uniform(0.8, 1.2)


Hook = Callable[..., Any]
"""A plain function or a coroutine function (the async client awaits what it returns)."""


class _BaseClient:
    def __init__(
        self,
        api_key: str,
        *,
        base_url: str,
        timeout: float,
        connect_timeout: float,
        max_retries: int,
        max_retry_delay: float,
        retry_server_errors: bool,
        max_pixels: int,
        max_bytes: int,
        key_setting: str,
        model_setting: str,
    ) -> None:
        if not api_key:
            raise AuthenticationFailed(f"No Gemini API key is configured. Set {key_setting}.")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_delay = max_retry_delay
        self.retry_server_errors = retry_server_errors
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes
        self.key_setting = key_setting
        self.model_setting = model_setting
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._headers = {"x-goog-api-key": api_key, "Content-Type": "application/json"}
        # Base64 inflates by 4/3, and Gemini 3 may send up to two full-size thought drafts
        # beside the image: room for four images, then the answer is cut off.
        self._max_response_bytes = 4 * (max_bytes * 4 // 3) + 1024 * 1024

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.base_url}>"

    def _redact(self, exc: NanoBananaError) -> None:
        """Google's messages are quoted in ours; make sure none of them echoes the key."""
        key = self._headers["x-goog-api-key"]
        for name in ("message", "detail"):
            value = getattr(exc, name)
            if isinstance(value, str) and key in value:
                setattr(exc, name, value.replace(key, "[redacted]"))
        exc.args = (exc.message,)

    def _url(self, model: str) -> str:
        if not model or "/" in model or ":" in model:
            raise InvalidInput(
                f"model {model!r} is not a Gemini model id such as 'gemini-3.1-flash-image'; "
                f"check {self.model_setting}."
            )
        return f"{self.base_url}/{API_VERSION}/models/{model}:generateContent"

    @staticmethod
    def _encode(body: Mapping[str, Any]) -> bytes:
        return json.dumps(body, separators=(",", ":")).encode()

    def _user_agent(self) -> dict[str, str]:
        return {"User-Agent": f"nanobanana-django/{__version__}"}


class GeminiClient(_BaseClient):
    """``generateContent`` over a blocking httpx client. Use as a context manager or
    call :meth:`close`.

    ``sleep`` is how waits happen (inject one in tests); ``on_throttle(seconds)`` is called
    before waiting out a 429, so that a shared limiter can pause every process;
    ``before_send()`` is called before each attempt (a shared limiter's acquire).
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
        *,
        connect_timeout: float = 10.0,
        max_retries: int = 3,
        max_retry_delay: float = MAX_RETRY_DELAY,
        retry_server_errors: bool = True,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        key_setting: str = KEY_SETTING,
        model_setting: str = MODEL_SETTING,
        sleep: Callable[[float], None] = time.sleep,
        on_throttle: Callable[[float], None] | None = None,
        before_send: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(
            api_key,
            base_url=base_url,
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_retries=max_retries,
            max_retry_delay=max_retry_delay,
            retry_server_errors=retry_server_errors,
            max_pixels=max_pixels,
            max_bytes=max_bytes,
            key_setting=key_setting,
            model_setting=model_setting,
        )
        self._sleep = sleep
        self._on_throttle = on_throttle
        self._before_send = before_send
        self._http = httpx.Client(
            timeout=self._timeout,
            headers=self._user_agent(),
            transport=transport,
            follow_redirects=False,
            verify=tls_context(),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GeminiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def generate(self, model: str, body: Mapping[str, Any]) -> GeminiResult:
        """Send one ``generateContent`` call (repeated only as the module docstring says)."""
        url, content = self._url(model), self._encode(body)
        attempts = _Attempts(self, model)
        while True:
            if self._before_send is not None:
                self._before_send()
            try:
                status, headers, answer = self._post(url, content)
            except httpx.HTTPError as exc:
                step: GeminiResult | _Retry = attempts.failed(exc)
            else:
                step = attempts.answered(status, headers, answer)
            if isinstance(step, GeminiResult):
                return step
            if step.throttled and self._on_throttle is not None:
                self._on_throttle(step.seconds)
            self._sleep(step.seconds)

    def _post(self, url: str, content: bytes) -> tuple[int, httpx.Headers, bytes]:
        with self._http.stream("POST", url, content=content, headers=self._headers) as response:
            chunks, total = [], 0
            for chunk in response.iter_bytes(256 * 1024):
                total += len(chunk)
                if total > self._max_response_bytes:
                    raise _ResponseTooLarge
                chunks.append(chunk)
            return response.status_code, response.headers, b"".join(chunks)


class AsyncGeminiClient(_BaseClient):
    """The same client over ``httpx.AsyncClient``; ``sleep``, ``on_throttle`` and
    ``before_send`` may be plain functions or coroutine functions."""

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        connect_timeout: float = 10.0,
        max_retries: int = 3,
        max_retry_delay: float = MAX_RETRY_DELAY,
        retry_server_errors: bool = True,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        key_setting: str = KEY_SETTING,
        model_setting: str = MODEL_SETTING,
        sleep: Hook = asyncio.sleep,
        on_throttle: Hook | None = None,
        before_send: Hook | None = None,
        max_connections: int = 100,
    ) -> None:
        super().__init__(
            api_key,
            base_url=base_url,
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_retries=max_retries,
            max_retry_delay=max_retry_delay,
            retry_server_errors=retry_server_errors,
            max_pixels=max_pixels,
            max_bytes=max_bytes,
            key_setting=key_setting,
            model_setting=model_setting,
        )
        self._sleep = sleep
        self._on_throttle = on_throttle
        self._before_send = before_send
        self._http = httpx.AsyncClient(
            timeout=self._timeout,
            headers=self._user_agent(),
            transport=transport,
            follow_redirects=False,
            verify=tls_context(),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncGeminiClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def generate(self, model: str, body: Mapping[str, Any]) -> GeminiResult:
        """Send one ``generateContent`` call (repeated only as the module docstring says)."""
        url, content = self._url(model), self._encode(body)
        attempts = _Attempts(self, model)
        while True:
            if self._before_send is not None:
                await _maybe_await(self._before_send())
            try:
                status, headers, answer = await self._post(url, content)
            except httpx.HTTPError as exc:
                step: GeminiResult | _Retry = attempts.failed(exc)
            else:
                step = attempts.answered(status, headers, answer)
            if isinstance(step, GeminiResult):
                return step
            if step.throttled and self._on_throttle is not None:
                await _maybe_await(self._on_throttle(step.seconds))
            await _maybe_await(self._sleep(step.seconds))

    async def _post(self, url: str, content: bytes) -> tuple[int, httpx.Headers, bytes]:
        async with self._http.stream(
            "POST", url, content=content, headers=self._headers
        ) as response:
            chunks, total = [], 0
            async for chunk in response.aiter_bytes(256 * 1024):
                total += len(chunk)
                if total > self._max_response_bytes:
                    raise _ResponseTooLarge
                chunks.append(chunk)
            return response.status_code, response.headers, b"".join(chunks)


async def _maybe_await(value: Any) -> None:
    if pyinspect.isawaitable(value):
        await value
