"""Replicate's HTTP API (``/v1/models/{owner}/{name}/predictions``), over httpx.

Billing rule: a create is sent once. It is repeated only when Replicate cannot have
made a prediction (a 429, or a connection that never opened); any other failure of
a create is reported, never retried. Reads (get, cancel, downloads) are retried with
backoff on 429 and 5xx, honouring ``Retry-After``.
"""

from __future__ import annotations

import base64
import json
import logging
import posixpath
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from email.utils import parsedate_to_datetime
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

import httpx

from .. import __version__
from ..exceptions import (
    AuthenticationFailed,
    ImageTooLarge,
    InvalidInput,
    ModelNotFound,
    NanoBananaError,
    OutputExpired,
    PaymentRequired,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    RequestTooLarge,
    SubmissionUncertain,
    UnexpectedOutput,
)
from ..images import spool
from ..ratelimit import CreateRateLimiter
from ..specs import ModelSpec, check_image_count
from .base import (
    TERMINAL_STATUSES,
    Capabilities,
    GenerationRequest,
    ImageInput,
    Prediction,
    Provider,
)
from .http import tls_context
from .replicate_models import REPLICATE_MODELS, get_model_spec, step_model_spec

logger = logging.getLogger(__name__)

KNOWN_STATUSES = frozenset({"starting", "processing", *TERMINAL_STATUSES})
FILE_HOST_SUFFIX = "replicate.delivery"
MAX_BACKOFF = 30.0
MAX_DETAIL_LENGTH = 500
MAX_LIST_PAGES = 5
LIST_PAGE_SIZE = 100
IMAGE_KEYS = ("image", "images", "output", "url", "urls", "uri", "file", "files")
"""Keys looked at first for an image URL in an object-shaped output."""
INLINE_IMAGE_BYTES = 256 * 1024
"""Images up to this size travel as ``data:`` URIs (Replicate's advice); larger ones are
uploaded through the Files API first."""


@dataclass
class ReplicatePrediction(Prediction):
    """A prediction that remembers why its output cannot be downloaded, for the message."""

    #: What a succeeded output without an image URL looked like (never its values).
    output_shape: str | None = None


