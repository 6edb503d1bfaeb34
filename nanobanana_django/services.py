"""The generation pipeline and its public Python API.

``generate_for(article)`` and ``generate_image("a prompt")`` run a generation in the
foreground; ``queue_generation(article)`` records it and hands it to the task runner
once the transaction commits. ``create_generation`` + ``run_generation`` are the two
halves: "record the request" and "carry it out".

A generation moves ``queued -> running -> succeeded | failed | canceled``.

Exactly once: the move to ``running`` is a conditional UPDATE, so of two workers
handed the same row only one submits it; the prediction id is saved the moment the
provider answers, and a row that has one is resumed, never submitted again. A row
left ``running`` without a prediction id by a worker that died while submitting is
recovered by looking the prediction up at the provider (docs/exactly-once.md).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.files import File
from django.core.files.storage import Storage
from django.db import DatabaseError, IntegrityError, connections, models, transaction
from django.db.models import F
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.functional import LazyObject, empty

from .adapter import get_adapter
from .conf import app_settings
from .exceptions import (
    NanoBananaError,
    PredictionAborted,
    PredictionCanceled,
    PredictionFailed,
    ProviderTimeout,
    SubmissionUncertain,
    describe,
)
from .images import inspect
from .models import GeneratedImage
from .providers import GenerationRequest, Prediction, Provider, get_provider
from .providers.base import ABORTED, CANCELED, FAILED, SUCCEEDED
from .registry import ContentConfig, config_for_stored, get_config
from .signals import image_generated, image_generation_failed
from .specs import validate_input
from .storage import configured_storage

logger = logging.getLogger(__name__)

Status = GeneratedImage.Status


class AlreadyHasImage(NanoBananaError):
    """The object has an image and ``overwrite`` was not given; nothing was generated."""

    code = "already_has_image"


class GenerationInProgress(NanoBananaError):
    """The object already has a generation queued or running; nothing was added."""

    code = "in_progress"


class Interrupted(NanoBananaError):
    """A worker stopped while submitting, and the provider cannot tell what it made."""

    code = "interrupted"


class _Canceled(Exception):
    """The row was canceled while we waited: stop without touching it."""


# Public API ---------------------------------------------------------------------------


def generate_for(
    obj: models.Model,
    *,
    prompt: str | None = None,
    input: dict[str, Any] | None = None,
    overwrite: bool = False,
    provider: str | None = None,
) -> GeneratedImage:
    """Generate a header image for ``obj`` now, in this process, and attach it.

    ``obj`` must belong to a model registered in ``NANOBANANA["MODELS"]``. The prompt
    is built from its title and topic unless given. Raises ``ValidationError`` for
    bad input, :class:`AlreadyHasImage` when ``obj`` has an image and ``overwrite`` is
    false, and :class:`GenerationInProgress` when one is already under way (all
    before anything is sent). Provider failures do not raise: they end as a
    ``failed`` row whose ``error_message`` says what happened.
    """
    row = create_generation(obj, prompt=prompt, input=input, overwrite=overwrite, provider=provider)
    row = run_generation(row.pk)
    if row.status == Status.SUCCEEDED:
        obj.refresh_from_db(fields=[get_config(obj).image_field])
    return row


def generate_image(
    prompt: str,
    *,
    input: dict[str, Any] | None = None,
    provider: str | None = None,
) -> GeneratedImage:
    """Generate an image for a bare prompt now; the result is ``row.image``."""
    row = create_generation(None, prompt=prompt, input=input, provider=provider)
    return run_generation(row.pk)


def queue_generation(
    obj: models.Model | None,
    *,
    prompt: str | None = None,
    input: dict[str, Any] | None = None,
    overwrite: bool = False,
    provider: str | None = None,
    image_checked: bool = False,
) -> GeneratedImage:
    """Record a generation and run it in the background after the transaction commits.

    Takes the arguments of :func:`create_generation` and raises the same errors;
    returns the ``queued`` row. If the transaction rolls back, the row goes with it
    and nothing runs.
    """
    row = create_generation(
        obj,
        prompt=prompt,
        input=input,
        overwrite=overwrite,
        provider=provider,
        image_checked=image_checked,
    )
    transaction.on_commit(partial(_enqueue, row.pk))
    return row


def create_generation(
    obj: models.Model | None,
    *,
    prompt: str | None = None,
    input: dict[str, Any] | None = None,
    overwrite: bool = False,
    provider: str | None = None,
    image_checked: bool = False,
) -> GeneratedImage:
    """Validate a request and record it as a ``queued`` row; nothing is sent yet.

    Input is resolved from ``NANOBANANA["DEFAULT_INPUT"]``, the model's registration
    (through the adapter) and ``input``, in that order, then validated for the
    configured model. ``image_checked`` says the caller has just seen the object's
    image field empty in the database (the publish hook), saving a query.
    """
    provider_name = provider or app_settings.PROVIDER
    model_name = app_settings.MODEL
    params = dict(app_settings.DEFAULT_INPUT)
    config: ContentConfig | None = None
    if obj is not None:
        if obj.pk is None:
            raise ValueError("Save the object before generating an image for it.")
        config = get_config(obj)
        adapter = get_adapter()
        params.update(adapter.get_input(obj, config))
        if not overwrite and not image_checked and config.has_image(obj):
            raise AlreadyHasImage(
                f"{config.label} {obj.pk} already has an image in "
                f"{config.image_field!r}; pass overwrite=True to replace it."
            )
        if not connections[GeneratedImage.objects.db].features.supports_partial_indexes:
            _refuse_if_in_progress(obj, config)  # no constraint to rely on (MySQL)
        if prompt is None:
            prompt = adapter.build_prompt(obj, config)
    params.update(input or {})
    sent = validate_input(model_name, prompt, params)

    row = GeneratedImage(
        provider=provider_name,
        model_name=model_name,
        prompt=sent.pop("prompt"),
        input_params=sent,
        overwrite=overwrite,
    )
    if obj is not None and config is not None:
        row.content_object = obj
        row.target_field = config.image_field
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError:
        # The partial unique constraint: another request queued one a moment ago.
        if obj is not None and config is not None:
            _refuse_if_in_progress(obj, config)
        raise
    return row


def run_generation(
    image_id: int, *, provider: Provider | None = None, wait: bool = True
) -> GeneratedImage:
    """Carry out generation ``image_id``: submit or resume, then (``wait``) finish it.

    With ``wait=False`` (what background workers do) the call returns as soon as the
    provider has accepted the prediction; :func:`complete_generation`, called by the
    webhook or the poller, finishes it. A prediction that is done at once (the
    placeholder, a quick sync answer) is finished either way.

    Safe to call any number of times for one row (a redelivered task): see the
    module docstring. Returns the row as it ended (or as another worker has it).
    """
    row, step = _claim(image_id)
    if step is None:
        return row

    def work(provider: Provider) -> None:
        prediction = _start(row, provider, step)
        if prediction is None or not (wait or prediction.is_terminal):
            return
        _finish(row, provider, _wait(row, provider, prediction))

    return _carry_out(row, provider, work, sync=wait)


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

    return _carry_out(row, provider, work)


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
        _fail(row, exc)
        return row
    try:
        work(provider)
    except _Canceled:
        pass
    except DatabaseError:
        # Our own database failed us: the row stays resumable (it keeps its prediction
        # id) and the task fails, so that the task runner delivers it again.
        logger.exception("Generation %s: database error; it will resume when retried", row.pk)
        raise
    except Exception as exc:
        if not isinstance(exc, NanoBananaError):
            logger.exception("Generation %s failed unexpectedly", row.pk)
        _fail(row, exc)
    finally:
        if owns_provider:
            provider.close()
    row.refresh_from_db()
    return row


def cancel_generation(row: GeneratedImage) -> bool:
    """Cancel a queued or running generation, at the provider too.

    Returns False when it had already finished. A worker busy with it notices at its
    next poll and stops; a result arriving later is discarded, never attached.
    """
    canceled = GeneratedImage.objects.filter(pk=row.pk, status__in=Status.unfinished()).update(
        status=Status.CANCELED,
        finished_at=timezone.now(),
        error_code="canceled",
        error_message="Canceled before it finished.",
    )
    row.refresh_from_db()
    if canceled and row.prediction_id:
        try:
            with get_provider(row.provider) as provider:
                provider.cancel(row.prediction_id)
        except (NanoBananaError, ImproperlyConfigured) as exc:
            logger.warning("Generation %s: cancelling at the provider failed: %s", row.pk, exc)
    return bool(canceled)


def retry_generation(row: GeneratedImage, *, overwrite: bool | None = None) -> GeneratedImage:
    """Queue a new generation with ``row``'s prompt, inputs and object."""
    return queue_generation(
        row.content_object if row.content_type_id else None,
        prompt=row.prompt,
        input=dict(row.input_params),
        overwrite=row.overwrite if overwrite is None else overwrite,
    )


