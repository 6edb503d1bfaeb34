"""Google's Gemini API, directly (``generateContent``), as a provider.

Gemini has no predictions to follow: a call holds its connection until the image is
made (seconds at 1K, tens of seconds at 4K) and answers with the image itself. So
``submit`` makes the image, and background generations do not run one per worker:
the dispatcher (:mod:`nanobanana_django.dispatcher`) runs up to ``concurrency`` calls
at once in one worker. The HTTP protocol, the error messages and the billing rule
(a call Google may have processed is never sent again) live in
:mod:`nanobanana_django.providers.gemini_api`.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import uuid
from decimal import Decimal
from typing import IO, Any

from django.core.exceptions import ImproperlyConfigured
from PIL import Image

from ..dimensions import ASPECT_RATIOS
from ..exceptions import ImageTooLarge, OutputExpired
from ..ratelimit import CreateRateLimiter
from ..specs import ModelSpec, check_image_count
from . import gemini_api
from .base import (
    SUCCEEDED,
    Capabilities,
    GenerationRequest,
    ImageInput,
    Prediction,
    Provider,
)

DEFAULT_MODEL = "gemini-3.1-flash-image"
"""Nano Banana 2 on the Gemini API (stable since May 2026). Ids get retired: it is an
option, ``NANOBANANA["PROVIDERS"]["gemini"]["OPTIONS"]["model"]``."""

KEY_ENVIRONMENT = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
IMAGE_TOKEN_PRICE = Decimal(60) / Decimal(1_000_000)
"""USD per image output token (reported, PROVIDERS.md)."""
WHERE = "NANOBANANA['PROVIDERS']['gemini']['OPTIONS']"

SPEC = ModelSpec(
    name="gemini",
    choices={
        # match_input_image: leave the ratio to Google, which follows the first image.
        "aspect_ratio": ("match_input_image", *ASPECT_RATIOS),
        "resolution": ("1K", "2K", "4K"),
        # Google answers PNG; a JPEG is re-encoded here, so switching routes keeps files.
        "output_format": ("jpg", "png"),
    },
    defaults={"aspect_ratio": "match_input_image", "resolution": "1K", "output_format": "jpg"},
    booleans=("google_search", "image_search"),
    image_urls=False,
    max_inline_bytes=gemini_api.MAX_REQUEST_BYTES,
)

_PILLOW_FORMATS = {"jpg": "JPEG", "png": "PNG"}


class GeminiProvider(Provider):
    name = "gemini"
    capabilities = Capabilities(image_inputs="inline", multi_turn=True, long_calls=True)

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = gemini_api.DEFAULT_BASE_URL,
        model: str = DEFAULT_MODEL,
        timeout: float = 120.0,
        max_retries: int = 3,
        concurrency: int = 20,
        rate_limit: int = 0,
        transport: Any = None,
    ) -> None:
        self._model = model
        self.timeout = timeout
        #: Calls the dispatcher runs at once for this alias.
        self.concurrency = concurrency
        self.rate_limiter = (
            CreateRateLimiter.shared(rate_limit, scope=f"gemini:{model}") if rate_limit else None
        )
        self._client = gemini_api.GeminiClient(
            api_key,
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            max_retries=max_retries,
            key_setting=f"the GEMINI_API_KEY environment variable or {WHERE}['api_key']",
            model_setting=f"{WHERE}['model']",
            on_throttle=self.rate_limiter.pause if self.rate_limiter else None,
            before_send=self.rate_limiter.acquire if self.rate_limiter else None,
        )

    def __repr__(self) -> str:
        return f"<GeminiProvider {self._client.base_url} {self._model}>"

    # Configuration ------------------------------------------------------------------------

    @classmethod
    def default_options(cls) -> dict[str, Any]:
        return {
            "api_key": next((os.environ[k] for k in KEY_ENVIRONMENT if os.environ.get(k)), ""),
            "base_url": os.environ.get("GEMINI_BASE_URL") or gemini_api.DEFAULT_BASE_URL,
            "model": DEFAULT_MODEL,
            "timeout": 120.0,
            "max_retries": 3,
            "concurrency": 20,
            "rate_limit": 0,
        }

    @classmethod
    def clean_options(cls, where: str, options: dict[str, Any]) -> dict[str, Any]:
        options = dict(options)
        if not isinstance(options["api_key"], str):
            raise ImproperlyConfigured(f"{where}['OPTIONS']['api_key'] must be a string.")
        options["api_key"] = options["api_key"].strip()
        base_url = options["base_url"]
        if not isinstance(base_url, str) or not base_url.startswith(("https://", "http://")):
            raise ImproperlyConfigured(
                f"{where}['OPTIONS']['base_url'] must be the API root with its scheme, e.g. "
                f"{gemini_api.DEFAULT_BASE_URL!r} (paths add /v1beta/...)."
            )
        options["base_url"] = base_url.rstrip("/").removesuffix("/v1beta")
        model = options["model"]
        if not isinstance(model, str) or not model or "/" in model or ":" in model:
            raise ImproperlyConfigured(
                f"{where}['OPTIONS']['model'] must be a Gemini model id such as {DEFAULT_MODEL!r}."
            )
        for name, minimum in (("timeout", 1), ("concurrency", 1), ("max_retries", 0)):
            value = options[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
                raise ImproperlyConfigured(
                    f"{where}['OPTIONS'][{name!r}] must be a number of at least {minimum}."
                )
        rate = options["rate_limit"]
        if isinstance(rate, bool) or not isinstance(rate, int) or rate < 0:
            raise ImproperlyConfigured(
                f"{where}['OPTIONS']['rate_limit'] must be calls per minute (0: no limit)."
            )
        options["concurrency"] = int(options["concurrency"])
        return options

    @classmethod
    def credential_problem(cls, where: str, options: dict[str, Any]) -> str | None:
        if options["api_key"]:
            return None
        return (
            "Set the GEMINI_API_KEY (or GOOGLE_API_KEY) environment variable, or "
            f"{where}['OPTIONS']['api_key']."
        )

    @classmethod
    def model_for(cls, options: dict[str, Any]) -> str:
        return options["model"]

    @classmethod
    def spec_for(cls, options: dict[str, Any]) -> ModelSpec:
        return SPEC

    @classmethod
    def max_call_seconds(cls, options: dict[str, Any]) -> float:
        return options["timeout"] + 30.0

    # Generating -----------------------------------------------------------------------------

    def submit(self, request: GenerationRequest) -> Prediction:
        """Make the image (the call is held open until Google answers)."""
        params = request.input
        ratio = params.get("aspect_ratio")
        history, images = _replayed(request)
        body = gemini_api.build_request(
            params["prompt"],
            aspect_ratio=None if ratio in (None, "match_input_image") else ratio,
            resolution=params.get("resolution"),
            google_search=bool(params.get("google_search")),
            image_search=bool(params.get("image_search")),
            images=_images(request, images),
            history=history,
        )
        result = self._client.generate(request.model or self._model, body)
        content = _as_format(result.image, result.info.format, params.get("output_format"))
        return Prediction(
            id=f"gemini-{result.response_id or uuid.uuid4().hex}",
            status=SUCCEEDED,
            content=content,
            usage=dict(result.usage),
            provider_state=gemini_api.turn_state(body, result),
        )

    def cost_from_usage(self, usage: dict[str, Any]) -> Decimal | None:
        """Image output tokens at Google's reported $60 per million (USD only: in another
        currency the price table's estimate stands)."""
        from ..conf import app_settings

        if app_settings.CURRENCY != "USD":
            return None
        tokens = _image_tokens(usage)
        if tokens is None:
            return None
        return (Decimal(tokens) * IMAGE_TOKEN_PRICE).quantize(Decimal("0.0001"))

    def open_output(self, prediction: Prediction, *, max_bytes: int) -> IO[bytes]:
        if prediction.content is None:
            raise OutputExpired("Google's answer is no longer available; generate it again.")
        if len(prediction.content) > max_bytes:
            raise ImageTooLarge(
                f"The image is {len(prediction.content):,} bytes, more than the {max_bytes:,} "
                "allowed (NANOBANANA['MAX_IMAGE_BYTES'])."
            )
        return io.BytesIO(prediction.content)

    def close(self) -> None:
        self._client.close()


