"""Carrying out a generation: submit -> complete -> validate -> store -> attach.

:func:`run_generation` takes a recorded row (:func:`nanobanana_django.services.create_generation`)
and submits it, or resumes or recovers it; :func:`complete_generation` finishes one whose
prediction is done (the poller and the webhook call it). The image is downloaded, proved
to be a real image of a sane size (:mod:`nanobanana_django.images`), saved through the
configured storage and attached (:mod:`nanobanana_django.attach`) in one step with the
row's success. Every failure ends on the row with a readable message; the moves between
states are :mod:`nanobanana_django.lifecycle`'s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.files import File
from django.db import DatabaseError, transaction
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from . import costs
from .alttext import alt_text_for
from .attach import attach
from .conf import app_settings
from .exceptions import (
    Interrupted,
    NanoBananaError,
    PredictionAborted,
    PredictionCanceled,
    PredictionFailed,
    ProviderTimeout,
    StorageFailed,
    SubmissionUncertain,
)
from .image_inputs import images_for
from .images import inspect
from .lifecycle import (
    RECOVER,
    RESUME,
    SUBMIT,
    Canceled,
    claim,
    fail,
    mark_succeeded,
    record_prediction,
    sender_of,
    was_canceled,
)
from .models import GeneratedImage
from .providers import GenerationRequest, Prediction, Provider, get_provider
from .providers.base import ABORTED, CANCELED, FAILED, SUCCEEDED
from .registry import config_for_stored
from .renditions import delete_renditions, make_renditions
from .review import announce
from .signals import image_generated
from .steps import queue_step, queued_step_of, request_input, start_next

logger = logging.getLogger(__name__)

Status = GeneratedImage.Status

LOOKUP_DELAYS = (0.5, 1.0, 2.0, 4.0)
"""Pauses between lookups of a create whose answer was lost: the provider's list may lag."""


def run_generation(
    image_id: int, *, provider: Provider | None = None, wait: bool = True
) -> GeneratedImage:
    """Carry out generation ``image_id``: submit or resume, then (``wait``) finish it.

    With ``wait=False`` (what background workers do) the call returns as soon as the
    provider has accepted the prediction; :func:`complete_generation`, called by the
    webhook or the poller, finishes it. A prediction that is done at once (the
    placeholder, a quick sync answer) is finished either way.

    Safe to call any number of times for one row (a redelivered task): see the
    module docstring. Returns the row as it ended (or as another worker has it); in the
    foreground a row with steps goes on with them, and the last step's row is returned
    (docs/steps.md).
    """
    row, step = claim(image_id)
    if step is None:
        return row

    def work(provider: Provider) -> None:
        prediction = _start(row, provider, step)
        if prediction is None or not (wait or prediction.is_terminal):
            return
        _finish(row, provider, _wait(row, provider, prediction))

    return _continue(_carry_out(row, provider, work, sync=wait), foreground=wait)


def complete_generation(
    image_id: int, *, prediction: Prediction | None = None, provider: Provider | None = None
) -> GeneratedImage:
    """Finish a submitted generation if its prediction is done; otherwise leave it.

    ``prediction`` is the provider's state when the caller has it (a verified webhook,
    the poller's listing); without it the provider is asked. Idempotent: a finished
    row, or one without a prediction yet, is returned unchanged. A prediction running
    for longer than ``GENERATION_TIMEOUT`` is cancelled and the row fails.
    """
    return complete_row(GeneratedImage.objects.get(pk=image_id), prediction, provider)


def complete_row(
    row: GeneratedImage, prediction: Prediction | None, provider: Provider | None
) -> GeneratedImage:
    """:func:`complete_generation` for a row the caller has just read (the poller reads
    a sweep's rows in one query)."""
    if row.status != Status.RUNNING or not row.prediction_id:
        return row

    def work(provider: Provider) -> None:
        current = prediction
        if current is None or current.id != row.prediction_id:
            current = provider.fetch(row.prediction_id)
        if current.is_terminal:
            _finish(row, provider, current)
        elif _overdue(row):
            _give_up(row, provider, current)

    return _continue(_carry_out(row, provider, work), foreground=False)


