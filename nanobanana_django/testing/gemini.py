"""A local stand-in for Google's Gemini API (``generateContent`` of the image models).

It answers ``POST /v1beta/models/{model}:generateContent`` the way Google does (see the
"Google Gemini API" section of ``PROVIDERS.md``): the same request checks and error
bodies (``{"error": {"code", "message", "status", "details"}}``, a bad key as a 400 with
``API_KEY_INVALID``, a retired model as a 404), and an answer with thought parts, a text
part and a real image at the sizes the models return. It counts every call, measures
how many are answered at once, and misbehaves on demand (see
:meth:`GeminiEmulator.add_fault`). Standard library, Pillow and no Django.

Command line::

    python -m nanobanana_django.testing.gemini --port 8766 --latency 3
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from PIL import Image, UnidentifiedImageError

from nanobanana_django.dimensions import ASPECT_RATIOS, image_size
from nanobanana_django.testing.images import render_image
from nanobanana_django.testing.server import (
    BodyTooLarge,
    Emulator,
    Fault,
    FaultQueue,
    Handler,
    command_line,
    serve_in_foreground,
)

__all__ = [
    "DEFAULT_API_KEY",
    "FAULT_KINDS",
    "MODELS",
    "GeminiEmulator",
    "RecordedGeminiRequest",
    "main",
]

logger = logging.getLogger(__name__)

DEFAULT_API_KEY = "gemini-emulator-key"
REDACTED = "[redacted]"

_EXTREME_RATIOS = frozenset({"1:4", "4:1", "1:8", "8:1"})
_ALL_RATIOS = ASPECT_RATIOS
_TEN_RATIOS = tuple(r for r in ASPECT_RATIOS if r not in _EXTREME_RATIOS)


@dataclass(frozen=True)
class _ModelSpec:
    ratios: tuple[str, ...]
    sizes: tuple[str, ...]


_FLASH_31 = _ModelSpec(_ALL_RATIOS, ("1K", "2K", "4K"))
MODELS: dict[str, _ModelSpec] = {
    "gemini-3.1-flash-image": _FLASH_31,
    "gemini-3.1-flash-image-preview": _FLASH_31,
    "gemini-nano-banana-2.1": _FLASH_31,
    "gemini-3-pro-image-preview": _ModelSpec(_TEN_RATIOS, ("1K", "2K", "4K")),
    # Nano Banana (2.5) makes 1K images only and none of the extreme ratios.
    "gemini-2.5-flash-image": _ModelSpec(_TEN_RATIOS, ("1K",)),
}
"""The model ids served by default and what each accepts; other ids get Nano Banana 2's."""

IMAGE_TOKENS = {"1K": 1120, "2K": 1680, "4K": 2520}
"""Output tokens Google bills for one image of each size (PROVIDERS.md)."""
INPUT_IMAGE_TOKENS = 258
MAX_INPUT_IMAGES = 14
INPUT_MIME_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})
MAX_REQUEST_BYTES = 20 * 1024 * 1024
_THOUGHT_DRAFT_SIZE = (256, 256)

_CAMEL = re.compile(r"_([a-z])")


def _camel(name: str) -> str:
    """Google's JSON parser takes ``image_config`` and ``imageConfig`` alike."""
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


def _get(mapping: dict[str, Any], camel_name: str) -> Any:
    if camel_name in mapping:
        return mapping[camel_name]
    snake = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel_name)
    return mapping.get(snake)


_REQUEST_FIELDS = {
    "contents",
    "generationConfig",
    "tools",
    "toolConfig",
    "safetySettings",
    "systemInstruction",
    "cachedContent",
}
_IMAGE_CONFIG_FIELDS = {"aspectRatio", "imageSize"}


# --------------------------------------------------------------------------- errors

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_SERVER_MESSAGES = {
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
_BAD_KEY_MESSAGE = "API key not valid. Please pass a valid API key."
_NO_KEY_MESSAGE = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
_QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
)
_BILLING_MESSAGE = (
    "Gemini API free tier is not available in your country. Please enable billing on your "
    "project in Google AI Studio."
)
_PERMISSION_MESSAGE = "Permission denied: Consumer does not have access to this model."


class _Rejection(Exception):
    """An error answer, raised from deep in validation and sent by the handler."""

    def __init__(
        self,
        code: int,
        message: str,
        status: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or _STATUS_NAMES.get(code, "UNKNOWN")
        self.details = details or []

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "status": self.status,
        }
        if self.details:
            error["details"] = self.details
        return {"error": error}


