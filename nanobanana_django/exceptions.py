"""Errors raised by the generation pipeline.

Every error that ends a generation carries a stable machine ``code`` (stored on
``GeneratedImage.error_code``) and a message an editor can act on (stored on
``GeneratedImage.error_message``). Messages never contain an API token.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured


class NanoBananaError(Exception):
    """Base class: a generation could not be completed."""

    code = "error"
    #: Whether the same request may be sent again without risk of billing twice.
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        detail: str | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.detail = detail
        self.retry_after = retry_after
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class ProviderError(NanoBananaError):
    """The provider answered with an error, or could not be reached."""

    code = "provider_error"


class AuthenticationFailed(ProviderError):
    code = "authentication_failed"


class PaymentRequired(ProviderError):
    code = "payment_required"


class ModelNotFound(ProviderError):
    code = "not_found"


class RequestTooLarge(ProviderError):
    code = "request_too_large"


class InvalidInput(ProviderError):
    code = "invalid_input"


class RateLimited(ProviderError):
    code = "rate_limited"
    retryable = True


class ProviderUnavailable(ProviderError):
    code = "provider_unavailable"


class ProviderTimeout(ProviderError):
    code = "timeout"


class SubmissionUncertain(ProviderError):
    """The create request may have reached the provider but no answer came back.

    Sending it again could bill a second prediction, so it is never retried.
    """

    code = "submission_uncertain"


class PredictionFailed(NanoBananaError):
    """The model ran and reported a failure (``status: failed``)."""

    code = "prediction_failed"


class PredictionCanceled(NanoBananaError):
    code = "canceled"


class PredictionAborted(NanoBananaError):
    """The prediction's deadline passed before it started; it was not billed."""

    code = "aborted"


class UnexpectedOutput(ProviderError):
    """The prediction succeeded, but its output has no image in it (another model's shape)."""

    code = "unexpected_output"


class OutputExpired(NanoBananaError):
    """The provider deleted the output before we could download it."""

    code = "output_expired"


class InvalidImage(NanoBananaError):
    """The bytes returned are not an image we accept."""

    code = "invalid_image"


class ImageTooLarge(InvalidImage):
    code = "image_too_large"


class StorageFailed(NanoBananaError):
    """The image could not be saved through the configured storage."""

    code = "storage_failed"


class CacheUnavailable(NanoBananaError):
    """The shared cache (``NANOBANANA["CACHE"]``) failed; nothing was sent."""

    code = "cache_unavailable"


class AlreadyHasImage(NanoBananaError):
    """The object has an image and ``overwrite`` was not given; nothing was generated."""

    code = "already_has_image"


class GenerationInProgress(NanoBananaError):
    """The object already has a generation queued or running; nothing was added."""

    code = "in_progress"


class Interrupted(NanoBananaError):
    """A worker stopped while submitting, and the provider cannot tell what it made."""

    code = "interrupted"


def describe(exc: BaseException) -> dict[str, Any]:
    """The ``error_code`` and ``error_message`` to record for any exception."""
    if isinstance(exc, NanoBananaError):
        return {"error_code": exc.code, "error_message": exc.message}
    if isinstance(exc, ImproperlyConfigured):
        # Our configuration errors name the setting and the fix, never a secret's value.
        return {"error_code": "improperly_configured", "error_message": str(exc)}
    return {
        "error_code": "internal_error",
        "error_message": (
            f"Unexpected error ({type(exc).__name__}). See the server log for details."
        ),
    }