def _continue(row: GeneratedImage, *, foreground: bool) -> GeneratedImage:
    """Run the step that continues a succeeded ``row`` here (foreground), or queue it."""
    successor = queued_step_of(row)
    if successor is None:
        return row
    if foreground:
        return run_generation(successor.pk)
    queue_step(successor)
    return row


def _carry_out(
    row: GeneratedImage,
    provider: Provider | None,
    work: Callable[[Provider], None],
    *,
    sync: bool = True,
) -> GeneratedImage:
    """Run ``work`` with a provider; every failure ends on the row, readably."""
    owns_provider = provider is None
    try:
        provider = provider or get_provider(row.provider, sync=sync)
    except (ImproperlyConfigured, NanoBananaError) as exc:
        fail(row, exc)
        return row
    try:
        work(provider)
    except Canceled:
        pass
    except DatabaseError:
        # Our own database failed us: the row stays resumable (it keeps its prediction
        # id) and the task fails, so that the task runner delivers it again.
        logger.exception("Generation %s: database error; it will resume when retried", row.pk)
        raise
    except Exception as exc:
        if not isinstance(exc, NanoBananaError):
            logger.exception("Generation %s failed unexpectedly", row.pk)
        fail(row, exc)
    finally:
        if owns_provider:
            provider.close()
    row.refresh_from_db()
    return row


def _request_for(row: GeneratedImage) -> GenerationRequest:
    return GenerationRequest(
        model=row.model_name,
        input=(
            request_input(row)
            if row.kind == GeneratedImage.Kind.STEP
            else {"prompt": row.prompt, **row.input_params}
        ),
        images=images_for(row),
        previous_turn=(row.parent.provider_state or None) if row.parent else None,
        title=_title_for(row),
        webhook=webhook_url(),
        generation_id=str(row.pk),
    )


def webhook_url() -> str | None:
    """Where Replicate should report completions, when the site has a public origin."""
    if not app_settings.PUBLIC_URL:
        return None
    try:
        path = reverse("nanobanana:replicate-webhook")
    except NoReverseMatch:
        logger.error(
            "NANOBANANA['PUBLIC_URL'] is set but nanobanana_django.urls is not mounted; "
            "predictions are followed by polling only."
        )
        return None
    return app_settings.PUBLIC_URL + path


def _start(row: GeneratedImage, provider: Provider, step: str) -> Prediction | None:
    """Submit, resume or recover; returns the prediction to wait for."""
    request = _request_for(row)
    if step == RESUME and provider.is_placeholder:
        step = SUBMIT  # nothing is kept and nothing is billed: render it again
    if step == RESUME and not provider.capabilities.predictions:
        raise Interrupted(
            "The provider made this image, but the worker stopped before storing it and the "
            "provider keeps no copy, so it is lost (and was billed). Retry to make it again."
        )
    if step == RESUME:
        logger.info("Generation %s: resuming prediction %s", row.pk, row.prediction_id)
        return provider.fetch(row.prediction_id)
    if step == RECOVER and not provider.capabilities.listing and not provider.is_placeholder:
        raise Interrupted(
            "The worker stopped while this generation's request was with the provider, and "
            "the provider cannot list what it made, so its answer is lost: it may have made "
            "and billed the image. It was not sent again. Check the provider's dashboard, "
            "then retry."
        )
    if step == RECOVER and provider.capabilities.listing:
        started = row.started_at or timezone.now()
        found = provider.find(request, created_after=started - timedelta(minutes=1))
        orphans = _orphans(found)
        if orphans:
            prediction = orphans[0]
            logger.info("Generation %s: recovered prediction %s", row.pk, prediction.id)
            return prediction if record_prediction(row, prediction) else None
        logger.info("Generation %s: no prediction was created before; submitting", row.pk)
    costs.before_billed_request(row, provider)  # policy, then the budget; may refuse
    try:
        prediction = provider.submit(request)
    except SubmissionUncertain as lost:
        if not provider.capabilities.listing:
            raise  # it may have been made and billed: the reservation stays
        prediction = _find_lost_create(row, provider, request, lost)
    except NanoBananaError:
        costs.release(row)  # refused by the provider: nothing was made
        raise
    if not record_prediction(row, prediction):
        logger.warning(
            "Generation %s was taken over while submitting; prediction %s left to it",
            row.pk,
            prediction.id,
        )
        return None
    return prediction