def _invalid(message: str) -> _Rejection:
    return _Rejection(400, message)


def _retry_delay_text(value: Any) -> str:
    """A ``google.protobuf.Duration`` as JSON: ``"3s"``, ``"0.5s"``."""
    if isinstance(value, str):
        return value
    return f"{float(value):g}s"


def _throttled(retry_delay: Any | None) -> _Rejection:
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                }
            ],
        },
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [
                {
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                }
            ],
        },
    ]
    if retry_delay is not None:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": _retry_delay_text(retry_delay),
            }
        )
    return _Rejection(429, _QUOTA_MESSAGE, details=details)


# --------------------------------------------------------------------------- faults

FAULT_KINDS: dict[str, frozenset[str]] = {
    "safety": frozenset({"text"}),
    "prohibited": frozenset({"text"}),
    "recitation": frozenset({"text"}),
    "no_image": frozenset({"text", "finish_reason"}),
    "other": frozenset({"text"}),
    "finish": frozenset({"text", "reason"}),
    "blocked_prompt": frozenset({"reason"}),
    "throttle": frozenset({"retry_delay"}),
    "server_error": frozenset({"status", "message"}),
    "permission_denied": frozenset(),
    "billing": frozenset(),
    "hang": frozenset({"seconds"}),
    "drop": frozenset(),
    "non_image": frozenset(),
    "truncated": frozenset(),
}
"""Every fault kind and the options it takes."""

_REJECTIONS = {"throttle", "server_error", "permission_denied", "billing"}
"""Faults answered before anything is processed (nothing billed)."""
_FINISH_REASONS = {
    "safety": "IMAGE_SAFETY",
    "prohibited": "IMAGE_PROHIBITED_CONTENT",
    "recitation": "IMAGE_RECITATION",
    "no_image": "NO_IMAGE",
    "other": "IMAGE_OTHER",
}
_OUTCOMES = {*_FINISH_REASONS, "finish", "blocked_prompt", "drop", "non_image", "truncated"}
"""Faults that strike after the call was processed (and billed)."""

_REFUSAL_TEXT = "I can't make that image. Try describing something else."
_NON_IMAGE = b"<!DOCTYPE html><html><body>This is not an image.</body></html>\n"