def attach(row: GeneratedImage, *, overwrite: bool | None = None) -> bool:
    """Point the content object's image field at ``row``'s image.

    Saves only that field. Returns False, changing nothing, when the object already
    has an image and ``overwrite`` (default: as requested for the row) is false.
    """
    if row.status != Status.SUCCEEDED or not row.image or row.content_type is None:
        raise ValueError(f"Generation {row.pk} has no image to attach.")
    overwrite = row.overwrite if overwrite is None else overwrite
    model = row.content_type.model_class()
    if model is None:
        raise ImproperlyConfigured(f"The model of generation {row.pk} is no longer installed.")
    config = config_for_stored(model)
    field_name = row.target_field or config.image_field
    model_field = model._meta.get_field(field_name)

    with transaction.atomic():
        obj = model._base_manager.select_for_update().filter(pk=row.object_id).first()
        if obj is None:
            logger.info("Generation %s: its %s was deleted; not attached", row.pk, config.label)
            return False
        current = getattr(obj, model_field.attname)
        if current and not overwrite:
            logger.info(
                "Generation %s: %s %s already has an image; not replaced",
                row.pk,
                config.label,
                obj.pk,
            )
            return False
        update_fields = [field_name]
        if isinstance(model_field, models.ForeignKey):
            setattr(obj, model_field.attname, row.pk)
        elif _same_storage(model_field.storage, configured_storage()):
            setattr(obj, field_name, row.image.name)
            update_fields += _dimension_fields(model_field, obj, row)
        else:
            # Different storages: the file must exist in the field's own storage.
            with row.image.open("rb") as source:
                getattr(obj, field_name).save(os.path.basename(row.image.name), source, save=False)
            update_fields += _dimension_fields(model_field, obj, row)
        obj.save(update_fields=update_fields)
    # The row's content_object is this object as saved: the image_generated signal
    # that follows gets it without reading it again.
    row._meta.get_field("content_object").set_cached_value(row, obj)
    return True