def _orphans(found: list[Prediction]) -> list[Prediction]:
    """The predictions in ``found`` that no generation has recorded as its own."""
    owned = set(
        GeneratedImage.objects.filter(prediction_id__in=[p.id for p in found]).values_list(
            "prediction_id", flat=True
        )
    )
    return [p for p in found if p.id not in owned]


def _find_lost_create(
    row: GeneratedImage, provider: Provider, request: GenerationRequest, lost: SubmissionUncertain
) -> Prediction:
    """The prediction made by a create whose answer was lost, else raise.

    Sending the create again could bill twice, so the provider's list is read instead,
    as RECOVER does, a few times over a few seconds since it may lag behind the create.
    The newest orphan is taken: ours was created after any older one. If none shows up,
    none was probably made, but the row fails rather than risk a second create.
    """
    logger.warning(
        "Generation %s: the create's answer was lost (%s); looking the prediction up",
        row.pk,
        lost.message,
    )
    created_after = (row.started_at or timezone.now()) - timedelta(minutes=1)
    for delay in (0.0, *LOOKUP_DELAYS):
        if delay:
            time.sleep(delay)
        try:
            found = provider.find(request, created_after=created_after)
        except NanoBananaError as exc:
            raise SubmissionUncertain(
                f"{lost.message} Looking for it in the provider's list failed too: {exc.message}"
            ) from None
        orphans = _orphans(found)
        if orphans:
            logger.info(
                "Generation %s: found prediction %s made by the lost create",
                row.pk,
                orphans[-1].id,
            )
            return orphans[-1]
    raise SubmissionUncertain(
        "The request to create the prediction failed after it was sent, and no prediction "
        f"for it appeared in the provider's list within {sum(LOOKUP_DELAYS):g} s, so probably "
        "none was made. It was not sent again in case one was; check the provider's "
        "dashboard, then retry."
    )


def _wait(row: GeneratedImage, provider: Provider, prediction: Prediction) -> Prediction:
    """Poll one prediction until it is done (the foreground path)."""
    while not prediction.is_terminal:
        if was_canceled(row):
            provider.cancel(prediction.id)
            raise Canceled
        if _overdue(row):
            _give_up(row, provider, prediction)
        time.sleep(app_settings.POLL_INTERVAL)
        prediction = provider.fetch(prediction.id)
    return prediction


def _overdue(row: GeneratedImage) -> bool:
    started = row.started_at or row.created_at
    return timezone.now() - started > timedelta(seconds=app_settings.GENERATION_TIMEOUT)


def _give_up(row: GeneratedImage, provider: Provider, prediction: Prediction) -> None:
    try:
        provider.cancel(prediction.id)
    except NanoBananaError:
        logger.warning("Generation %s: cancelling after the timeout failed", row.pk)
    raise ProviderTimeout(
        f"No result after {app_settings.GENERATION_TIMEOUT:g} s "
        "(NANOBANANA['GENERATION_TIMEOUT']); the prediction was canceled."
    )


def _finish(row: GeneratedImage, provider: Provider, prediction: Prediction) -> None:
    """A terminal prediction: record its outcome, and store and attach its image."""
    if prediction.predict_time is not None and prediction.status != SUCCEEDED:
        row.record(predict_time=prediction.predict_time)  # a success records it with the rest
    if prediction.status == FAILED:
        reason = (prediction.error or "no reason given").rstrip(". ")
        raise PredictionFailed(
            f"The model could not make this image: {reason}. Change the prompt and retry."
        )
    if prediction.status == CANCELED:
        if was_canceled(row):
            raise Canceled
        raise PredictionCanceled("The prediction was canceled at the provider before it finished.")
    if prediction.status == ABORTED:
        costs.release(row)
        raise PredictionAborted(
            "The prediction's deadline (NANOBANANA['CANCEL_AFTER']) passed before it "
            "started, so it never ran and was not billed. Retry, or allow a longer deadline."
        )
    try:
        _store(row, provider, prediction)
    except DatabaseError:
        raise
    except Exception:
        if prediction.predict_time is not None:  # billed, though not stored: keep the figure
            row.record(predict_time=prediction.predict_time)
        raise