@dataclass(frozen=True)
class RecordedGeminiRequest:
    """One request as the emulator received it, with the API key redacted.

    ``headers`` have lower-cased names; ``body`` is the parsed JSON (None if not JSON).
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    time: float
    """``time.monotonic()`` when it arrived."""


@dataclass
class _Answer:
    """What a processed call answers with (or ``drop``)."""

    payload: dict[str, Any] | None
    billed_image: bool


# --------------------------------------------------------------------------- emulator


class GeminiEmulator(Emulator):
    """Google's Gemini API on 127.0.0.1, with faults on demand.

    Public attributes may be changed at any time: ``latency`` (seconds spent on each
    processed call), ``image_format`` (``"png"``, Google's default, or ``"jpeg"``),
    ``thoughts`` (send a thought part and a thought draft image first),
    ``quota_per_minute`` (429 beyond that many accepted calls in 60 s),
    ``require_thought_signatures`` (a replayed model turn without its signature is a 400).

    ``counts`` keys: ``generate`` (calls processed and billed with an image made, including
    ``hang`` and ``drop``), ``rejected`` (error answers, nothing processed), ``answered``
    (processed calls that returned no image: finish reasons, blocked prompts), and one key
    per fault kind applied.
    """

    log_name = "gemini emulator"

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        latency: float = 0.0,
        *,
        models: Iterable[str] | None = None,
        image_format: str = "png",
        thoughts: bool = True,
        quota_per_minute: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.api_key = api_key
        self.latency = latency
        self.models: frozenset[str] = frozenset(MODELS if models is None else models)
        self.image_format = image_format
        self.thoughts = thoughts
        self.quota_per_minute = quota_per_minute
        self.require_thought_signatures = True

        self.requests: list[RecordedGeminiRequest] = []
        self.calls_in_flight = 0
        self.max_in_flight = 0

        self._faults = FaultQueue(FAULT_KINDS)
        self._accepted_times: list[float] = []

    # ----------------------------------------------------------------- lifecycle

    def _handler(self) -> type[Handler]:
        return _Handler

    def __repr__(self) -> str:
        where = self.base_url if self._server is not None else "stopped"
        return f"<GeminiEmulator {where} generated={self.counts['generate']}>"

    def settings(self, alias: str = "gemini") -> dict[str, Any]:
        """``NANOBANANA`` keys that send generations to this emulator through ``alias``."""
        return {
            "PROVIDER": alias,
            "PROVIDERS": {
                alias: {
                    "BACKEND": "nanobanana_django.providers.gemini.GeminiProvider",
                    "OPTIONS": {"api_key": self.api_key, "base_url": self.base_url},
                }
            },
        }

    # ----------------------------------------------------------------- control

    def add_fault(self, kind: str, times: int = 1, **options: Any) -> None:
        """Make the next ``times`` calls misbehave. Faults are used oldest first.

        Before anything is processed (counted ``rejected``, nothing billed): ``throttle``
        (429 ``RESOURCE_EXHAUSTED`` with a ``google.rpc.RetryInfo``; option
        ``retry_delay="3s"``, None for none), ``server_error`` (option ``status`` 500, 503
        or 504, ``message``), ``permission_denied`` (403), ``billing`` (400
        ``FAILED_PRECONDITION``).

        After the call was processed (billed): ``safety`` (``IMAGE_SAFETY``),
        ``prohibited`` (``IMAGE_PROHIBITED_CONTENT``), ``recitation``
        (``IMAGE_RECITATION``), ``other`` (``IMAGE_OTHER``), ``no_image`` (``NO_IMAGE``;
        ``finish_reason="STOP"`` gives a plain 200 with text parts only), ``finish`` (any
        ``reason``, e.g. ``"SAFETY"``), all without an image and with option ``text`` for the
        model's words; ``blocked_prompt`` (``promptFeedback.blockReason``, option
        ``reason="PROHIBITED_CONTENT"``, no candidates); ``drop`` (the connection is closed
        unanswered); ``non_image`` / ``truncated`` (``inlineData`` that is not an image /
        half of one).

        ``hang`` (option ``seconds=30``) waits before anything else happens, then the call
        goes on as usual (or meets the next fault).
        """
        self._faults.check(kind, times, options)
        if kind == "server_error" and int(options.get("status", 500)) not in _SERVER_MESSAGES:
            raise ValueError("server_error: status must be 500, 503 or 504")
        self._faults.add(kind, times, options)

    def images_received(self, index: int = -1) -> list[tuple[str, bytes]]:
        """The ``inlineData`` images (mime type, bytes) of a recorded ``generateContent``
        call's last user turn, in order (by default the last call's)."""
        calls = [r for r in self.requests if ":generateContent" in r.path]
        if not calls:
            return []
        contents = (calls[index].body or {}).get("contents") or []
        turns = [c for c in contents if isinstance(c, dict) and c.get("role", "user") == "user"]
        images = []
        for part in turns[-1].get("parts", ()) if turns else ():
            inline = part.get("inlineData") if isinstance(part, dict) else None
            if isinstance(inline, dict):
                images.append((inline.get("mimeType", ""), base64.b64decode(inline["data"])))
        return images

    def reset(self) -> None:
        """Forget counters, recorded requests, faults and the quota window."""
        with self._lock:
            self._faults.clear()
            self._accepted_times.clear()
            self.counts.clear()
            self.requests.clear()
            self.max_in_flight = self.calls_in_flight

    # ----------------------------------------------------------------- internals

    def _take_fault(self, kinds: Collection[str]) -> Fault | None:
        fault = self._faults.take(kinds)
        if fault is not None:
            self._count(fault.kind)
        return fault

    def _enter(self) -> None:
        with self._lock:
            self.calls_in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.calls_in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.calls_in_flight -= 1

    def _check_quota(self) -> None:
        """Admit one call under ``quota_per_minute`` or raise a 429 saying when to retry."""
        limit = self.quota_per_minute
        with self._lock:
            now = time.monotonic()
            self._accepted_times = [t for t in self._accepted_times if t > now - 60.0]
            if limit is not None and len(self._accepted_times) >= limit:
                oldest = self._accepted_times[-limit] if limit > 0 else now
                wait = oldest + 60.0 - now
                raise _throttled(f"{max(1, math.ceil(wait))}s")
            self._accepted_times.append(now)

    # ----------------------------------------------------------------- the call

    def _generate(self, model: str, payload: Any) -> _Answer:
        """Validate, then answer ``latency`` seconds after (raises _Rejection for errors)."""
        if model not in self.models:
            raise _Rejection(
                404,
                f"models/{model} is not found for API version v1beta, or is not supported for "
                "generateContent. Call ListModels to see the list of available models and "
                "their supported methods.",
            )
        fault = self._take_fault(_REJECTIONS)
        if fault is not None:
            raise _fault_rejection(fault)
        self._check_quota()
        spec = MODELS.get(model, _FLASH_31)
        request = _validate(payload, spec, self.require_thought_signatures)
        started, latency = time.monotonic(), max(0.0, float(self.latency))
        # The image is made while the caller waits, so that rendering under the GIL does
        # not add to the latency of many concurrent calls.
        answer = self._outcome(model, request)
        self._sleep(latency - (time.monotonic() - started))
        return answer

    def _outcome(self, model: str, request: _Request) -> _Answer:
        outcome = self._take_fault(_OUTCOMES)
        kind = outcome.kind if outcome is not None else None
        if kind == "drop":
            self._count("generate")
            return _Answer(None, billed_image=True)
        if kind == "blocked_prompt":
            self._count("answered")
            reason = str(outcome.options.get("reason", "PROHIBITED_CONTENT"))
            return _Answer(
                {
                    "promptFeedback": {"blockReason": reason},
                    "usageMetadata": _usage(request, None, text=""),
                    "modelVersion": model,
                    "responseId": _response_id(),
                },
                billed_image=False,
            )
        if kind is not None and (kind in _FINISH_REASONS or kind == "finish"):
            self._count("answered")
            reason = _FINISH_REASONS.get(kind) or str(outcome.options.get("reason", "SAFETY"))
            if kind == "no_image":
                reason = str(outcome.options.get("finish_reason", reason))
            text = str(outcome.options.get("text", _REFUSAL_TEXT))
            return _Answer(self._response(model, request, reason, text, image=None), False)
        if not request.wants_image:
            self._count("answered")
            text = "Here is a description instead of an image."
            return _Answer(self._response(model, request, "STOP", text, image=None), False)

        data = self._render(request)
        if kind == "non_image":
            data = _NON_IMAGE
        elif kind == "truncated":
            data = data[: len(data) // 2]
        self._count("generate")
        text = "Here is your image."
        return _Answer(self._response(model, request, "STOP", text, image=data), True)

    def _render(self, request: _Request) -> bytes:
        fmt = "png" if self.image_format == "png" else "jpg"
        return render_image(request.seed, request.size, fmt)

    def _response(
        self,
        model: str,
        request: _Request,
        finish_reason: str,
        text: str,
        image: bytes | None,
    ) -> dict[str, Any]:
        signature = base64.b64encode(hashlib.sha256(request.seed.encode()).digest()).decode()
        parts: list[dict[str, Any]] = []
        thinking = self.thoughts and image is not None
        if thinking:
            draft = render_image(request.seed + ":draft", _THOUGHT_DRAFT_SIZE, "jpg")
            parts.append(
                {
                    "text": "**Composing the scene**\n\nLaying out the main subject first.",
                    "thought": True,
                }
            )
            parts.append(
                {
                    "inlineData": {"mimeType": "image/jpeg", "data": _b64(draft)},
                    "thought": True,
                }
            )
        parts.append({"text": text, "thoughtSignature": signature})
        if image is not None:
            mime = "image/png" if self.image_format == "png" else "image/jpeg"
            parts.append(
                {
                    "inlineData": {"mimeType": mime, "data": _b64(image)},
                    "thoughtSignature": signature,
                }
            )
        candidate: dict[str, Any] = {
            "content": {"role": "model", "parts": parts},
            "finishReason": finish_reason,
            "index": 0,
        }
        if request.grounded:
            candidate["groundingMetadata"] = {
                "webSearchQueries": [request.prompt[:100]],
                "searchEntryPoint": {"renderedContent": "<div>Google Search</div>"},
            }
        return {
            "candidates": [candidate],
            "usageMetadata": _usage(
                request, request.resolution if image is not None else None, text, thinking
            ),
            "modelVersion": model,
            "responseId": _response_id(),
        }


def _fault_rejection(fault: Fault) -> _Rejection:
    if fault.kind == "throttle":
        return _throttled(fault.options.get("retry_delay", "3s"))
    if fault.kind == "permission_denied":
        return _Rejection(403, _PERMISSION_MESSAGE)
    if fault.kind == "billing":
        return _Rejection(400, _BILLING_MESSAGE, "FAILED_PRECONDITION")
    status = int(fault.options.get("status", 500))
    return _Rejection(status, str(fault.options.get("message", _SERVER_MESSAGES[status])))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _response_id() -> str:
    return secrets.token_urlsafe(16)


def _usage(
    request: _Request, resolution: str | None, text: str, thinking: bool = False
) -> dict[str, Any]:
    prompt_text = max(1, len(request.prompt) // 4)
    prompt = prompt_text + INPUT_IMAGE_TOKENS * request.input_images
    text_tokens = len(text) // 4
    image_tokens = IMAGE_TOKENS[resolution] if resolution else 0
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": image_tokens + text_tokens,
        "totalTokenCount": prompt + image_tokens + text_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_text}],
    }
    if request.input_images:
        usage["promptTokensDetails"].append(
            {"modality": "IMAGE", "tokenCount": INPUT_IMAGE_TOKENS * request.input_images}
        )
    details = [{"modality": "TEXT", "tokenCount": text_tokens}]
    if image_tokens:
        details.append({"modality": "IMAGE", "tokenCount": image_tokens})
    usage["candidatesTokensDetails"] = details
    if thinking:
        usage["thoughtsTokenCount"] = 180
        usage["totalTokenCount"] += 180
    return usage


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class _Request:
    """What the emulator needs from a valid body."""

    prompt: str
    size: tuple[int, int]
    resolution: str
    seed: str
    input_images: int
    grounded: bool
    wants_image: bool


def _validate(payload: Any, spec: _ModelSpec, require_signatures: bool) -> _Request:
    """Check a body like Google does; raise a 400 naming the field, else describe it."""
    if not isinstance(payload, dict):
        raise _invalid("Invalid JSON payload received. Expected an object.")
    for key in payload:
        if _camel(key) not in _REQUEST_FIELDS:
            raise _invalid(
                f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
            )
    contents = payload.get("contents")
    if not contents:
        raise _invalid("* GenerateContentRequest.contents: contents is not specified\n")
    if not isinstance(contents, list):
        raise _invalid(
            "Invalid JSON payload received. Invalid value at 'contents' (type.googleapis.com/"
            "google.ai.generativelanguage.v1beta.Content): expected an array"
        )

    seed = hashlib.sha256()
    prompt_texts: list[str] = []
    images: list[bytes] = []
    for c, content in enumerate(contents):
        if not isinstance(content, dict) or not isinstance(content.get("parts"), list):
            raise _invalid(f"* GenerateContentRequest.contents[{c}].parts: must be an array\n")
        role = content.get("role", "user")
        if role not in ("user", "model"):
            raise _invalid(
                f"* GenerateContentRequest.contents[{c}].role: Please use a valid role: "
                "user, model.\n"
            )
        parts = content["parts"]
        if not parts:
            raise _invalid(
                f"* GenerateContentRequest.contents[{c}].parts: contents.parts must not be empty.\n"
            )
        signed = False
        for p, part in enumerate(parts):
            where = f"contents[{c}].parts[{p}]"
            if not isinstance(part, dict):
                raise _invalid(f"Invalid value at '{where}': expected an object")
            signed = signed or bool(_get(part, "thoughtSignature"))
            inline = _get(part, "inlineData")
            text = part.get("text")
            if text is not None:
                if not isinstance(text, str):
                    raise _invalid(f"Invalid value at '{where}.text' (TYPE_STRING)")
                if role == "user":
                    prompt_texts.append(text)
                seed.update(text.encode())
            elif inline is not None:
                if (
                    role == "model"
                    and require_signatures
                    and not _get(part, "thoughtSignature")
                    and part.get("thought") is not True
                ):
                    raise _invalid(
                        f"Image part is missing a thought_signature in content position "
                        f"{c + 1}, part position {p + 1}. Replay the model's turn with its "
                        "thoughtSignature."
                    )
                data = _inline_image(inline, where)
                if role == "user":
                    images.append(data)
                seed.update(hashlib.sha256(data).digest())
            else:
                raise _invalid(
                    f"* GenerateContentRequest.{where}.data: required oneof field 'data' must "
                    "have one initialized field\n"
                )
        if role == "model" and require_signatures and not signed:
            raise _invalid(
                f"Image part is missing a thought_signature in content position {c + 1}. "
                "Replay the model's turn with its thoughtSignature."
            )
    if len(images) > MAX_INPUT_IMAGES:
        raise _invalid(
            f"* GenerateContentRequest.contents: too many images ({len(images)}); this model "
            f"accepts at most {MAX_INPUT_IMAGES} input images.\n"
        )

    config = _get(payload, "generationConfig") or {}
    if not isinstance(config, dict):
        raise _invalid("Invalid value at 'generation_config': expected an object")
    modalities = _get(config, "responseModalities")
    if modalities is not None and (
        not isinstance(modalities, list) or not set(modalities) <= {"TEXT", "IMAGE"}
    ):
        raise _invalid(
            "Invalid value at 'generation_config.response_modalities': use TEXT and IMAGE."
        )
    image_config = _get(config, "imageConfig") or {}
    if not isinstance(image_config, dict):
        raise _invalid("Invalid value at 'generation_config.image_config': expected an object")
    for key in image_config:
        if _camel(key) not in _IMAGE_CONFIG_FIELDS:
            raise _invalid(
                f'Invalid JSON payload received. Unknown name "{key}" at '
                "'generation_config.image_config': Cannot find field."
            )
    ratio = _get(image_config, "aspectRatio")
    if ratio is not None and ratio not in spec.ratios:
        raise _invalid(
            f"Invalid value at 'generation_config.image_config.aspect_ratio': {ratio!r} is not "
            f"supported by this model. Supported values: {', '.join(spec.ratios)}."
        )
    resolution = _get(image_config, "imageSize")
    if resolution is not None and resolution not in spec.sizes:
        raise _invalid(
            f"Invalid value at 'generation_config.image_config.image_size': {resolution!r} is "
            f"not supported by this model. Supported values: {', '.join(spec.sizes)}."
        )
    if ratio is None:
        ratio = _nearest_ratio(images[0], spec.ratios) if images else "1:1"
    resolution = resolution or "1K"

    tools = payload.get("tools") or []
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise _invalid("Invalid value at 'tools': expected an array of objects")
    grounded = any(_get(tool, "googleSearch") is not None for tool in tools)
    seed.update(json.dumps([ratio, resolution, grounded]).encode())
    return _Request(
        prompt="\n".join(prompt_texts),
        size=image_size(ratio, resolution),
        resolution=resolution,
        seed=seed.hexdigest(),
        input_images=len(images),
        grounded=grounded,
        wants_image=modalities is None or "IMAGE" in modalities,
    )


def _inline_image(inline: Any, where: str) -> bytes:
    if not isinstance(inline, dict):
        raise _invalid(f"Invalid value at '{where}.inline_data': expected an object")
    mime = _get(inline, "mimeType")
    if mime not in INPUT_MIME_TYPES:
        raise _invalid(
            f"Invalid value at '{where}.inline_data.mime_type': Unsupported MIME type: {mime}"
        )
    data = inline.get("data")
    try:
        if not isinstance(data, str) or not data:
            raise ValueError
        decoded = base64.b64decode(data, validate=True)
    except (ValueError, binascii.Error):
        shown = data[:20] if isinstance(data, str) else data
        raise _invalid(
            f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), Base64 decoding failed "
            f"for {shown!r}"
        ) from None
    try:
        with Image.open(io.BytesIO(decoded)) as image:
            image.size  # noqa: B018 - reading the header is the check
    except (UnidentifiedImageError, OSError):
        raise _invalid(
            f"Unable to process input image at '{where}'. Provided image is not valid."
        ) from None
    return decoded


def _nearest_ratio(data: bytes, ratios: Sequence[str]) -> str:
    """The supported aspect ratio closest to the input image's (on a log scale)."""
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
    wanted = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = (int(n) for n in ratio.split(":"))
        return abs(math.log(w / h) - wanted)

    return min(ratios, key=distance)