def _replayed(
    request: GenerationRequest,
) -> tuple[list[dict[str, Any]] | None, tuple[ImageInput, ...]]:
    """(the earlier turns to replay, the images for this turn's parts).

    An edit of an image this provider made continues its conversation: the parent's turn
    is replayed with its thought signature and the stored image put back in it, so the
    image is not sent a second time. Otherwise the parent's image goes inline with the
    instruction, like any other image.
    """
    images = request.images
    if request.previous_turn and images and images[0].role == "parent":
        parent = images[0]
        history = gemini_api.replay_history(request.previous_turn, parent.mime_type, parent.data)
        if history is not None:
            return history, images[1:]
    return None, images


def _image_tokens(usage: dict[str, Any]) -> int | None:
    """The image tokens of ``usageMetadata``: its IMAGE modality entry when it gives one,
    else the candidates' count (which then includes a few text tokens)."""
    for detail in usage.get("candidatesTokensDetails") or ():
        if isinstance(detail, dict) and detail.get("modality") == "IMAGE":
            count = detail.get("tokenCount")
            return count if isinstance(count, int) else None
    count = usage.get("candidatesTokenCount")
    return count if isinstance(count, int) else None


def _images(request: GenerationRequest, images: tuple[ImageInput, ...]) -> list[tuple[str, bytes]]:
    """The user turn's images, inline after the prompt: ``images`` (the request's, the
    edited image first, then references, less an image a replayed turn carries), then any
    ``data:`` URIs passed in ``image_input``."""
    given = request.input.get("image_input") or ()
    check_image_count(SPEC, len(request.images) + len(given))
    return [
        *((image.mime_type, image.data) for image in images),
        *(_decode(item) for item in given),
    ]


def _decode(item: str) -> tuple[str, bytes]:
    """A ``data:`` URI as ``(mime_type, bytes)``: Gemini takes images inline only."""
    from ..exceptions import InvalidInput

    if not item.startswith("data:") or ";base64," not in item:
        raise InvalidInput(
            "The Gemini API takes reference images inline: pass them as base64 data: URIs, "
            "not as URLs."
        )
    header, _, data = item.partition(";base64,")
    try:
        return header.removeprefix("data:"), base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("A reference image's data: URI is not valid base64.") from None


def _as_format(image: bytes, current: str, wanted: str | None) -> bytes:
    """``image`` in the requested ``output_format`` (Google chooses its own)."""
    target = _PILLOW_FORMATS.get(wanted or "")
    if target is None or target == current:
        return image
    with Image.open(io.BytesIO(image)) as source:
        converted = source.convert("RGB") if target == "JPEG" else source
        out = io.BytesIO()
        converted.save(out, format=target, quality=92)
    return out.getvalue()