def _store(row: GeneratedImage, provider: Provider, prediction: Prediction) -> None:
    """Download, check and save the image and its renditions, then mark the row done and
    attach it at once.

    One write transaction for the row and its object (the storing, succeeded and
    attached), so that on a shared database a finished image costs one commit.
    """
    with provider.open_output(prediction, max_bytes=app_settings.MAX_IMAGE_BYTES) as output:
        info = inspect(output, max_pixels=app_settings.MAX_IMAGE_PIXELS)
        try:
            row.image.save(f"image.{info.extension}", File(output), save=False)
        except DatabaseError:
            raise
        except Exception as exc:
            raise StorageFailed(_storage_failure(exc)) from exc
        renditions = make_renditions(output, info, row.image.name or "", row.image.storage)
    done: dict[str, Any] = {
        "image": row.image.name,
        "image_format": info.format,
        "width": info.width,
        "height": info.height,
        "size_bytes": info.size_bytes,
        "renditions": renditions,
    }
    done["alt_text"] = alt_text_for(row, prediction.text)
    if prediction.predict_time is not None:
        done["predict_time"] = prediction.predict_time
    if prediction.provider_state:
        done["provider_state"] = prediction.provider_state
    if prediction.usage:
        done["usage"] = prediction.usage
        costs.settle(row, provider.cost_from_usage(prediction.usage))
    attached = False
    try:
        # "succeeded" and "attached" are one step: never one without the other.
        with transaction.atomic():
            finished = mark_succeeded(row, done)
            # With steps to run, the last step's image is attached, not this one.
            if finished and not (row.next_steps and start_next(row)):
                attached = row.attaches_when_done and _attach_quietly(row)
    except DatabaseError:
        delete_renditions(renditions, row.image.storage)
        row.image.delete(save=False)
        raise
    if not finished:
        # Someone else finished or canceled this row meanwhile; keep theirs.
        delete_renditions(renditions, row.image.storage)
        row.image.delete(save=False)
        row.refresh_from_db()
        return
    logger.info(
        "Generation %s succeeded: %s %dx%d, %d bytes%s",
        row.pk,
        info.format,
        info.width,
        info.height,
        info.size_bytes,
        " (offline placeholder)" if row.is_placeholder else "",
    )
    sender, instance = sender_of(row)
    image_generated.send(sender=sender, instance=instance, generated_image=row, attached=attached)
    announce(row)  # image_awaiting_review, in approval mode


def _storage_failure(exc: Exception) -> str:
    """Why saving failed, naming the storage alias and the backend's error code, never a
    URL or a credential (a backend's own message may carry either)."""
    response = getattr(exc, "response", None)  # botocore's ClientError
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    reason = f"{type(exc).__name__}: {code}" if code else type(exc).__name__
    return (
        f"The image was made but could not be saved to the storage "
        f"{app_settings.STORAGE!r} (NANOBANANA['STORAGE']): {reason}. Check that the storage "
        "exists and this site may write to it, then retry."
    )


def _attach_quietly(row: GeneratedImage) -> bool:
    """Attach; a configuration problem leaves the image on the row, not the object."""
    try:
        with transaction.atomic():
            return attach(row)
    except DatabaseError:
        raise
    except Exception:
        logger.exception("Generation %s succeeded but could not be attached", row.pk)
        return False


def _title_for(row: GeneratedImage) -> str:
    obj = row.content_object if row.content_type_id else None
    if obj is None:
        return ""
    try:
        return config_for_stored(type(obj)).title_of(obj)
    except ImproperlyConfigured:
        return ""