# --------------------------------------------------------------------------- HTTP layer


_GENERATE_ROUTE = re.compile(r"/v1beta/models/([A-Za-z0-9._-]+):generateContent")


class _Handler(Handler):
    server_version = "GeminiEmulator/1.0"
    emulator: GeminiEmulator

    def _crashed(self) -> None:
        self._error(_Rejection(500, "The emulator crashed; see its log."))

    def _send_json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json; charset=UTF-8")

    def _error(self, rejection: _Rejection) -> None:
        self._send_json(rejection.code, rejection.body())

    def _body(self) -> bytes | None:
        """The request body, or None when it is over Google's limit."""
        try:
            return self._read_body(MAX_REQUEST_BYTES)
        except BodyTooLarge:
            return None  # drained (the connection stays usable), or marked closed if not
        except ValueError:  # broken chunked framing: the stream cannot be trusted
            self.close_connection = True
            return None

    def _route(self) -> None:
        emulator = self.emulator
        parts = urlsplit(self.path)
        query = parse_qsl(parts.query, keep_blank_values=True)
        body = self._body()
        try:
            payload = json.loads(body) if body else None
        except (ValueError, UnicodeDecodeError):
            payload = None
        headers = {
            name.lower(): (REDACTED if name.lower() == "x-goog-api-key" else value)
            for name, value in self.headers.items()
        }
        safe_query = [(k, REDACTED if k == "key" else v) for k, v in query]
        path = parts.path + (f"?{urlencode(safe_query, safe='[]')}" if safe_query else "")
        emulator._record(
            RecordedGeminiRequest(self.command, path, headers, payload, time.monotonic())
        )

        match = _GENERATE_ROUTE.fullmatch(parts.path)
        if match is None or self.command != "POST":
            emulator._count("rejected")
            self._error(_Rejection(404, "The requested URL was not found on this server."))
            return
        # A call stops being in flight before its answer goes out, so that a client
        # holding the answer never sees it still counted.
        emulator._enter()
        try:
            answer = self._generate(match[1], body, payload, dict(query))
        finally:
            emulator._leave()
        if isinstance(answer, _Rejection):
            self._error(answer)
        elif emulator._stopping.is_set() or answer.payload is None:
            self._drop()
        else:
            self._send_json(200, answer.payload)

    def _generate(
        self, model: str, body: bytes | None, payload: Any, query: dict[str, str]
    ) -> _Answer | _Rejection:
        emulator = self.emulator
        hang = emulator._take_fault({"hang"})
        if hang is not None:
            emulator._sleep(float(hang.options.get("seconds", 30.0)))
        try:
            self._authenticate(self.headers.get("x-goog-api-key") or query.get("key"))
            if body is None:
                raise _invalid(
                    f"Request payload size exceeds the limit: {MAX_REQUEST_BYTES} bytes."
                )
            if payload is None:
                raise _invalid("Invalid JSON payload received. Unexpected end of string.")
            return emulator._generate(model, payload)
        except _Rejection as rejection:
            emulator._count("rejected")
            return rejection

    def _authenticate(self, key: str | None) -> None:
        if not key:
            raise _Rejection(403, _NO_KEY_MESSAGE)
        if not secrets.compare_digest(key.encode(), self.emulator.api_key.encode()):
            raise _Rejection(
                400,
                _BAD_KEY_MESSAGE,
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    },
                    {
                        "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                        "locale": "en-US",
                        "message": _BAD_KEY_MESSAGE,
                    },
                ],
            )


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the emulator in the foreground until Ctrl-C."""
    parser = command_line(
        "python -m nanobanana_django.testing.gemini",
        "Emulate Google's Gemini API (generateContent, image models) locally.",
        port=8766,
    )
    parser.add_argument("--latency", type=float, default=3.0, help="seconds spent per call")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="API key to accept")
    parser.add_argument("--jpeg", action="store_true", help="answer JPEG instead of PNG")
    parser.add_argument("--quota-per-minute", type=int, default=None, help="429 beyond this")
    args = parser.parse_args(argv)
    emulator = GeminiEmulator(
        api_key=args.api_key,
        latency=args.latency,
        image_format="jpeg" if args.jpeg else "png",
        quota_per_minute=args.quota_per_minute,
        host=args.host,
        port=args.port,
    )

    def banner() -> Iterable[str]:
        yield f"Gemini emulator serving at {emulator.base_url} (Ctrl-C to stop)"
        yield f"GEMINI_BASE_URL={emulator.base_url}"
        yield f"GEMINI_API_KEY={emulator.api_key}"

    return serve_in_foreground(emulator, banner)


if __name__ == "__main__":
    raise SystemExit(main())