class ReplicateProvider(Provider):
    name = "replicate"
    capabilities = Capabilities(
        predictions=True, webhooks=True, listing=True, cancel=True, image_inputs="url"
    )

    def __init__(
        self,
        *,
        api_token: str,
        base_url: str = "https://api.replicate.com",
        model: str = "google/nano-banana-2",
        wait: int = 60,
        cancel_after: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 5,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rate_limit: int = 0,
        rate_limiter: CreateRateLimiter | None = None,
        throttle_timeout: float | None = None,
        inline_image_bytes: int = INLINE_IMAGE_BYTES,
    ) -> None:
        if not api_token:
            raise AuthenticationFailed(
                "No Replicate API token is configured. Set NANOBANANA['REPLICATE_API_TOKEN'] "
                "or the REPLICATE_API_TOKEN environment variable."
            )
        self._model = model
        if rate_limiter is None and rate_limit:
            rate_limiter = CreateRateLimiter.shared(rate_limit)
        self.base_url = base_url.rstrip("/")
        self.wait = wait
        self.cancel_after = cancel_after
        self.timeout = timeout
        self.max_retries = max_retries
        self.rate_limiter = rate_limiter
        #: Seconds a create may spend waiting out 429s; ``None``: ``max_retries`` of them.
        self.throttle_timeout = throttle_timeout
        self.inline_image_bytes = inline_image_bytes
        #: Files uploaded for a prediction, deleted once it has finished (best effort).
        self._uploads: dict[str, list[str]] = {}
        self._sleep = sleep
        self._origin = _origin(self.base_url)
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": f"nanobanana-django/{__version__}"},
            transport=transport,
            follow_redirects=False,
            verify=tls_context(),
        )
        # Kept out of the client's default headers so that it is sent only where we
        # decide (the API and Replicate's file hosts), never to a stray output URL.
        self._auth = {"Authorization": f"Bearer {api_token}"}

    def __repr__(self) -> str:
        return f"<ReplicateProvider {self.base_url}>"

    def for_background(self) -> None:
        self.wait = 0  # submit and return; the webhook or the poller follows it

    # Configuration ------------------------------------------------------------------------

    @classmethod
    def default_options(cls) -> dict[str, Any]:
        """From the top-level shorthand settings (``REPLICATE_API_TOKEN``, ``MODEL``, ...),
        which keep working; ``OPTIONS`` of the ``replicate`` alias override them."""
        from ..conf import app_settings

        return {
            "api_token": app_settings.REPLICATE_API_TOKEN,
            "base_url": app_settings.REPLICATE_BASE_URL,
            "model": app_settings.MODEL,
            "wait": app_settings.REPLICATE_WAIT,
            "cancel_after": app_settings.CANCEL_AFTER,
            "timeout": app_settings.HTTP_TIMEOUT,
            "max_retries": app_settings.MAX_RETRIES,
            "rate_limit": app_settings.RATE_LIMIT,
            "throttle_timeout": app_settings.THROTTLE_TIMEOUT,
            "inline_image_bytes": INLINE_IMAGE_BYTES,
        }

    @classmethod
    def clean_options(cls, where: str, options: dict[str, Any]) -> dict[str, Any]:
        from django.core.exceptions import ImproperlyConfigured

        options = dict(options)
        token = options["api_token"]
        if not isinstance(token, str):
            raise ImproperlyConfigured(f"{where}['OPTIONS']['api_token'] must be a string.")
        options["api_token"] = token.strip()
        if options["model"] not in REPLICATE_MODELS:
            raise ImproperlyConfigured(
                f"{where}['OPTIONS']['model'] is {options['model']!r}, whose inputs this app "
                f"does not know. Use one of: {', '.join(sorted(REPLICATE_MODELS))}."
            )
        base_url = options["base_url"]
        if not isinstance(base_url, str) or not base_url.startswith(("https://", "http://")):
            raise ImproperlyConfigured(
                f"{where}['OPTIONS']['base_url'] must be the API root with its scheme, e.g. "
                "'https://api.replicate.com'."
            )
        options["base_url"] = base_url.rstrip("/").removesuffix("/v1")
        for name in ("wait", "max_retries", "rate_limit", "inline_image_bytes"):
            value = options[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ImproperlyConfigured(
                    f"{where}['OPTIONS'][{name!r}] must be a whole number >= 0."
                )
        if options["wait"] > 60:
            raise ImproperlyConfigured(f"{where}['OPTIONS']['wait'] is at most 60 seconds.")
        return options

    @classmethod
    def credential_problem(cls, where: str, options: dict[str, Any]) -> str | None:
        if options["api_token"]:
            return None
        return (
            "Set the REPLICATE_API_TOKEN environment variable or NANOBANANA['REPLICATE_API_TOKEN'] "
            f"(or {where}['OPTIONS']['api_token'])."
        )

    @classmethod
    def model_for(cls, options: dict[str, Any]) -> str:
        return options["model"]

    @classmethod
    def spec_for(cls, options: dict[str, Any]) -> ModelSpec:
        return get_model_spec(options["model"])

    @classmethod
    def max_call_seconds(cls, options: dict[str, Any]) -> float:
        """A sync create may be held ``wait`` seconds, plus connecting and reading."""
        return options["wait"] + 2 * options["timeout"] + 30

    def close(self) -> None:
        self._client.close()

    # Provider interface ---------------------------------------------------------------

    def submit(self, request: GenerationRequest) -> Prediction:
        spec = self._spec(request.model)
        check_image_count(spec, len(request.images) + len(_given_images(request, spec)))
        uploaded: list[str] = []
        try:
            model_input = self._with_images(request, spec, uploaded)
            prediction = self._create(request, model_input)
        except SubmissionUncertain:
            raise  # a prediction may be using the files: they expire on their own
        except NanoBananaError as exc:
            if exc.status_code is None or exc.status_code < 500:
                self._delete_files(uploaded)  # nothing was created that could read them
            raise
        if uploaded:
            self._uploads[prediction.id] = uploaded
            self._settle_uploads(prediction)
        return prediction

    def _spec(self, model: str) -> ModelSpec:
        return REPLICATE_MODELS.get(model) or step_model_spec(model) or get_model_spec(self._model)

    def _with_images(
        self, request: GenerationRequest, spec: ModelSpec, uploaded: list[str]
    ) -> dict[str, Any]:
        """The input with ``request.images`` in the model's image input, in order, each as a
        ``data:`` URI when small (and while the request's data: URIs stay within the
        spec's ``max_inline_bytes``), else uploaded through the Files API (never a storage
        URL)."""
        if not request.images:
            return request.input
        given = _given_images(request, spec)
        room = spec.max_inline_bytes - sum(len(u) for u in given if str(u).startswith("data:"))
        uris = []
        for image in request.images:
            uri = self._image_uri(image, uploaded, room)
            if uri.startswith("data:"):
                room -= len(uri)
            uris.append(uri)
        model_input = dict(request.input)
        if spec.single_image:
            model_input[spec.image_input] = uris[0]
        else:
            model_input[spec.image_input] = [*uris, *given]
        return model_input

    def _image_uri(self, image: ImageInput, uploaded: list[str], room: int) -> str:
        if len(image.data) <= self.inline_image_bytes:
            encoded = base64.b64encode(image.data).decode("ascii")
            uri = f"data:{image.mime_type};base64,{encoded}"
            if len(uri) <= room:
                return uri
        file_id, url = self._upload(image)
        uploaded.append(file_id)
        return url

    def _upload(self, image: ImageInput) -> tuple[str, str]:
        """``POST /v1/files``; returns the file's id and ``urls.get``.

        Not a create: it bills nothing, so it is retried like a read, and it does not use
        the create rate limit.
        """
        filename = posixpath.basename(image.name) or "image"
        what = f"the {'image being edited' if image.role == 'parent' else 'reference image'} "
        what += repr(filename)
        for attempt in range(self.max_retries + 1):
            try:
                response = self._client.post(
                    f"{self.base_url}/v1/files",
                    files={"content": (filename, image.data, image.mime_type)},
                    data={"filename": filename, "type": image.mime_type},
                    headers=self._auth,
                )
            except httpx.HTTPError as exc:
                if attempt == self.max_retries:
                    raise ProviderUnavailable(
                        f"Uploading {what} to Replicate's Files API failed ({_reason(exc)}). "
                        "No prediction was created, so nothing was billed; retry later."
                    ) from None
                self._sleep(_backoff(attempt))
                continue
            if _should_retry(response) and attempt < self.max_retries:
                self._sleep(_retry_after(response, attempt))
                continue
            if response.status_code in (200, 201):
                data = self._json(response)
                file_id, url = data.get("id"), (data.get("urls") or {}).get("get")
                if not file_id or not isinstance(url, str):
                    raise ProviderError(
                        "Replicate's Files API answered without the file's id or URL."
                    )
                return str(file_id), url
            raise self._upload_error(response, what)
        raise AssertionError("unreachable")  # pragma: no cover

    def _upload_error(self, response: httpx.Response, what: str) -> NanoBananaError:
        error = self._error(response)
        if response.status_code == 413:
            reason = (
                "Replicate refused it as too large (HTTP 413; files must be under 100 MB). "
                "Use a smaller image."
            )
        else:
            reason = error.message
        return type(error)(
            f"Uploading {what} to Replicate's Files API failed: {reason} No prediction was "
            "created, so nothing was billed.",
            status_code=error.status_code,
            detail=error.detail,
            retry_after=error.retry_after,
        )

    def _settle_uploads(self, prediction: Prediction) -> None:
        """Delete the files a finished prediction was given; Replicate expires them anyway."""
        if prediction.is_terminal and prediction.id in self._uploads:
            self._delete_files(self._uploads.pop(prediction.id))

    def _delete_files(self, file_ids: list[str]) -> None:
        for file_id in file_ids:
            try:
                response = self._client.delete(
                    f"{self.base_url}/v1/files/{file_id}", headers=self._auth
                )
            except httpx.HTTPError as exc:
                logger.info("Could not delete Replicate file %s (%s)", file_id, _reason(exc))
                continue
            if response.status_code not in (200, 204, 404):
                logger.info(
                    "Could not delete Replicate file %s (HTTP %s)", file_id, response.status_code
                )

    def _create(self, request: GenerationRequest, model_input: dict[str, Any]) -> Prediction:
        """The create request itself: sent once, repeated only when nothing was made."""
        owner, _, name = request.model.partition("/")
        url = f"{self.base_url}/v1/models/{owner}/{name}/predictions"
        headers = dict(self._auth)
        timeout = httpx.Timeout(self.timeout)
        if self.wait:
            headers["Prefer"] = f"wait={self.wait}"
            timeout = httpx.Timeout(self.timeout, read=self.wait + self.timeout)
        if self.cancel_after:
            headers["Cancel-After"] = self.cancel_after
        body: dict[str, Any] = {"input": model_input}
        if request.webhook:
            body["webhook"] = request.webhook
            body["webhook_events_filter"] = ["completed"]

        attempt = throttled = 0
        started = time.monotonic()
        while True:
            if self.rate_limiter is not None:
                self.rate_limiter.acquire()
            try:
                response = self._client.post(url, json=body, headers=headers, timeout=timeout)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # The connection never opened, so no prediction exists: safe to repeat.
                if attempt == self.max_retries:
                    raise ProviderUnavailable(
                        f"Could not connect to Replicate at {self.base_url} ({_reason(exc)})."
                    ) from None
                self._sleep(_backoff(attempt))
                attempt += 1
                continue
            except httpx.HTTPError as exc:
                raise SubmissionUncertain(
                    f"The request to create the prediction failed after it was sent "
                    f"({_reason(exc)}). Replicate may have created and billed a prediction, "
                    "so it was not sent again; check your Replicate dashboard before retrying."
                ) from None
            if response.status_code == 429 and self._may_wait_out(started, throttled):
                # Nothing was created: wait as long as Replicate asks, everyone together.
                delay = _retry_after(response, throttled)
                if self.rate_limiter is not None:
                    self.rate_limiter.pause(delay)
                else:
                    self._sleep(delay)
                throttled += 1
                continue
            if response.status_code in (200, 201, 202):
                return self._parse(response)
            raise self._error(response, creating=request.model)

    def _may_wait_out(self, started: float, throttled: int) -> bool:
        if self.throttle_timeout is None:
            return throttled < self.max_retries
        return time.monotonic() - started < self.throttle_timeout

    def fetch(self, prediction_id: str, url: str | None = None) -> Prediction:
        response = self._request("GET", self._prediction_url(prediction_id, url))
        prediction = self._parse(response)
        self._settle_uploads(prediction)
        return prediction

    def cancel(self, prediction_id: str) -> Prediction:
        response = self._request("POST", f"{self.base_url}/v1/predictions/{prediction_id}/cancel")
        return self._parse(response)

    def find(self, request: GenerationRequest, *, created_after: datetime) -> list[Prediction]:
        """Predictions of ``request.model`` with ``request.input`` since ``created_after``.

        Replicate lists predictions newest first, 100 a page, with their input (until
        the data is removed after an hour); at most ``MAX_LIST_PAGES`` pages are read.
        Images sent as ``data:`` URIs or uploaded files differ from one send to the next,
        so for them only their number is compared.
        """
        spec = self._spec(request.model)
        sent, images = dict(request.input), 0
        if request.images:
            sent.pop(spec.image_input, None)
            images = len(request.images) + len(_given_images(request, spec))
        found = [
            self._prediction(item)
            for item in self._listing(created_after, MAX_LIST_PAGES)
            if item.get("model") == request.model
            and _same_input(item.get("input"), sent)
            and (not images or _image_count(item.get("input"), spec) == images)
        ]
        return list(reversed(found))

    def states(self, prediction_ids: list[str], since: datetime) -> dict[str, Prediction]:
        """Many predictions' states from the list endpoint (one request per 100)."""
        wanted = set(prediction_ids)
        pages = len(wanted) // LIST_PAGE_SIZE + 2
        states: dict[str, Prediction] = {}
        for item in self._listing(since - timedelta(minutes=1), pages, stop_when=wanted):
            if item.get("id") in wanted:
                states[item["id"]] = self._prediction(item)
        for prediction_id in wanted - set(states):  # not listed (yet): ask directly
            try:
                states[prediction_id] = self.fetch(prediction_id)
            except NanoBananaError:
                continue
        return states

    def _listing(
        self, created_after: datetime, pages: int, stop_when: set[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Listed predictions created after ``created_after``, newest first."""
        since = created_after.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        url: str | None = f"{self.base_url}/v1/predictions?created_after={since}"
        seen: set[str] = set()
        for _ in range(pages):
            if url is None or _origin(url) != self._origin:
                return
            data = self._json(self._request("GET", url))
            for item in data.get("results") or []:
                if isinstance(item, dict) and item.get("id"):
                    seen.add(item["id"])
                    yield item
            if stop_when is not None and stop_when <= seen:
                return
            following = data.get("next")
            url = urljoin(url, following) if isinstance(following, str) and following else None

    def open_output(self, prediction: Prediction, *, max_bytes: int) -> IO[bytes]:
        shape = getattr(prediction, "output_shape", None)
        if shape and not prediction.data_removed:
            raise UnexpectedOutput(
                f"Replicate's output for this prediction holds no image URL: it is {shape}. "
                "Check that NANOBANANA['MODEL'] names a model that makes images."
            )
        if prediction.data_removed or not prediction.output_url:
            raise OutputExpired(
                "Replicate no longer has this prediction's output (outputs are deleted after "
                "one hour). Generate the image again."
            )
        url = prediction.output_url
        headers = self._auth if self._may_send_token(url) else {}
        for attempt in range(self.max_retries + 1):
            try:
                with self._client.stream("GET", url, headers=headers) as response:
                    if response.status_code in (404, 410):
                        raise OutputExpired(
                            "Replicate no longer has this prediction's output "
                            f"(HTTP {response.status_code}); outputs are deleted after one "
                            "hour. Generate the image again."
                        )
                    if _should_retry(response) and attempt < self.max_retries:
                        self._sleep(_retry_after(response, attempt))
                        continue
                    if response.status_code != 200:
                        response.read()
                        raise self._error(response)
                    declared = response.headers.get("Content-Length", "")
                    if declared.isdigit() and int(declared) > max_bytes:
                        raise ImageTooLarge(
                            f"The image is {int(declared):,} bytes, more than the "
                            f"{max_bytes:,} allowed (NANOBANANA['MAX_IMAGE_BYTES'])."
                        )
                    return spool(response.iter_bytes(64 * 1024), max_bytes)
            except httpx.HTTPError as exc:
                if attempt == self.max_retries:
                    raise ProviderUnavailable(
                        f"Downloading the image from Replicate failed ({_reason(exc)})."
                    ) from None
                self._sleep(_backoff(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    # HTTP --------------------------------------------------------------------------------

    def _request(self, method: str, url: str) -> httpx.Response:
        """A request that is safe to repeat, retried on 429, 5xx and network errors."""
        for attempt in range(self.max_retries + 1):
            try:
                response = self._client.request(method, url, headers=self._auth)
            except httpx.TimeoutException:
                if attempt == self.max_retries:
                    raise ProviderTimeout(
                        f"Replicate did not answer within {self.timeout:g} s."
                    ) from None
                self._sleep(_backoff(attempt))
                continue
            except httpx.HTTPError as exc:
                if attempt == self.max_retries:
                    raise ProviderUnavailable(
                        f"Could not reach Replicate at {self.base_url} ({_reason(exc)})."
                    ) from None
                self._sleep(_backoff(attempt))
                continue
            if _should_retry(response) and attempt < self.max_retries:
                self._sleep(_retry_after(response, attempt))
                continue
            if response.is_success:
                return response
            raise self._error(response)
        raise AssertionError("unreachable")  # pragma: no cover

    def _prediction_url(self, prediction_id: str, url: str | None) -> str:
        if url and _origin(url) == self._origin:
            return url
        return f"{self.base_url}/v1/predictions/{prediction_id}"

    def _may_send_token(self, url: str) -> bool:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if _origin(url) == self._origin:
            return True
        return parts.scheme == "https" and (
            host == FILE_HOST_SUFFIX or host.endswith("." + FILE_HOST_SUFFIX)
        )

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ProviderError(
                f"Replicate answered HTTP {response.status_code} with a body that is not JSON."
            )
        return data

    def _parse(self, response: httpx.Response) -> Prediction:
        return self._prediction(self._json(response), location=response.headers.get("Location"))

    def _prediction(self, data: dict[str, Any], location: str | None = None) -> Prediction:
        if not data.get("id"):
            raise ProviderError("Replicate answered with a prediction that has no id.")
        prediction_id = str(data["id"])
        status = str(data.get("status") or "starting")
        if status not in KNOWN_STATUSES:
            logger.warning("Replicate prediction %s has unknown status %r", prediction_id, status)
            status = "processing"
        metrics = data.get("metrics") or {}
        predict_time = metrics.get("predict_time")
        urls = data.get("urls") or {}
        output = data.get("output")
        output_url = _first_url(output)
        return ReplicatePrediction(
            id=prediction_id,
            status=status,
            output_url=output_url,
            error=_error_text(data.get("error")),
            predict_time=float(predict_time) if isinstance(predict_time, (int, float)) else None,
            data_removed=bool(data.get("data_removed")),
            get_url=urls.get("get") or location,
            output_shape=None if output_url or output in (None, "", [], {}) else _shape(output),
        )

    def _error(self, response: httpx.Response, *, creating: str | None = None) -> NanoBananaError:
        status = response.status_code
        detail = _problem_detail(response)
        said = f" Replicate said: {detail}" if detail else ""
        if status == 401:
            return AuthenticationFailed(
                "Replicate rejected the API token (HTTP 401)." + said + " Check "
                "NANOBANANA['REPLICATE_API_TOKEN'] or the REPLICATE_API_TOKEN environment "
                "variable.",
                status_code=status,
                detail=detail,
            )
        if status == 402:
            return PaymentRequired(
                "Replicate requires payment before running more predictions (HTTP 402)."
                + said
                + " Add credit to the Replicate account, then retry.",
                status_code=status,
                detail=detail,
            )
        if status == 404:
            what = f"the model {creating!r}" if creating else "that prediction"
            fix = " Check NANOBANANA['MODEL']." if creating else ""
            return ModelNotFound(
                f"Replicate could not find {what} (HTTP 404).{said}{fix}",
                status_code=status,
                detail=detail,
            )
        if status == 413:
            return RequestTooLarge(
                "Replicate refused the request as too large (HTTP 413)." + said + " Pass "
                "reference images as URLs rather than data: URIs.",
                status_code=status,
                detail=detail,
            )
        if status == 422:
            return InvalidInput(
                "Replicate rejected the input (HTTP 422)." + said,
                status_code=status,
                detail=detail,
            )
        if status == 429:
            return RateLimited(
                "Replicate is throttling requests (HTTP 429)." + said + " Try again shortly.",
                status_code=status,
                detail=detail,
                retry_after=_retry_after_header(response),
            )
        if status >= 500:
            extra = (
                " The prediction was not re-sent, in case Replicate had created it; retry it "
                "once Replicate is healthy."
                if creating
                else ""
            )
            return ProviderUnavailable(
                f"Replicate had a server error (HTTP {status}).{said}{extra}",
                status_code=status,
                detail=detail,
            )
        return ProviderError(
            f"Replicate answered HTTP {status}.{said}", status_code=status, detail=detail
        )


def _given_images(request: GenerationRequest, spec: ModelSpec) -> list[Any]:
    """Image URIs passed in the input itself (``input={"image_input": [...]}``)."""
    value = request.input.get(spec.image_input) if spec.image_input else None
    if not value:
        return []
    return [value] if isinstance(value, str) else list(value)


def _image_count(listed: Any, spec: ModelSpec) -> int:
    value = listed.get(spec.image_input) if isinstance(listed, dict) else None
    if not value:
        return 0
    return 1 if isinstance(value, str) else len(value)


def _same_input(listed: Any, sent: dict[str, Any]) -> bool:
    """Whether a listed prediction's input is what we sent (it may add defaults)."""
    if not isinstance(listed, dict):
        return False
    return all(listed.get(key) == value for key, value in sent.items())


def _should_retry(response: httpx.Response) -> bool:
    return response.status_code == 429 or response.status_code in (500, 502, 503, 504)


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter: about 0.5, 1, 2, 4 s ..., at most 30 s."""
    return min(MAX_BACKOFF, 0.5 * 2**attempt) * random.uniform(0.8, 1.2)


def _retry_after_header(response: httpx.Response) -> float | None:
    """Seconds to wait, from ``Retry-After`` as seconds or as an HTTP date (RFC 9110)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, as HTTP dates always are
        when = when.replace(tzinfo=dt_timezone.utc)
    return max(0.0, (when - datetime.now(dt_timezone.utc)).total_seconds())


def _retry_after(response: httpx.Response, attempt: int) -> float:
    seconds = _retry_after_header(response)
    if seconds is None:
        return _backoff(attempt)
    return min(seconds, 60.0)


def _problem_detail(response: httpx.Response) -> str:
    """The readable part of an RFC 7807 problem body, or a short plain-text body."""
    text = ""
    try:
        data = response.json()
    except ValueError:
        content_type = response.headers.get("Content-Type", "")
        if content_type.startswith("text/plain"):
            text = response.text
    else:
        if isinstance(data, dict):
            text = _text(data.get("detail")) or _text(data.get("title")) or ""
    text = " ".join(text.split())
    return text[:MAX_DETAIL_LENGTH]


def _text(value: Any) -> str | None:
    if value in (None, ""):
        return None
    return value if isinstance(value, str) else str(value)


def _error_text(error: Any) -> str | None:
    """A prediction's ``error``, readable even when it is an object (never a Python repr)."""
    if isinstance(error, dict):
        for key in ("message", "detail", "title", "error"):
            text = _error_text(error.get(key))
            if text:
                return text
    if isinstance(error, (dict, list)):
        return json.dumps(error, separators=(",", ":"), ensure_ascii=False)[:MAX_DETAIL_LENGTH]
    return _text(error)


def _first_url(output: Any, depth: int = 0) -> str | None:
    """The image URL in an output: Nano Banana's one string, a list, or an object of them."""
    if isinstance(output, str):
        return output if output and (depth == 0 or _looks_like_url(output)) else None
    if depth > 3:
        return None
    if isinstance(output, (list, tuple)):
        # A top-level list is how models return several files: its strings are taken as is.
        items, inner = list(output), (0 if depth == 0 else depth + 1)
    elif isinstance(output, dict):
        preferred = [output[key] for key in IMAGE_KEYS if key in output]
        items = preferred + [value for key, value in output.items() if key not in IMAGE_KEYS]
        inner = depth + 1
    else:
        return None
    return next((url for item in items if (url := _first_url(item, inner))), None)


def _looks_like_url(text: str) -> bool:
    return text.startswith(("https://", "http://", "data:image/"))


def _shape(output: Any) -> str:
    """Describe an output by its type and keys, without echoing values."""
    if isinstance(output, dict):
        keys = [repr(str(key)[:40]) for key in list(output)[:8]]
        more = ", ..." if len(output) > 8 else ""
        return f"an object with the keys {', '.join(keys)}{more}"
    if isinstance(output, (list, tuple)):
        return f"a list of {len(output)} item(s), none of them an image URL"
    if isinstance(output, bool):
        return "a boolean"
    if isinstance(output, (int, float)):
        return "a number"
    return f"a {type(output).__name__}"


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return (parts.scheme, (parts.hostname or "").lower(), parts.port)


def _reason(exc: BaseException) -> str:
    """Name the network failure without echoing request details."""
    return type(exc).__name__
