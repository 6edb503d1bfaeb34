"""The states of a generation, and the only code that moves a row between them.

A generation moves ``queued -> running -> succeeded | failed | canceled``. Every move
is a conditional UPDATE, so that of two workers handed the same row only one acts:

- :func:`claim` takes a queued row (``queued -> running``, ``attempts + 1``), or says
  how to carry on with a running one (resume its prediction, or recover it);
- :func:`record_prediction` saves the provider's id the moment it answers, unless the
  row was taken over since;
- :func:`mark_succeeded`, :func:`fail` and :func:`cancel` finish it, each only if it
  is still unfinished; ``fail`` and ``mark_succeeded`` are followed by the signals.

The pipeline (:mod:`nanobanana_django.pipeline`) decides *when*; this module makes
sure each move happens once (docs/exactly-once.md).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.models import F
from django.utils import timezone

from .exceptions import describe
from .models import GeneratedImage
from .signals import image_generation_failed

if TYPE_CHECKING:
    from .providers import Prediction

logger = logging.getLogger(__name__)

Status = GeneratedImage.Status

SUBMIT = "submit"
RESUME = "resume"
RECOVER = "recover"

DEFAULT_CALL_SECONDS = 150.0
"""The submit window when the provider's own cannot be known (it is misconfigured)."""


class Canceled(Exception):
    """The row was canceled while we worked on it: stop without touching it."""


def submit_window(alias: str | None = None) -> timedelta:
    """The longest one submit can take at provider ``alias`` (default: the default
    alias): a row claimed longer ago without a prediction id was left behind."""
    from .providers.config import get_provider_config

    try:
        config = get_provider_config(alias)
        seconds = config.backend.max_call_seconds(config.options)
    except ImproperlyConfigured:
        seconds = DEFAULT_CALL_SECONDS
    return timedelta(seconds=seconds)


def claim(image_id: int) -> tuple[GeneratedImage, str | None]:
    """Take the row for this worker, and say what to do with it (or ``None``)."""
    now = timezone.now()
    rows = GeneratedImage.objects.filter(pk=image_id)
    claimed = rows.filter(status=Status.QUEUED).update(
        status=Status.RUNNING, started_at=now, attempts=F("attempts") + 1
    )
    row = rows.get()
    if claimed:
        return row, SUBMIT
    if row.status != Status.RUNNING:
        return row, None
    if row.prediction_id:
        return row, RESUME
    # Running with no prediction id: another worker is submitting it right now, or
    # died doing so. Only once its create request must be over do we take it.
    if row.started_at and now - row.started_at > submit_window(row.provider):
        taken = rows.filter(status=Status.RUNNING, prediction_id="", attempts=row.attempts).update(
            attempts=F("attempts") + 1
        )
        if taken:
            row.refresh_from_db()
            return row, RECOVER
    return row, None


def record_prediction(row: GeneratedImage, prediction: Prediction) -> bool:
    """Save the prediction id, unless another worker has claimed the row since."""
    saved = GeneratedImage.objects.filter(
        pk=row.pk, status=Status.RUNNING, attempts=row.attempts
    ).update(prediction_id=prediction.id)
    row.prediction_id = prediction.id
    return bool(saved)


def mark_succeeded(row: GeneratedImage, done: dict[str, Any]) -> bool:
    """Record a stored image on a running row (``done`` holds the image's fields);
    False when the row was finished or canceled meanwhile."""
    fields = {
        **done,
        "status": Status.SUCCEEDED,
        "finished_at": timezone.now(),
        "error_code": "",
        "error_message": "",
    }
    finished = GeneratedImage.objects.filter(pk=row.pk, status=Status.RUNNING).update(**fields)
    if finished:
        for name, value in fields.items():
            setattr(row, name, value)
    return bool(finished)


def cancel(row: GeneratedImage) -> bool:
    """Cancel an unfinished row; False when it had already finished."""
    canceled = GeneratedImage.objects.filter(pk=row.pk, status__in=Status.unfinished()).update(
        status=Status.CANCELED,
        finished_at=timezone.now(),
        error_code="canceled",
        error_message="Canceled before it finished.",
    )
    row.refresh_from_db()
    return bool(canceled)


def fail(row: GeneratedImage, exc: BaseException) -> None:
    fields = describe(exc)
    failed = GeneratedImage.objects.filter(pk=row.pk, status__in=Status.unfinished()).update(
        status=Status.FAILED, finished_at=timezone.now(), **fields
    )
    row.refresh_from_db()
    if not failed:
        return
    logger.warning("Generation %s failed (%s): %s", row.pk, row.error_code, row.error_message)
    sender, instance = sender_of(row)
    image_generation_failed.send(sender=sender, instance=instance, generated_image=row)


def was_canceled(row: GeneratedImage) -> bool:
    return GeneratedImage.objects.filter(pk=row.pk, status=Status.CANCELED).exists()


def sender_of(row: GeneratedImage) -> tuple[type[models.Model], models.Model | None]:
    if row.content_type_id is None:
        return GeneratedImage, None
    model = row.content_type.model_class() or GeneratedImage  # type: ignore[union-attr]
    return model, row.content_object