# Pipeline steps -------------------------------------------------------------------------

SUBMIT = "submit"
RESUME = "resume"
RECOVER = "recover"

LOOKUP_DELAYS = (0.5, 1.0, 2.0, 4.0)
"""Pauses between lookups of a create whose answer was lost: the provider's list may lag."""


def submit_window() -> timedelta:
    """The longest one create request can take; a claim older than this is orphaned."""
    seconds = app_settings.REPLICATE_WAIT + 2 * app_settings.HTTP_TIMEOUT + 30
    return timedelta(seconds=seconds)


def _claim(image_id: int) -> tuple[GeneratedImage, str | None]:
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
    if row.started_at and now - row.started_at > submit_window():
        taken = rows.filter(status=Status.RUNNING, prediction_id="", attempts=row.attempts).update(
            attempts=F("attempts") + 1
        )
        if taken:
            row.refresh_from_db()
            return row, RECOVER
    return row, None


def _request_for(row: GeneratedImage) -> GenerationRequest:
    return GenerationRequest(
        model=row.model_name,
        input={"prompt": row.prompt, **row.input_params},
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
    if step == RESUME:
        logger.info("Generation %s: resuming prediction %s", row.pk, row.prediction_id)
        return provider.fetch(row.prediction_id)
    if step == RECOVER:
        found = provider.find(request, created_after=row.started_at - timedelta(minutes=1))
        if found is NotImplemented:
            raise Interrupted(
                "The worker stopped while submitting this generation and the provider cannot "
                "list predictions, so it is unknown whether one was created. Check the "
                "provider's dashboard, then retry."
            )
        orphans = _orphans(found)
        if orphans:
            prediction = orphans[0]
            logger.info("Generation %s: recovered prediction %s", row.pk, prediction.id)
            return prediction if _record_prediction(row, prediction) else None
        logger.info("Generation %s: no prediction was created before; submitting", row.pk)
    try:
        prediction = provider.submit(request)
    except SubmissionUncertain as lost:
        prediction = _find_lost_create(row, provider, request, lost)
    if not _record_prediction(row, prediction):
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
    created_after = row.started_at - timedelta(minutes=1)
    for delay in (0.0, *LOOKUP_DELAYS):
        if delay:
            time.sleep(delay)
        try:
            found = provider.find(request, created_after=created_after)
        except NanoBananaError as exc:
            raise SubmissionUncertain(
                f"{lost.message} Looking for it in the provider's list failed too: {exc.message}"
            ) from None
        if found is NotImplemented:
            raise lost
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


def _record_prediction(row: GeneratedImage, prediction: Prediction) -> bool:
    """Save the prediction id, unless another worker has claimed the row since."""
    saved = GeneratedImage.objects.filter(
        pk=row.pk, status=Status.RUNNING, attempts=row.attempts
    ).update(prediction_id=prediction.id)
    row.prediction_id = prediction.id
    return bool(saved)


def _wait(row: GeneratedImage, provider: Provider, prediction: Prediction) -> Prediction:
    """Poll one prediction until it is done (the foreground path)."""
    while not prediction.is_terminal:
        if _was_canceled(row):
            provider.cancel(prediction.id)
            raise _Canceled
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
        if _was_canceled(row):
            raise _Canceled
        raise PredictionCanceled("The prediction was canceled at the provider before it finished.")
    if prediction.status == ABORTED:
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
    """Download, check and save the image, then mark the row done and attach it at once.

    One write transaction for the row and its object (the storing, succeeded and
    attached), so that on a shared database a finished image costs one commit.
    """
    with provider.open_output(prediction, max_bytes=app_settings.MAX_IMAGE_BYTES) as output:
        info = inspect(output, max_pixels=app_settings.MAX_IMAGE_PIXELS)
        row.image.save(f"image.{info.extension}", File(output), save=False)
    done = {
        "status": Status.SUCCEEDED,
        "image": row.image.name,
        "image_format": info.format,
        "width": info.width,
        "height": info.height,
        "size_bytes": info.size_bytes,
        "finished_at": timezone.now(),
        "error_code": "",
        "error_message": "",
    }
    if prediction.predict_time is not None:
        done["predict_time"] = prediction.predict_time
    attached = False
    try:
        # "succeeded" and "attached" are one step: never one without the other.
        with transaction.atomic():
            finished = GeneratedImage.objects.filter(pk=row.pk, status=Status.RUNNING).update(
                **done
            )
            if finished:
                for name, value in done.items():
                    setattr(row, name, value)
                attached = bool(row.content_type_id) and _attach_quietly(row)
    except DatabaseError:
        row.image.delete(save=False)
        raise
    if not finished:
        # Someone else finished or canceled this row meanwhile; keep theirs.
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
    sender, instance = _sender_of(row)
    image_generated.send(sender=sender, instance=instance, generated_image=row, attached=attached)


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


def _fail(row: GeneratedImage, exc: BaseException) -> None:
    fields = describe(exc)
    failed = GeneratedImage.objects.filter(pk=row.pk, status__in=Status.unfinished()).update(
        status=Status.FAILED, finished_at=timezone.now(), **fields
    )
    row.refresh_from_db()
    if not failed:
        return
    logger.warning("Generation %s failed (%s): %s", row.pk, row.error_code, row.error_message)
    sender, instance = _sender_of(row)
    image_generation_failed.send(sender=sender, instance=instance, generated_image=row)


def _enqueue(image_id: int) -> None:
    """Hand a committed row to the runner; a runner that refuses fails the row visibly."""
    from .tasks import enqueue

    try:
        enqueue(image_id)
    except Exception as exc:
        logger.exception("Generation %s could not be queued", image_id)
        row = GeneratedImage.objects.get(pk=image_id)
        reason = str(exc) if isinstance(exc, ImproperlyConfigured) else type(exc).__name__
        _fail(
            row,
            NanoBananaError(
                f"The generation could not be handed to the task runner "
                f"({app_settings.TASK_RUNNER}): {reason}. Check that the worker's broker is "
                "reachable, then retry.",
                code="enqueue_failed",
            ),
        )


# Helpers ----------------------------------------------------------------------------------


def _refuse_if_in_progress(obj: models.Model, config: ContentConfig) -> None:
    running = (
        GeneratedImage.objects.for_object(obj)
        .unfinished()
        .filter(target_field=config.image_field)
        .first()
    )
    if running is not None:
        raise GenerationInProgress(
            f"{config.label} {obj.pk} already has a generation {running.status} "
            f"(#{running.pk}); wait for it to finish or cancel it."
        )


def _was_canceled(row: GeneratedImage) -> bool:
    return GeneratedImage.objects.filter(pk=row.pk, status=Status.CANCELED).exists()


def _sender_of(row: GeneratedImage) -> tuple[type[models.Model], models.Model | None]:
    if row.content_type_id is None:
        return GeneratedImage, None
    model = row.content_type.model_class() or GeneratedImage
    return model, row.content_object


def _title_for(row: GeneratedImage) -> str:
    obj = row.content_object if row.content_type_id else None
    if obj is None:
        return ""
    try:
        return config_for_stored(type(obj)).title_of(obj)
    except ImproperlyConfigured:
        return ""


def _unwrap(storage: Any) -> Any:
    if isinstance(storage, LazyObject):
        if storage._wrapped is empty:
            storage._setup()
        return storage._wrapped
    return storage


def _same_storage(a: Storage, b: Storage) -> bool:
    a, b = _unwrap(a), _unwrap(b)
    if a is b:
        return True
    return (
        type(a) is type(b)
        and getattr(a, "location", object()) == getattr(b, "location", None)
        and getattr(a, "base_url", object()) == getattr(b, "base_url", None)
    )


def _dimension_fields(model_field: Any, obj: models.Model, row: GeneratedImage) -> list[str]:
    """Set an ImageField's width/height fields from what we measured."""
    names = []
    for attr, value in (("width_field", row.width), ("height_field", row.height)):
        name = getattr(model_field, attr, None)
        if name:
            setattr(obj, name, value)
            names.append(name)
    return names
