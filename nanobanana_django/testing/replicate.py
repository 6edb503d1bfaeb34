"""A local stand-in for Replicate's HTTP API, for tests, demos and offline development.

It speaks the subset of the API that this package uses (create a prediction for an
official model, get, cancel, the webhook secret, downloading the output file, and the
Files API for image inputs) with the same shapes and status codes as the real service
(see ``PROVIDERS.md``), checks that every image input is a real image it can read and
records what each prediction received (``images_received()``), renders
real images at the sizes Nano Banana returns, signs webhooks like Replicate does, and
can be told to misbehave in every way we have to survive (the faults are listed in
:meth:`ReplicateEmulator.add_fault`).

Prediction status is computed from the clock rather than driven by per-prediction
threads, so thousands of predictions cost nothing; one scheduler thread wakes up when a
prediction with a webhook finishes and delivers it. Standard library, Pillow and httpx
(plus trustme for HTTPS); it takes the models' inputs from ``REPLICATE_MODELS`` and reads
``Cancel-After`` with the app's own ``parse_duration``, neither of which needs Django
settings, so it runs before (and without) them.

With ``https=True`` it serves TLS on loopback with a certificate from a CA made at
construction (needs ``trustme``: ``pip install "nanobanana-django[testing]"``), so that
clients which treat only ``https:`` URLs as files or as trustworthy behave as against
the real API; :meth:`ReplicateEmulator.transport` gives an httpx transport trusting it.

Command line::

    python -m nanobanana_django.testing.replicate --port 8765 --latency 3 [--https]
"""

from __future__ import annotations

import base64
import binascii
import bisect
import contextlib
import hashlib
import heapq
import io
import itertools
import json
import logging
import math
import re
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.parser import BytesParser
from email.policy import HTTP
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from PIL import Image, UnidentifiedImageError

from nanobanana_django import standard_webhooks
from nanobanana_django.conf import parse_duration
from nanobanana_django.dimensions import image_size
from nanobanana_django.providers.replicate_models import REPLICATE_MODELS, REPLICATE_STEP_MODELS
from nanobanana_django.specs import ModelSpec
from nanobanana_django.testing.images import JPEG_HEADER, bomb_png, png_header, render_image
from nanobanana_django.testing.server import (
    TLS,
    BodyTooLarge,
    Emulator,
    Fault,
    FaultQueue,
    Handler,
    command_line,
    serve_in_foreground,
)

__all__ = [
    "DEFAULT_TOKEN",
    "FAULT_KINDS",
    "MODELS",
    "ReceivedImage",
    "RecordedRequest",
    "ReplicateEmulator",
    "WebhookAttempt",
    "main",
    "parse_duration",
    "render_image",
    "validate_prediction_request",
]

logger = logging.getLogger(__name__)

DEFAULT_TOKEN = "r8_emulator_token"
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "canceled", "aborted"})
WEBHOOK_EVENTS = ("start", "output", "logs", "completed")
DEFAULT_WEBHOOK_EVENTS = frozenset({"output", "logs", "completed"})
"""What Replicate sends when no filter is given ("new outputs or the prediction has finished")."""

LIST_PAGE_SIZE = 100
MAX_WAIT_SECONDS = 60
MAX_FILE_BYTES = 100 * 1024 * 1024
"""The Files API's limit ("Files must be less than 100MB in size")."""
FILE_LIFETIME = 3600.0
"""Seconds an uploaded file lives before it expires (``expires_at``)."""
DEFAULT_FAIL_ERROR = (
    "The model's output was flagged as sensitive by the safety filter (E005). "
    "Please try again with a different prompt or input."
)


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class _InputField:
    """One input of a model's schema: ``kind`` is string, uri, uri_array, enum or boolean."""

    kind: str
    choices: tuple[str, ...] = ()
    required: bool = False
    max_items: int = 0


def _schema(spec: ModelSpec) -> dict[str, _InputField]:
    """The inputs Replicate checks for a model, from the spec this app validates against."""
    schema = {"prompt": _InputField("string", required=True)}
    if spec.image_input:
        schema[spec.image_input] = (
            _InputField("uri")
            if spec.single_image
            else _InputField("uri_array", max_items=spec.max_image_inputs)
        )
    schema.update((name, _InputField("enum", tuple(c))) for name, c in spec.choices.items())
    schema.update((name, _InputField("boolean")) for name in spec.booleans)
    return schema


MODELS: dict[str, dict[str, _InputField]] = {
    name: _schema(spec) for name, spec in REPLICATE_MODELS.items()
}
"""The official models the emulator serves, with their input schemas (``REPLICATE_MODELS``)."""


def _step_schema(spec: ModelSpec) -> dict[str, _InputField]:
    """A step model's inputs: one image URI, its options, no prompt."""
    schema = {spec.image_input: _InputField("uri", required=True)}
    schema.update((name, _InputField("enum", tuple(c))) for name, c in spec.choices.items())
    schema.update((name, _InputField("boolean")) for name in spec.booleans)
    return schema


MODELS.update((name, _step_schema(spec)) for name, spec in REPLICATE_STEP_MODELS.items())
"""It serves the step models too (an upscaler): the output is the input image, scaled."""

_REQUEST_KEYS = {"input", "webhook", "webhook_events_filter", "stream"}
"""Top-level body keys of the official-model create route (``stream`` is deprecated)."""


def _json_type(value: Any) -> str:
    """Name a JSON value's type the way Replicate's validator does in its messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _is_uri(value: str) -> bool:
    if value.startswith("data:"):
        return "," in value
    parts = urlsplit(value)
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


def _one_of(name: str, choices: Iterable[str]) -> str:
    return f"{name} must be one of the following: " + ", ".join(f'"{c}"' for c in choices)


def validate_prediction_request(model: str, payload: Any) -> list[dict[str, str]]:
    """Return Replicate-style ``invalid_fields`` for a create body (empty when valid).

    Each item is ``{"type", "field", "description"}`` as in the real 422 answers, e.g.
    ``{"type": "enum", "field": "input.aspect_ratio", "description": "aspect_ratio must
    be one of the following: ..."}``.
    """
    errors: list[dict[str, str]] = []

    def add(kind: str, name: str, description: str) -> None:
        errors.append({"type": kind, "field": name, "description": description})

    def wrong_type(name: str, expected: str, value: Any) -> None:
        add("invalid_type", name, f"Invalid type. Expected: {expected}, given: {_json_type(value)}")

    if not isinstance(payload, dict):
        wrong_type("", "object", payload)
        return errors
    for key in payload:
        if key not in _REQUEST_KEYS:
            add("additional_property_not_allowed", "", f"Additional property {key} is not allowed")
    webhook = payload.get("webhook")
    if webhook is not None and not (isinstance(webhook, str) and _is_uri(webhook)):
        add("format", "webhook", "Does not match format 'uri'")
    events = payload.get("webhook_events_filter")
    if events is not None and not isinstance(events, list):
        wrong_type("webhook_events_filter", "array", events)
    elif events is not None:
        for i, event in enumerate(events):
            if event not in WEBHOOK_EVENTS:
                add("enum", f"webhook_events_filter.{i}", _one_of(f"{i}", WEBHOOK_EVENTS))
    if "stream" in payload and not isinstance(payload["stream"], bool):
        wrong_type("stream", "boolean", payload["stream"])
    if "input" not in payload:
        add("required", "", "input is required")
        return errors
    data = payload["input"]
    if not isinstance(data, dict):
        wrong_type("input", "object", data)
        return errors

    schema = MODELS[model]
    for name, spec in schema.items():
        if spec.required and name not in data:
            add("required", "input", f"{name} is required")
    for name, value in data.items():
        where = f"input.{name}"
        spec = schema.get(name)  # type: ignore[assignment]
        if spec is None:
            add(
                "additional_property_not_allowed",
                "input",
                f"Additional property {name} is not allowed",
            )
        elif spec.kind == "string" and not isinstance(value, str):
            wrong_type(where, "string", value)
        elif spec.kind == "string" and not value.strip():
            add("string_gte", where, "String length must be greater than or equal to 1")
        elif spec.kind == "boolean" and not isinstance(value, bool):
            wrong_type(where, "boolean", value)
        elif spec.kind == "enum" and value not in spec.choices:
            add("enum", where, _one_of(name, spec.choices))
        elif spec.kind == "uri" and not isinstance(value, str):
            wrong_type(where, "string", value)
        elif spec.kind == "uri" and not _is_uri(value):
            add("format", where, "Does not match format 'uri'")
        elif spec.kind == "uri_array" and not isinstance(value, list):
            wrong_type(where, "array", value)
        elif spec.kind == "uri_array":
            if len(value) > spec.max_items:
                add("array_max_items", where, f"Array must have at most {spec.max_items} items")
            for i, item in enumerate(value):
                if not isinstance(item, str):
                    wrong_type(f"{where}.{i}", "string", item)
                elif not _is_uri(item):
                    add("format", f"{where}.{i}", "Does not match format 'uri'")
    return errors


def _validation_detail(errors: Sequence[dict[str, str]]) -> str:
    """Format errors as Replicate does: one ``- field: description`` line per error."""
    lines = []
    for error in errors:
        prefix = f"{error['field']}: " if error["field"] else ""
        lines.append(f"- {prefix}{error['description']}\n")
    return "".join(lines)


# --------------------------------------------------------------------------- headers


def _parse_prefer_wait(header: str | None) -> int | None:
    """Return the sync-mode wait in seconds, ``None`` without ``wait``; ValueError if bad."""
    if not header:
        return None
    for preference in header.split(","):
        token = preference.strip()
        if token == "wait":
            return MAX_WAIT_SECONDS
        if token.startswith("wait="):
            value = token[len("wait=") :].strip()
            if not value.isdigit() or not 1 <= int(value) <= MAX_WAIT_SECONDS:
                raise ValueError(f"Prefer: wait must be between 1 and {MAX_WAIT_SECONDS} seconds")
            return int(value)
    return None


# --------------------------------------------------------------------------- faults

_NON_IMAGE = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>502 Bad Gateway</h1><p>The CDN could not reach the origin.</p></body></html>\n"
)

FAULT_KINDS: dict[str, frozenset[str]] = {
    "throttle": frozenset({"retry_after"}),
    "server_error": frozenset({"status", "on", "detail"}),
    "payment_required": frozenset(),
    "file_too_large": frozenset({"on"}),
    "fail": frozenset({"error"}),
    "expired_output": frozenset(),
    "data_removed": frozenset(),
    "non_image": frozenset(),
    "oversized": frozenset({"size", "content_length"}),
    "bomb": frozenset(),
    "truncated": frozenset(),
    "hang": frozenset({"seconds", "on"}),
    "drop": frozenset({"on"}),
    "webhook_lost": frozenset(),
    "webhook_duplicate": frozenset(),
}
"""Every fault kind and the options it takes."""

_FIXED_SITES = {
    "throttle": "create",
    "payment_required": "create",
    "fail": "prediction",
    "data_removed": "prediction",
    "webhook_lost": "webhook",
    "webhook_duplicate": "webhook",
    "expired_output": "download",
    "non_image": "download",
    "oversized": "download",
    "bomb": "download",
    "truncated": "download",
}
_REQUEST_SITES = ("create", "get", "cancel", "download", "upload")
_CREATE_REJECTIONS = {"throttle", "payment_required", "file_too_large", "server_error"}
_DOWNLOAD_FAULTS = {
    "expired_output",
    "non_image",
    "oversized",
    "bomb",
    "truncated",
    "server_error",
    "drop",
}


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the emulator received it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    time: float
    """``time.monotonic()`` when it arrived."""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class ReceivedImage:
    """One image a prediction was given in its image input, as the model would read it."""

    #: ``"data"`` (a ``data:`` URI), ``"file"`` (the URL of a file uploaded to ``/v1/files``)
    #: or ``"url"`` (one of ``ReplicateEmulator.remote_images``).
    via: str
    content_type: str
    data: bytes = field(repr=False)
    #: The uploaded file's id (``via == "file"``), else "".
    file_id: str = ""

    @property
    def size(self) -> tuple[int, int]:
        """The image's width and height."""
        with Image.open(io.BytesIO(self.data)) as image:
            return image.size


@dataclass
class _File:
    """A file uploaded through the Files API."""

    id: str
    name: str
    content_type: str
    data: bytes = field(repr=False)
    created: float  # wall clock
    metadata: dict[str, Any]

    def to_json(self, base_url: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "content_type": self.content_type,
            "size": len(self.data),
            "etag": hashlib.md5(self.data, usedforsecurity=False).hexdigest(),
            "checksums": {"sha256": hashlib.sha256(self.data).hexdigest()},
            "metadata": self.metadata,
            "created_at": _iso(self.created),
            "expires_at": _iso(self.created + FILE_LIFETIME),
            "urls": {"get": f"{base_url}/v1/files/{self.id}"},
        }


@dataclass(frozen=True)
class WebhookAttempt:
    """One webhook POST the emulator made; ``status_code`` is None on a connection error."""

    prediction_id: str
    event: str
    url: str
    webhook_id: str
    attempt: int
    status_code: int | None
    error: str | None
    time: float


@dataclass
class _Prediction:
    """Everything needed to compute a prediction's JSON at any instant."""

    id: str
    model: str
    input: dict[str, Any]
    created: float  # monotonic
    created_us: int  # wall clock, microseconds; unique and increasing, the list order
    queue_delay: float
    latency: float
    output_format: str
    size: tuple[int, int]
    output_as_list: bool
    deadline: float | None = None  # monotonic
    webhook: str | None = None
    events: frozenset[str] = DEFAULT_WEBHOOK_EVENTS
    fail_error: str | None = None
    remove_data: bool = False
    webhook_lost: bool = False
    webhook_duplicate: bool = False
    canceled: float | None = None  # monotonic time of a cancel request
    expired: bool = False
    completed_sent: bool = False
    completion_job: _Job | None = None  # the scheduler's wake-up for the completed webhook

    @property
    def started(self) -> float:
        return self.created + self.queue_delay

    def end(self) -> tuple[float, str]:
        """When the prediction becomes terminal, and with which status."""
        end = self.started + self.latency
        final = "failed" if self.fail_error is not None else "succeeded"
        if self.deadline is not None and self.deadline < end:
            end = self.deadline
            final = "aborted" if self.deadline < self.started else "canceled"
        if self.canceled is not None and self.canceled < end:
            end, final = self.canceled, "canceled"
        return end, final

    def status(self, now: float) -> str:
        end, final = self.end()
        if now >= end:
            return final
        # Inclusive, so that a fresh prediction reads "starting" even without a queue delay.
        return "starting" if now <= self.started else "processing"

    @property
    def list_key(self) -> tuple[int, str]:
        return (self.created_us, self.id)

    def wall(self, moment: float) -> float:
        return self.created_us / 1e6 + (moment - self.created)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _iso_us(microseconds: int) -> str:
    """Format exactly, so that a listed ``created_at`` is a working ``created_after`` bound."""
    return (_EPOCH + timedelta(microseconds=microseconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_query_time(name: str, text: str) -> int:
    """A ``created_after`` / ``created_before`` value in microseconds (naive means UTC)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _BadQuery(
            f"{name} must be an ISO 8601 date-time such as 2025-01-01T00:00:00Z, not {text!r}."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // timedelta(microseconds=1)


class _BadQuery(ValueError):
    """A list query parameter the API would refuse (its message names the parameter)."""


@dataclass(frozen=True)
class _Cursor:
    """A list position: the predictions older (``next``) or newer (``previous``) than a key.

    Anchored on the boundary prediction's ``(created_at, id)``, not an offset, so that
    predictions created between two page reads neither repeat nor push others out.
    """

    older: bool
    key: tuple[int, str]
    inclusive: bool = False

    def encode(self) -> str:
        raw = json.dumps([int(self.older), self.key[0], self.key[1], int(self.inclusive)])
        return base64.urlsafe_b64encode(raw.encode()).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> _Cursor:
        try:
            older, micros, prediction_id, inclusive = json.loads(
                base64.urlsafe_b64decode(text.encode("ascii"))
            )
            if not (isinstance(micros, int) and isinstance(prediction_id, str)):
                raise TypeError
            return cls(bool(older), (micros, prediction_id), bool(inclusive))
        except (ValueError, TypeError, UnicodeError):
            raise _BadQuery(
                "cursor is not one this API handed out; follow the next and previous links "
                "as given."
            ) from None


def _new_prediction_id() -> str:
    """26 lowercase base32 characters, the shape of Replicate's prediction ids."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii").lower()[:26]


# --------------------------------------------------------------------------- scheduler


@dataclass(order=True)
class _Job:
    when: float
    sequence: int
    action: Callable[[], None] = field(compare=False)
    background: bool = field(compare=False)
    state: str = field(default="queued", compare=False)  # queued, taken, canceled


class _Scheduler:
    """One thread running timed jobs; HTTP deliveries go to a small pool.

    ``pending`` counts queued and running jobs so tests can wait until all webhooks,
    including ones for predictions that have not finished yet, are done.
    """

    def __init__(self, workers: int = 4) -> None:
        self._cond = threading.Condition()
        self._heap: list[_Job] = []
        self._sequence = itertools.count()
        self._pending = 0
        self._stopped = False
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="replicate-emulator-webhook")
        self._thread = threading.Thread(
            target=self._run, name="replicate-emulator-scheduler", daemon=True
        )
        self._thread.start()

    def call_at(self, when: float, action: Callable[[], None], *, background: bool = False) -> _Job:
        job = _Job(when, next(self._sequence), action, background)
        with self._cond:
            if self._stopped:
                job.state = "canceled"
                return job
            heapq.heappush(self._heap, job)
            self._pending += 1
            self._cond.notify_all()
        return job

    def cancel(self, job: _Job | None) -> None:
        """Drop a job that has not run yet (it stays in the heap, skipped when due)."""
        with self._cond:
            if job is not None and job.state == "queued":
                job.state = "canceled"
                self._pending -= 1
                self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    if self._heap:
                        delay = self._heap[0].when - time.monotonic()
                        if delay <= 0:
                            break
                        self._cond.wait(delay)
                    else:
                        self._cond.wait()
                if self._stopped:
                    return
                job = heapq.heappop(self._heap)
                if job.state == "canceled":
                    continue
                job.state = "taken"
            if job.background:
                try:
                    self._pool.submit(self._call, job.action)
                except RuntimeError:  # pool shut down by stop()
                    self._finished()
            else:
                self._call(job.action)

    def _call(self, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception:
            logger.exception("replicate emulator: scheduled job failed")
        finally:
            self._finished()

    def _finished(self) -> None:
        with self._cond:
            self._pending -= 1
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            for job in self._heap:
                if job.state == "queued":
                    job.state = "canceled"
                    self._pending -= 1
            self._heap.clear()
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def stop(self) -> None:
        self.clear()
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._thread.join(timeout=5)


@dataclass
class _Delivery:
    prediction_id: str
    event: str
    url: str
    body: bytes
    webhook_id: str
    retry: bool
    copies: int
    generation: int


# --------------------------------------------------------------------------- emulator


class ReplicateEmulator(Emulator):
    """Replicate's API on 127.0.0.1, with faults on demand.

    ``latency`` / ``queue_delay`` (seconds in ``processing`` / ``starting``) and the
    other public attributes may be changed at any time; they apply to predictions
    created afterwards. ``counts`` keys: create (predictions created, i.e. billed),
    create_rejected, get, cancel, download, secret, unauthorized, webhook_delivery
    (POST attempts), webhook_delivered (2xx), webhook_gave_up, webhook_lost.
    """

    log_name = "replicate emulator"

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        latency: float = 0.0,
        queue_delay: float = 0.0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        https: bool = False,
    ) -> None:
        super().__init__(host, port, TLS(host, "ReplicateEmulator") if https else None)
        self.token = token
        self.latency = latency
        self.queue_delay = queue_delay
        self.webhook_secret = standard_webhooks.new_secret()
        self.min_cancel_after = 5.0
        self.create_rate_limit: int | None = None
        self.create_rate_window = 60.0
        """Seconds of the sliding window for ``create_rate_limit`` (Replicate: a minute)."""
        self.output_as_list = False
        self.max_request_bytes = 10 * 1024 * 1024
        self.list_page_size = LIST_PAGE_SIZE
        self.webhook_retry_delays: tuple[float, ...] = (1, 2, 4, 8, 16, 30)
        self.webhook_timeout = 10.0

        self.max_file_bytes = MAX_FILE_BYTES
        self.requests: list[RecordedRequest] = []
        self.create_times: list[float] = []
        self.webhook_attempts: list[WebhookAttempt] = []
        #: What each prediction received in its image input, in order, by prediction id.
        self.received_images: dict[str, list[ReceivedImage]] = {}
        #: Files uploaded through ``POST /v1/files`` and not deleted, by id.
        self.files: dict[str, _File] = {}
        #: Ids of files deleted through ``DELETE /v1/files/{id}``.
        self.deleted_files: list[str] = []
        #: Image URLs elsewhere that models may "download" (URL -> bytes); any other URL
        #: in an image input, not one of this emulator's files, is a 422.
        self.remote_images: dict[str, bytes] = {}

        self._changed = threading.Condition(self._lock)
        self._predictions: dict[str, _Prediction] = {}  # in creation order, so by list_key
        self._last_created_us = 0
        self._faults = FaultQueue(FAULT_KINDS)
        self._images: dict[str, bytes] = {}
        self._render_locks: dict[str, threading.Lock] = {}
        self._generation = 0
        self._scheduler: _Scheduler | None = None
        self._http: httpx.Client | None = None

    # ----------------------------------------------------------------- lifecycle

    def _handler(self) -> type[Handler]:
        return _Handler

    def _on_start(self) -> None:
        self._scheduler = _Scheduler()

    def _on_stop(self) -> None:
        """Wake sync-mode waiters, drop pending webhooks and the webhook client."""
        with self._changed:
            self._changed.notify_all()
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler = None
        with self._lock:
            http, self._http = self._http, None
        if http is not None:
            http.close()

    def __repr__(self) -> str:
        where = self.base_url if self._server is not None else "stopped"
        return f"<ReplicateEmulator {where} predictions={len(self._predictions)}>"

    @property
    def https(self) -> bool:
        """Whether it serves TLS (fixed at construction, as the certificate is made then)."""
        return self._tls is not None

    @property
    def ca_cert_path(self) -> str | None:
        """PEM file of the CA that signed the HTTPS certificate (None when serving HTTP).

        Point ``SSL_CERT_FILE`` at it to make httpx and requests clients trust it.
        """
        return self._tls.ca_cert_path if self._tls is not None else None

    def ssl_context(self) -> ssl.SSLContext:
        """A new client context that trusts this emulator's certificate (HTTPS only)."""
        if self._tls is None:
            raise ValueError("this emulator serves plain HTTP; create it with https=True")
        return ssl.create_default_context(cafile=self._tls.ca_cert_path)

    def transport(self) -> httpx.HTTPTransport:
        """An httpx transport for clients of this emulator, trusting its CA under HTTPS.

        For ``ReplicateProvider(transport=...)`` and ``replicate.Client(transport=...)``.
        """
        return httpx.HTTPTransport(verify=self.ssl_context() if self._tls is not None else True)

    def settings(self) -> dict[str, str]:
        """The ``NANOBANANA`` settings that point the Replicate provider at this emulator."""
        return {
            "PROVIDER": "replicate",
            "REPLICATE_API_TOKEN": self.token,
            "REPLICATE_BASE_URL": self.base_url,
        }

    # ----------------------------------------------------------------- inspection

    @property
    def created_count(self) -> int:
        return self.counts["create"]

    @property
    def predictions(self) -> dict[str, dict[str, Any]]:
        """Every prediction's JSON as the API would return it right now."""
        with self._lock:
            now = time.monotonic()
            return {pid: self._to_json(p, now) for pid, p in self._predictions.items()}

    def max_creates_in_window(self, seconds: float = 60.0) -> int:
        """Most predictions created within any ``seconds``-long window (client pacing check)."""
        with self._lock:
            times = sorted(self.create_times)
        best, first = 0, 0
        for last, moment in enumerate(times):
            while moment - times[first] >= seconds:
                first += 1
            best = max(best, last - first + 1)
        return best

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        """Block until every pending webhook (incl. for unfinished predictions) is settled.

        Returns False if that did not happen within ``timeout`` seconds.
        """
        scheduler = self._scheduler
        return True if scheduler is None else scheduler.wait_idle(timeout)

    # ----------------------------------------------------------------- control

    def add_fault(self, kind: str, times: int = 1, **options: Any) -> None:
        """Make the next ``times`` matching requests or predictions misbehave.

        Create (checked after auth and the model lookup, before validation; nothing is
        created): ``throttle`` (429 + ``Retry-After``, option ``retry_after=1``),
        ``payment_required`` (402), ``file_too_large`` (413), ``server_error`` (option
        ``status=500``). After a prediction was created (it is billed): ``hang``
        (option ``seconds=30``, then the normal answer) and ``drop`` (connection closed
        unanswered).

        Predictions: ``fail`` (status ``failed``, option ``error``), ``data_removed``
        (terminal with ``output`` None); ``webhook_lost`` / ``webhook_duplicate`` apply
        to the next prediction created with a ``webhook``.

        Downloads of an existing output: ``expired_output`` (404), ``non_image`` (HTML
        served as image/jpeg), ``oversized`` (options ``size`` = 60 MiB,
        ``content_length=True``, else chunked), ``bomb`` (30000x30000 PNG), ``truncated``
        (first half of the image).

        Uploads (``POST /v1/files``): ``file_too_large`` with ``on="upload"`` (413), and
        ``server_error`` / ``hang`` / ``drop`` with ``on="upload"``.

        ``server_error``, ``hang`` and ``drop`` take
        ``on="create"|"get"|"cancel"|"download"|"upload"``.
        Faults of one site are used oldest first; one ``hang`` may precede another fault.
        """
        self._faults.check(kind, times, options)
        site = _FIXED_SITES.get(kind) or options.get("on", "create")
        if site not in _REQUEST_SITES and kind not in _FIXED_SITES:
            raise ValueError(f"fault {kind!r}: 'on' must be one of {', '.join(_REQUEST_SITES)}")
        self._faults.add(kind, times, options, site)

    def images_received(self, prediction_id: str | None = None) -> list[ReceivedImage]:
        """The images a prediction (by default the last one created) was given, in order."""
        with self._lock:
            if prediction_id is None:
                if not self._predictions:
                    return []
                prediction_id = next(reversed(self._predictions))
            return list(self.received_images.get(prediction_id, ()))

    def expire_outputs(self) -> None:
        """Do what Replicate does after an hour: outputs gone, ``data_removed``, files 404."""
        with self._lock:
            for prediction in self._predictions.values():
                prediction.expired = True
            self._images.clear()

    def reset(self) -> None:
        """Forget predictions, counters, recorded requests, faults and queued webhooks."""
        with self._changed:
            self._generation += 1
            self._predictions.clear()
            self._faults.clear()
            self._images.clear()
            self._render_locks.clear()
            self.counts.clear()
            self.requests.clear()
            self.create_times.clear()
            self.webhook_attempts.clear()
            self.received_images.clear()
            self.files.clear()
            self.deleted_files.clear()
            self._changed.notify_all()
        if self._scheduler is not None:
            self._scheduler.clear()

    # ----------------------------------------------------------------- internals

    def _take_fault(self, site: str, kinds: Collection[str]) -> Fault | None:
        return self._faults.take(kinds, site)

    def _rate_limited(self) -> int | None:
        """Seconds until another create is allowed, or None when under the limit."""
        limit = self.create_rate_limit
        if limit is None:
            return None
        with self._lock:
            now = time.monotonic()
            window = [t for t in self.create_times if t > now - self.create_rate_window]
            if len(window) < limit:
                return None
            return max(1, math.ceil(window[-limit] + self.create_rate_window - now))

    def _create(
        self,
        model: str,
        payload: dict[str, Any],
        cancel_after: float | None,
        images: list[ReceivedImage] | None = None,
    ) -> str:
        data = payload["input"]
        if model in REPLICATE_STEP_MODELS:  # the handler has checked that it got an image
            output_format = "png"
            size = self._upscaled_size(model, data, (images or [])[0].data)
        else:
            defaults = REPLICATE_MODELS[model].defaults
            output_format = data.get("output_format", defaults.get("output_format", "jpg"))
            # Without size inputs (nano-banana), Gemini 2.5 Flash Image answers with a 1K square.
            size = image_size(
                data.get("aspect_ratio", defaults.get("aspect_ratio", "1:1")),
                data.get("resolution", defaults.get("resolution", "1K")),
            )
        webhook = payload.get("webhook")
        events = payload.get("webhook_events_filter")
        with self._lock:
            now = time.monotonic()
            created_us = max(time.time_ns() // 1000, self._last_created_us + 1)
            self._last_created_us = created_us
            prediction = _Prediction(
                id=_new_prediction_id(),
                model=model,
                input=data,
                created=now,
                created_us=created_us,
                queue_delay=max(0.0, float(self.queue_delay)),
                latency=max(0.0, float(self.latency)),
                output_format=output_format,
                size=size,
                output_as_list=self.output_as_list,
                deadline=None if cancel_after is None else now + cancel_after,
                webhook=webhook,
                events=DEFAULT_WEBHOOK_EVENTS if events is None else frozenset(events),
            )
            fail = self._take_fault("prediction", {"fail"})
            if fail is not None:
                prediction.fail_error = str(fail.options.get("error", DEFAULT_FAIL_ERROR))
            prediction.remove_data = self._take_fault("prediction", {"data_removed"}) is not None
            if webhook:
                prediction.webhook_lost = self._take_fault("webhook", {"webhook_lost"}) is not None
                prediction.webhook_duplicate = (
                    self._take_fault("webhook", {"webhook_duplicate"}) is not None
                )
            self._predictions[prediction.id] = prediction
            self.received_images[prediction.id] = list(images or ())
            self.counts["create"] += 1
            self.create_times.append(now)
            generation = self._generation
        if webhook and self._scheduler is not None:
            if "start" in prediction.events:
                body = json.dumps(self._to_json(prediction, prediction.created)).encode()
                self._queue_delivery(prediction, "start", body, generation, retry=False, copies=1)
            with self._lock:
                self._watch_completion(prediction, generation)
        return prediction.id

    def _wait_terminal(self, prediction_id: str, seconds: float) -> None:
        """Block a sync-mode create until the prediction ends or ``seconds`` pass."""
        until = time.monotonic() + seconds
        with self._changed:
            while not self._stopping.is_set():
                prediction = self._predictions.get(prediction_id)
                now = time.monotonic()
                if prediction is None or now >= until:
                    return
                end = prediction.end()[0]
                if now >= end:
                    return
                self._changed.wait(min(end, until) - now)

    def _cancel(self, prediction_id: str) -> dict[str, Any] | None:
        with self._changed:
            prediction = self._predictions.get(prediction_id)
            if prediction is None:
                return None
            now = time.monotonic()
            if prediction.status(now) not in TERMINAL_STATUSES:
                prediction.canceled = now
                self._changed.notify_all()
                if prediction.webhook:
                    self._watch_completion(prediction, self._generation)
            return self._to_json(prediction, now)

    def _to_json(self, p: _Prediction, now: float) -> dict[str, Any]:
        status = p.status(now)
        end = p.end()[0]
        terminal = status in TERMINAL_STATUSES
        started = p.started if status != "starting" and p.started <= end else None
        removed = p.expired or (terminal and p.remove_data)
        output: str | list[str] | None = None
        if status == "succeeded" and not removed:
            url = f"{self.base_url}/files/{p.id}/output.{p.output_format}"
            output = [url] if p.output_as_list else url
        logs = ""
        if started is not None:
            logs = f"Generating image at {p.size[0]}x{p.size[1]}...\n"
            if status == "succeeded":
                logs += f"Generated image in {p.latency:.2f} seconds\n"
        metrics: dict[str, float] = {}
        if terminal:
            if started is not None:
                metrics["predict_time"] = round(end - started, 6)
            metrics["total_time"] = round(end - p.created, 6)
        api = f"{self.base_url}/v1/predictions/{p.id}"
        result: dict[str, Any] = {
            "id": p.id,
            "model": p.model,
            "version": "hidden",
            "input": p.input,
            "logs": logs,
            "output": output,
            "data_removed": removed,
            "error": p.fail_error if status == "failed" else None,
            "status": status,
            "source": "api",
            "created_at": _iso_us(p.created_us),
            "started_at": None if started is None else _iso(p.wall(started)),
            "completed_at": _iso(p.wall(end)) if terminal else None,
            "urls": {
                "get": api,
                "cancel": f"{api}/cancel",
                "web": f"https://replicate.com/p/{p.id}",
            },
            "metrics": metrics,
        }
        if p.deadline is not None:
            result["deadline"] = _iso(p.wall(p.deadline))
        return result

    def _snapshot(self, prediction_id: str, *, as_created: bool = False) -> dict[str, Any] | None:
        """The prediction's JSON now, or as it was the instant it was created."""
        with self._lock:
            prediction = self._predictions.get(prediction_id)
            if prediction is None:
                return None
            now = prediction.created if as_created else time.monotonic()
            return self._to_json(prediction, now)

    def _listing(
        self, after: int | None, before: int | None, cursor: _Cursor | None, limit: int
    ) -> tuple[list[dict[str, Any]], _Cursor | None, _Cursor | None]:
        """One page newest first, with the cursors of the pages after and before it.

        ``after`` (inclusive) and ``before`` (exclusive) bound ``created_at`` in
        microseconds. Predictions are stored in creation order, which is key order.
        """
        with self._lock:
            now = time.monotonic()
            ordered = list(self._predictions.values())
            stamps = [p.created_us for p in ordered]
            low = 0 if after is None else bisect.bisect_left(stamps, after)
            high = len(ordered) if before is None else bisect.bisect_left(stamps, before)
            chosen = ordered[low : max(low, high)]
            keys = [p.list_key for p in chosen]
            if cursor is None:
                start, end = max(0, len(chosen) - limit), len(chosen)
            elif cursor.older:
                end = (bisect.bisect_right if cursor.inclusive else bisect.bisect_left)(
                    keys, cursor.key
                )
                start = max(0, end - limit)
            else:
                start = (bisect.bisect_left if cursor.inclusive else bisect.bisect_right)(
                    keys, cursor.key
                )
                end = min(len(chosen), start + limit)
            window = chosen[start:end]
            page = [self._to_json(p, now) for p in reversed(window)]
        if window:
            older = _Cursor(True, window[0].list_key) if start > 0 else None
            newer = _Cursor(False, window[-1].list_key) if end < len(chosen) else None
        else:  # nothing on this side of the cursor: point back across it
            older = newer = None
            if cursor is not None and start > 0:
                older = _Cursor(True, cursor.key, not cursor.inclusive)
            if cursor is not None and end < len(chosen):
                newer = _Cursor(False, cursor.key, not cursor.inclusive)
        if cursor is not None and cursor.older and newer is None:
            # A later page always links back, even if nothing newer is left to show.
            newer = _Cursor(False, window[-1].list_key if window else cursor.key)
        return page, older, newer

    def _downloadable(self, prediction_id: str, extension: str) -> _Prediction | None:
        with self._lock:
            p = self._predictions.get(prediction_id)
            if p is None or p.output_format != extension or p.expired:
                return None
            if p.status(time.monotonic()) != "succeeded" or p.remove_data:
                return None
            return p

    # ----------------------------------------------------------------- step models

    @staticmethod
    def _upscaled_size(model: str, data: dict[str, Any], source: bytes) -> tuple[int, int]:
        """An upscale's output size: the input image's times ``scale``."""
        scale = data.get("scale", REPLICATE_STEP_MODELS[model].defaults.get("scale", 4))
        with Image.open(io.BytesIO(source)) as image:
            width, height = image.size
        return width * scale, height * scale

    def _upscaled(self, p: _Prediction) -> bytes:
        """An upscaler's output: the image it was given, resized to ``p.size``, as a PNG."""
        with self._lock:
            source = self.received_images[p.id][0].data
        with Image.open(io.BytesIO(source)) as image:
            scaled = image.convert("RGB").resize(p.size, Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        scaled.save(buffer, "PNG", compress_level=1)
        return buffer.getvalue()

    def _image(self, p: _Prediction) -> bytes:
        """The output file, rendered once per prediction (outside the global lock)."""
        with self._lock:
            cached = self._images.get(p.id)
            if cached is not None:
                return cached
            render_lock = self._render_locks.setdefault(p.id, threading.Lock())
        with render_lock:
            with self._lock:
                cached = self._images.get(p.id)
            if cached is None:
                if p.model in REPLICATE_STEP_MODELS:
                    cached = self._upscaled(p)
                else:
                    cached = render_image(p.id, p.size, p.output_format)
                with self._lock:
                    if not p.expired:
                        self._images[p.id] = cached
            return cached

    # ----------------------------------------------------------------- files

    def _store_file(self, name: str, content_type: str, data: bytes, metadata: Any) -> _File:
        with self._lock:
            file = _File(
                id=_new_prediction_id(),
                name=name,
                content_type=content_type,
                data=data,
                created=time.time(),
                metadata=metadata if isinstance(metadata, dict) else {},
            )
            self.files[file.id] = file
            return file

    def _live_file(self, file_id: str) -> _File | None:
        with self._lock:
            file = self.files.get(file_id)
            if file is None or time.time() >= file.created + FILE_LIFETIME:
                return None
            return file

    def _delete_file(self, file_id: str) -> bool:
        with self._lock:
            if self.files.pop(file_id, None) is None:
                return False
            self.deleted_files.append(file_id)
            return True

    def _read_images(
        self, name: str, value: Any
    ) -> tuple[list[ReceivedImage], list[dict[str, str]]]:
        """What a model would read from its image input, and 422 ``invalid_fields`` for
        items it could not read: a ``data:`` URI that is not a real image, a URL that is
        not one of this emulator's live files (the emulator fetches nothing else)."""
        items = [value] if isinstance(value, str) else list(value or ())
        images: list[ReceivedImage] = []
        errors: list[dict[str, str]] = []
        for index, item in enumerate(items):
            where = f"input.{name}" if isinstance(value, str) else f"input.{name}.{index}"
            image, problem = self._read_image(item)
            if problem:
                errors.append({"type": "invalid_file", "field": where, "description": problem})
            elif image is not None:
                images.append(image)
        return images, errors

    def _read_image(self, item: str) -> tuple[ReceivedImage | None, str]:
        if item.startswith("data:"):
            header, _, encoded = item.partition(",")
            content_type = header.removeprefix("data:").split(";")[0] or "text/plain"
            try:
                data = (
                    base64.b64decode(encoded, validate=True)
                    if header.endswith(";base64")
                    else encoded.encode()
                )
            except (binascii.Error, ValueError):
                return None, "The data URI is not valid base64."
            received = ReceivedImage("data", content_type, data)
        elif item in self.remote_images:
            received = ReceivedImage("url", "", self.remote_images[item])
        else:
            prefix = f"{self.base_url}/v1/files/"
            file = self._live_file(item[len(prefix) :]) if item.startswith(prefix) else None
            if file is None:
                return None, (
                    "Could not download the file at this URL (the emulator serves only its "
                    "own /v1/files uploads)."
                )
            received = ReceivedImage("file", file.content_type, file.data, file.id)
        try:
            with Image.open(io.BytesIO(received.data)) as image:
                image.verify()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            return None, "The file is not a valid image."
        return received, ""

    # ----------------------------------------------------------------- webhooks

    def _watch_completion(self, p: _Prediction, generation: int) -> None:
        """(Re)schedule the completed-webhook check for when ``p`` ends (caller holds the lock).

        The previous wake-up is dropped, so a cancel does not leave a stale job that would
        keep ``wait_for_webhooks`` waiting for the original end time.
        """
        scheduler = self._scheduler
        if scheduler is None:
            return
        scheduler.cancel(p.completion_job)
        p.completion_job = scheduler.call_at(
            p.end()[0], lambda: self._check_completed(p.id, generation)
        )

    def _check_completed(self, prediction_id: str, generation: int) -> None:
        """Scheduler job: queue the ``completed`` webhook once the prediction is terminal."""
        with self._lock:
            p = self._predictions.get(prediction_id)
            if generation != self._generation or p is None or p.completed_sent:
                return
            now = time.monotonic()
            end = p.end()[0]
            if now < end:  # woke up a hair early
                self._watch_completion(p, generation)
                return
            p.completed_sent = True
            if "completed" not in p.events:
                return
            if p.webhook_lost:
                self.counts["webhook_lost"] += 1
                return
            body = json.dumps(self._to_json(p, now)).encode()
        copies = 2 if p.webhook_duplicate else 1
        self._queue_delivery(p, "completed", body, generation, retry=True, copies=copies)

    def _queue_delivery(
        self,
        p: _Prediction,
        event: str,
        body: bytes,
        generation: int,
        *,
        retry: bool,
        copies: int,
    ) -> None:
        assert p.webhook is not None
        delivery = _Delivery(
            prediction_id=p.id,
            event=event,
            url=p.webhook,
            body=body,
            webhook_id=standard_webhooks.new_message_id(),
            retry=retry,
            copies=copies,
            generation=generation,
        )
        self._schedule_attempt(delivery, 0, time.monotonic())

    def _schedule_attempt(self, delivery: _Delivery, attempt: int, when: float) -> None:
        if self._scheduler is not None:
            self._scheduler.call_at(when, lambda: self._attempt(delivery, attempt), background=True)

    def _webhook_client(self) -> httpx.Client | None:
        """The shared client for deliveries, made on first use (loading TLS roots is slow)."""
        with self._lock:
            if self._http is None and self._server is not None:
                self._http = httpx.Client(timeout=self.webhook_timeout, follow_redirects=False)
            return self._http

    def _attempt(self, delivery: _Delivery, attempt: int) -> None:
        """POST one signed webhook; on failure schedule the next retry, if any is left."""
        client = self._webhook_client()
        if client is None or delivery.generation != self._generation:
            return
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": "Replicate-Webhook-Emulator/1.0",
            "webhook-id": delivery.webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": standard_webhooks.sign(
                self.webhook_secret, delivery.webhook_id, timestamp, delivery.body
            ),
        }
        status_code: int | None = None
        error: str | None = None
        try:
            status_code = client.post(
                delivery.url, content=delivery.body, headers=headers
            ).status_code
        except Exception as exc:  # whatever went wrong, for Replicate it is a failed attempt
            error = f"{type(exc).__name__}: {exc}"
        ok = status_code is not None and 200 <= status_code < 300
        with self._lock:
            if delivery.generation != self._generation:
                return
            self.counts["webhook_delivery"] += 1
            self.webhook_attempts.append(
                WebhookAttempt(
                    delivery.prediction_id,
                    delivery.event,
                    delivery.url,
                    delivery.webhook_id,
                    attempt,
                    status_code,
                    error,
                    time.monotonic(),
                )
            )
            if ok:
                self.counts["webhook_delivered"] += 1
        if ok:
            if delivery.copies > 1:
                delivery.copies -= 1
                self._schedule_attempt(delivery, 0, time.monotonic())
            return
        delays = self.webhook_retry_delays
        if delivery.retry and attempt < len(delays):
            self._schedule_attempt(delivery, attempt + 1, time.monotonic() + delays[attempt])
        else:
            self._count("webhook_gave_up")


# --------------------------------------------------------------------------- HTTP layer

_CREATE_ROUTE = re.compile(r"/v1/models/([^/]+)/([^/]+)/predictions/?")
_LIST_ROUTE = re.compile(r"/v1/predictions/?")
_GET_ROUTE = re.compile(r"/v1/predictions/([a-z0-9]+)/?")
_CANCEL_ROUTE = re.compile(r"/v1/predictions/([a-z0-9]+)/cancel/?")
_SECRET_ROUTE = re.compile(r"/v1/webhooks/default/secret/?")
_FILE_ROUTE = re.compile(r"/files/([a-z0-9]+)/output\.([a-z]+)")
_FILES_ROUTE = re.compile(r"/v1/files/?")
_UPLOADED_ROUTE = re.compile(r"/v1/files/([a-z0-9]+)/?")
_UPLOADED_CONTENT_ROUTE = re.compile(r"/v1/files/([a-z0-9]+)/download/?")


class _Handler(Handler):
    """Protocol layer: parse, authenticate, route; state lives in the emulator."""

    server_version = "ReplicateEmulator/1.0"
    emulator: ReplicateEmulator

    def _crashed(self) -> None:
        self._problem(500, "The emulator crashed; see its log.", "Internal Server Error")

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _problem(
        self,
        status: int,
        detail: str,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        body = {"title": title or HTTPStatus(status).phrase, "detail": detail, "status": status}
        body.update(extra)
        self._send(status, json.dumps(body).encode(), "application/problem+json", headers)

    def _drop(self) -> None:
        """Close the connection without a byte of answer (the ``drop`` fault)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _request_fault(self, site: str, kinds: Collection[str]) -> Fault | None:
        """Apply a ``hang`` at this site, then return the answering fault of ``kinds``, if any."""
        emulator = self.emulator
        hang = emulator._take_fault(site, {"hang"})
        if hang is not None:
            emulator._sleep(float(hang.options.get("seconds", 30.0)))
        return emulator._take_fault(site, kinds)

    def _answered_by_fault(self, site: str) -> bool:
        """Apply a ``hang``, ``server_error`` or ``drop`` fault queued for ``site``."""
        fault = self._request_fault(site, {"server_error", "drop"})
        if fault is None:
            return False
        if fault.kind == "drop":
            self._drop()
        else:
            self._answer_server_error(fault)
        return True

    def _answer_server_error(self, fault: Fault) -> None:
        status = int(fault.options.get("status", 500))
        detail = str(fault.options.get("detail", "An internal error occurred. Please try again."))
        self._problem(status, detail)

    # ------------------------------------------------------------- routing

    def _route(self) -> None:
        emulator = self.emulator
        path = urlsplit(self.path).path
        is_create = self.command == "POST" and _CREATE_ROUTE.fullmatch(path) is not None
        is_upload = self.command == "POST" and _FILES_ROUTE.fullmatch(path) is not None
        limit = emulator.max_file_bytes if is_upload else emulator.max_request_bytes
        try:
            body, too_large = self._read_body(limit), False
        except BodyTooLarge:
            body, too_large = b"", True
        except ValueError:
            self.close_connection = True
            self._problem(400, "Malformed request body framing.")
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        emulator._record(RecordedRequest(self.command, self.path, headers, body, time.monotonic()))

        authorization = headers.get("authorization", "")
        expected = f"Bearer {emulator.token}"
        if not secrets.compare_digest(authorization.encode(), expected.encode()):
            emulator._count("unauthorized")
            if is_create:
                emulator._count("create_rejected")
            self._problem(401, "You did not pass a valid authentication token", "Unauthenticated")
            return
        if too_large:
            if is_create:
                emulator._count("create_rejected")
            detail = (
                "Files must be less than 100MB in size"
                if is_upload
                else f"Request body exceeds {emulator.max_request_bytes} bytes."
            )
            self._problem(413, detail, "Payload Too Large")
            return

        routes: list[tuple[str, re.Pattern[str], Callable[..., None]]] = [
            ("POST", _CREATE_ROUTE, lambda m: self._create(f"{m[1]}/{m[2]}", body)),
            ("POST", _CANCEL_ROUTE, lambda m: self._cancel(m[1])),
            ("GET", _LIST_ROUTE, lambda m: self._list()),
            ("GET", _GET_ROUTE, lambda m: self._get(m[1])),
            ("GET", _SECRET_ROUTE, lambda m: self._secret()),
            ("GET", _FILE_ROUTE, lambda m: self._download(m[1], m[2])),
            ("POST", _FILES_ROUTE, lambda m: self._upload(body)),
            ("GET", _UPLOADED_ROUTE, lambda m: self._file(m[1])),
            ("DELETE", _UPLOADED_ROUTE, lambda m: self._file(m[1], delete=True)),
            ("GET", _UPLOADED_CONTENT_ROUTE, lambda m: self._file_content(m[1])),
        ]
        path_matched = False
        for method, pattern, action in routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            path_matched = True
            if method == self.command:
                action(match)
                return
        if path_matched:
            self._problem(405, f"Method {self.command} is not allowed here.")
        else:
            self._problem(404, "The requested resource could not be found.", "Not found")

    # ------------------------------------------------------------- endpoints

    def _create(self, model: str, body: bytes) -> None:
        emulator = self.emulator

        def reject(status: int, detail: str, title: str | None = None, **kw: Any) -> None:
            emulator._count("create_rejected")
            self._problem(status, detail, title, **kw)

        if model not in MODELS:
            reject(
                404,
                f"Model {model} not found (the emulator serves {', '.join(MODELS)}).",
                "Not found",
            )
            return
        fault = emulator._take_fault("create", _CREATE_REJECTIONS)
        if fault is not None:
            self._reject_with_fault(fault, reject)
            return
        retry_after = emulator._rate_limited()
        if retry_after is not None:
            reject(
                429,
                f"Request was throttled. Expected available in {retry_after} "
                f"second{'s' if retry_after != 1 else ''}.",
                "Too Many Requests",
                headers={"Retry-After": str(retry_after)},
            )
            return
        try:
            payload = json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError):
            reject(400, "The request body is not valid JSON.", "Bad Request")
            return
        errors = validate_prediction_request(model, payload)
        images: list[ReceivedImage] = []
        image_input = (REPLICATE_MODELS.get(model) or REPLICATE_STEP_MODELS[model]).image_input
        if not errors and image_input and payload["input"].get(image_input):
            images, errors = emulator._read_images(image_input, payload["input"][image_input])
        if errors:
            reject(
                422, _validation_detail(errors), "Input validation failed", invalid_fields=errors
            )
            return
        try:
            wait = _parse_prefer_wait(self.headers.get("Prefer"))
        except ValueError as exc:
            reject(422, str(exc), "Invalid Prefer header")
            return
        cancel_after: float | None = None
        if self.headers.get("Cancel-After") is not None:
            try:
                cancel_after = parse_duration(self.headers["Cancel-After"])
            except ValueError:
                reject(
                    422,
                    "Cancel-After: invalid duration (use e.g. 30s, 5m, 1h30m).",
                    "Invalid Cancel-After header",
                )
                return
            if cancel_after < emulator.min_cancel_after:
                reject(
                    422,
                    f"Cancel-After: the minimum duration is {emulator.min_cancel_after:g}s.",
                    "Invalid Cancel-After header",
                )
                return

        prediction_id = emulator._create(model, payload, cancel_after, images)
        # Faults that strike once the prediction exists (and is billed): the ambiguous
        # cases, where a client must not simply send the create again.
        fault = emulator._take_fault("create", {"hang", "drop"})
        if fault is not None and fault.kind == "drop":
            self._drop()
            return
        if fault is not None:
            emulator._sleep(float(fault.options.get("seconds", 30.0)))
        if wait is not None:
            emulator._wait_terminal(prediction_id, wait)
        # Like Replicate, a create without sync mode answers with the record as created.
        prediction = emulator._snapshot(prediction_id, as_created=wait is None)
        if prediction is None:  # reset() raced us
            self._problem(404, "The prediction was removed.", "Not found")
            return
        if wait is not None and prediction["status"] not in TERMINAL_STATUSES:
            self._json(202, prediction, {"Location": prediction["urls"]["get"]})
        else:
            self._json(201, prediction)

    def _upload(self, body: bytes) -> None:
        """``POST /v1/files``: multipart ``content`` (required), ``filename``, ``type``,
        ``metadata``; answers 201 with the file object."""
        emulator = self.emulator
        emulator._count("upload")
        fault = self._request_fault("upload", {"server_error", "drop", "file_too_large"})
        if fault is not None and fault.kind == "drop":
            self._drop()
            return
        if fault is not None and fault.kind == "file_too_large":
            self._problem(413, "Files must be less than 100MB in size", "Payload Too Large")
            return
        if fault is not None:
            self._answer_server_error(fault)
            return
        fields = _multipart_fields(self.headers.get("Content-Type", ""), body)
        if fields is None or "content" not in fields:
            self._problem(
                400, "The request must be multipart/form-data with a content field.", "Bad Request"
            )
            return
        content, content_filename, content_type = fields["content"]
        name = fields.get("filename", (b"", "", ""))[0].decode("utf-8", "replace")
        kind = fields.get("type", (b"", "", ""))[0].decode("ascii", "replace")
        try:
            metadata = json.loads(fields.get("metadata", (b"{}", "", ""))[0] or b"{}")
        except ValueError:
            self._problem(400, "metadata must be valid JSON.", "Bad Request")
            return
        file = emulator._store_file(
            name or content_filename or "file",
            kind or content_type or "application/octet-stream",
            content,
            metadata,
        )
        self._json(201, file.to_json(emulator.base_url))

    def _file(self, file_id: str, *, delete: bool = False) -> None:
        emulator = self.emulator
        emulator._count("file_delete" if delete else "file_get")
        if delete:
            if emulator._delete_file(file_id):
                self._send(204, b"", "text/plain")
            else:
                self._problem(404, "File not found", "Not found")
            return
        file = emulator._live_file(file_id)
        if file is None:
            self._problem(404, "File not found", "Not found")
        else:
            self._json(200, file.to_json(emulator.base_url))

    def _file_content(self, file_id: str) -> None:
        file = self.emulator._live_file(file_id)
        if file is None:
            self._problem(404, "File not found", "Not found")
        else:
            self._send(200, file.data, file.content_type)

    def _reject_with_fault(self, fault: Fault, reject: Callable[..., None]) -> None:
        if fault.kind == "throttle":
            retry_after = fault.options.get("retry_after", 1)
            unit = "second" if retry_after == 1 else "seconds"
            reject(
                429,
                f"Request was throttled. Expected available in {retry_after} {unit}.",
                "Too Many Requests",
                headers={"Retry-After": str(retry_after)},
            )
        elif fault.kind == "payment_required":
            reject(
                402,
                "You have insufficient credit to run this model. Go to "
                "https://replicate.com/account/billing#billing to purchase credit. Once you "
                "purchase credit, please wait a few minutes before trying again.",
                "Insufficient credit",
            )
        elif fault.kind == "file_too_large":
            reject(
                413,
                "The request is too large. Pass large files as URLs instead.",
                "Payload Too Large",
            )
        else:
            self.emulator._count("create_rejected")
            self._answer_server_error(fault)

    def _list(self) -> None:
        """``GET /v1/predictions``: newest first, a page at a time, with cursor links.

        ``created_after`` (inclusive), ``created_before`` and ``source`` filter; the
        filters are carried over into the ``next`` and ``previous`` links.
        """
        emulator = self.emulator
        emulator._count("list")
        query = dict(parse_qsl(urlsplit(self.path).query))
        try:
            after, before = (
                _parse_query_time(name, query[name]) if query.get(name) else None
                for name in ("created_after", "created_before")
            )
            cursor = _Cursor.decode(query["cursor"]) if "cursor" in query else None
            source = query.get("source")
            if source not in (None, "", "web"):
                raise _BadQuery(f'source must be "web" (or left out), not {source!r}.')
        except _BadQuery as exc:
            self._problem(400, str(exc), "Bad Request")
            return
        if source == "web":  # everything the emulator holds came from the API
            self._json(200, {"next": None, "previous": None, "results": []})
            return
        page, older, newer = emulator._listing(
            after, before, cursor, max(1, int(emulator.list_page_size))
        )

        def link(position: _Cursor | None) -> str | None:
            if position is None:
                return None
            linked = {key: value for key, value in query.items() if key != "cursor"}
            linked["cursor"] = position.encode()
            return f"{emulator.base_url}/v1/predictions?{urlencode(linked)}"

        self._json(200, {"next": link(older), "previous": link(newer), "results": page})

    def _get(self, prediction_id: str) -> None:
        self._answer_prediction("get", self.emulator._snapshot, prediction_id)

    def _cancel(self, prediction_id: str) -> None:
        self._answer_prediction("cancel", self.emulator._cancel, prediction_id)

    def _answer_prediction(
        self, site: str, action: Callable[[str], dict[str, Any] | None], prediction_id: str
    ) -> None:
        """Count, apply a fault queued for ``site``, else answer with ``action``'s prediction."""
        self.emulator._count(site)
        if self._answered_by_fault(site):
            return
        prediction = action(prediction_id)
        if prediction is None:
            self._problem(404, "The requested prediction could not be found.", "Not found")
        else:
            self._json(200, prediction)

    def _secret(self) -> None:
        self.emulator._count("secret")
        self._json(200, {"key": self.emulator.webhook_secret})

    def _download(self, prediction_id: str, extension: str) -> None:
        emulator = self.emulator
        emulator._count("download")
        prediction = emulator._downloadable(prediction_id, extension)
        if prediction is None:
            self._problem(404, "The requested file could not be found.", "Not found")
            return
        content_type = "image/png" if extension == "png" else "image/jpeg"
        fault = self._request_fault("download", _DOWNLOAD_FAULTS)
        kind = fault.kind if fault is not None else None
        if fault is None:
            self._send(200, emulator._image(prediction), content_type)
        elif kind == "expired_output":
            self._problem(404, "The requested file could not be found.", "Not found")
        elif kind == "server_error":
            self._answer_server_error(fault)
        elif kind == "drop":
            self._drop()
        elif kind == "non_image":
            self._send(200, _NON_IMAGE, content_type)
        elif kind == "bomb":
            self._send(200, bomb_png(), "image/png")
        elif kind == "truncated":
            data = emulator._image(prediction)
            self._send(200, data[: len(data) // 2], content_type)
        elif kind == "oversized":
            width, height = prediction.size
            head = png_header(width, height) if extension == "png" else JPEG_HEADER
            self._stream(
                int(fault.options.get("size", 60 * 1024 * 1024)),
                head,
                content_type,
                bool(fault.options.get("content_length", True)),
            )

    def _stream(self, size: int, head: bytes, content_type: str, content_length: bool) -> None:
        """Send ``size`` bytes (``head`` then zeros), declared up front or chunked."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        if content_length:
            self.send_header("Content-Length", str(size))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        block = bytes(256 * 1024)
        sent = 0
        while sent < size:
            piece = head if sent == 0 else block
            piece = piece[: size - sent]
            if content_length:
                self.wfile.write(piece)
            else:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            sent += len(piece)
        if not content_length:
            self.wfile.write(b"0\r\n\r\n")


def _multipart_fields(content_type: str, body: bytes) -> dict[str, tuple[bytes, str, str]] | None:
    """A multipart/form-data body as ``{name: (bytes, filename, content type)}``."""
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        return None
    fields: dict[str, tuple[bytes, str, str]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            payload = part.get_payload(decode=True)
            payload = payload if isinstance(payload, bytes) else b""
            fields[str(name)] = (payload, part.get_filename() or "", part.get_content_type())
    return fields


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the emulator in the foreground until Ctrl-C."""
    parser = command_line(
        "python -m nanobanana_django.testing.replicate",
        "Emulate Replicate's HTTP API (nano-banana models) on this machine.",
        port=8765,
    )
    parser.add_argument("--latency", type=float, default=3.0, help="seconds spent processing")
    parser.add_argument("--queue-delay", type=float, default=0.0, help="seconds spent starting")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="API token to accept")
    parser.add_argument(
        "--https", action="store_true", help="serve TLS with a certificate from a fresh local CA"
    )
    args = parser.parse_args(argv)
    emulator = ReplicateEmulator(
        token=args.token,
        latency=args.latency,
        queue_delay=args.queue_delay,
        host=args.host,
        port=args.port,
        https=args.https,
    )

    def banner() -> Iterable[str]:
        yield f"Replicate emulator serving at {emulator.base_url} (Ctrl-C to stop)"
        yield f"REPLICATE_BASE_URL={emulator.base_url}"
        yield f"REPLICATE_API_TOKEN={emulator.token}"
        yield f"webhook secret: {emulator.webhook_secret}"
        if emulator.ca_cert_path is not None:
            yield f"SSL_CERT_FILE={emulator.ca_cert_path}  (the CA to trust; httpx honours it)"

    return serve_in_foreground(emulator, banner)


if __name__ == "__main__":
    raise SystemExit(main())
