"""The generation pipeline and its public Python API.

``generate_for(article)`` and ``generate_image("a prompt")`` run a generation in the
foreground; ``create_generation`` + ``run_generation`` split it into "record the
request" and "carry it out" so that a worker can do the second half.

A generation moves ``queued -> running -> succeeded | failed | canceled``. The move
to ``running`` is a conditional UPDATE, so of two workers handed the same row only
one submits it to the provider; the prediction id is saved as soon as the provider
answers, and a row that has one is resumed, never submitted again.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.files import File
from django.core.files.storage import Storage
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.functional import LazyObject, empty

from .conf import app_settings
from .exceptions import (
    NanoBananaError,
    PredictionAborted,
    PredictionCanceled,
    PredictionFailed,
    ProviderTimeout,
    describe,
)
from .images import inspect
from .models import GeneratedImage
from .providers import GenerationRequest, Prediction, Provider, get_provider
from .providers.base import ABORTED, CANCELED, FAILED
from .registry import ContentConfig, get_config
from .specs import validate_input
from .storage import configured_storage

logger = logging.getLogger(__name__)

Status = GeneratedImage.Status


class AlreadyHasImage(NanoBananaError):
    """The object has an image and ``overwrite`` was not given; nothing was generated."""

    code = "already_has_image"


# Public API ---------------------------------------------------------------------------


def generate_for(
    obj: models.Model,
    *,
    prompt: str | None = None,
    input: dict[str, Any] | None = None,
    overwrite: bool = False,
    provider: str | None = None,
) -> GeneratedImage:
    """Generate a header image for ``obj`` now and attach it.

    ``obj`` must belong to a model registered in ``NANOBANANA["MODELS"]``. The prompt
    is built from its title and topic unless given. Raises ``ValidationError`` for
    bad input and :class:`AlreadyHasImage` when ``obj`` has an image and
    ``overwrite`` is false (both before anything is sent). Provider failures do not
    raise: they end as a ``failed`` row whose ``error_message`` says what happened.
    """
    row = create_generation(obj, prompt=prompt, input=input, overwrite=overwrite, provider=provider)
    row = run_generation(row.pk)
    config = get_config(obj)
    if row.status == Status.SUCCEEDED:
        obj.refresh_from_db(fields=[config.image_field])
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


def create_generation(
    obj: models.Model | None,
    *,
    prompt: str | None = None,
    input: dict[str, Any] | None = None,
    overwrite: bool = False,
    provider: str | None = None,
) -> GeneratedImage:
    """Validate a request and record it as a ``queued`` row; nothing is sent yet.

    Input is resolved from ``NANOBANANA["DEFAULT_INPUT"]``, the model's registration
    and ``input``, in that order, then validated for the configured model.
    """
    provider_name = provider or app_settings.PROVIDER
    model_name = app_settings.MODEL
    params = dict(app_settings.DEFAULT_INPUT)
    config: ContentConfig | None = None
    if obj is not None:
        if obj.pk is None:
            raise ValueError("Save the object before generating an image for it.")
        config = get_config(obj)
        params.update(config.input)
        if not overwrite and config.has_image(obj):
            raise AlreadyHasImage(
                f"{config.label} {obj.pk} already has an image in "
                f"{config.image_field!r}; pass overwrite=True to replace it."
            )
        if prompt is None:
            prompt = config.build_prompt(obj)
    params.update(input or {})
    sent = validate_input(model_name, prompt, params)
    prompt_text = sent.pop("prompt")

    row = GeneratedImage(
        provider=provider_name,
        model_name=model_name,
        prompt=prompt_text,
        input_params=sent,
        overwrite=overwrite,
    )
    if obj is not None and config is not None:
        row.content_object = obj
        row.target_field = config.image_field
    row.save()
    return row


def run_generation(image_id: int, *, provider: Provider | None = None) -> GeneratedImage:
    """Carry out generation ``image_id``: submit or resume, wait, store, attach.

    Safe to call twice for one row (a redelivered task): only the caller whose
    conditional update moved it from ``queued`` submits it; a row that already has
    a prediction id is resumed from it; a finished row is returned as it is.
    """
    claimed = GeneratedImage.objects.filter(pk=image_id, status=Status.QUEUED).update(
        status=Status.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1
    )
    row = GeneratedImage.objects.get(pk=image_id)
    if not claimed and not (row.status == Status.RUNNING and row.prediction_id):
        return row

    owns_provider = provider is None
    try:
        provider = provider or get_provider(row.provider)
    except (ImproperlyConfigured, NanoBananaError) as exc:
        _fail(row, exc)
        return row
    try:
        prediction = _submit_or_resume(row, provider)
        prediction = _wait(row, provider, prediction)
        _store(row, provider, prediction)
    except Exception as exc:
        if not isinstance(exc, NanoBananaError):
            logger.exception("Generation %s failed unexpectedly", row.pk)
        _fail(row, exc)
    finally:
        if owns_provider:
            provider.close()
    return row


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
    config = get_config(model)
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
    return True


# Pipeline steps -------------------------------------------------------------------------


def _submit_or_resume(row: GeneratedImage, provider: Provider) -> Prediction:
    if row.prediction_id:
        logger.info("Generation %s: resuming prediction %s", row.pk, row.prediction_id)
        return provider.fetch(row.prediction_id)
    request = GenerationRequest(
        model=row.model_name,
        input={"prompt": row.prompt, **row.input_params},
        title=_title_for(row),
    )
    prediction = provider.submit(request)
    row.record(prediction_id=prediction.id)
    return prediction


def _wait(row: GeneratedImage, provider: Provider, prediction: Prediction) -> Prediction:
    started = time.monotonic()
    timeout = app_settings.GENERATION_TIMEOUT
    while not prediction.is_terminal:
        if time.monotonic() - started > timeout:
            try:
                provider.cancel(prediction.id)
            except NanoBananaError:
                logger.warning("Generation %s: cancelling after the timeout failed", row.pk)
            raise ProviderTimeout(
                f"No result after {timeout:g} s (NANOBANANA['GENERATION_TIMEOUT']); the "
                "prediction was canceled."
            )
        time.sleep(app_settings.POLL_INTERVAL)
        prediction = provider.fetch(prediction.id)
    if prediction.predict_time is not None:
        row.record(predict_time=prediction.predict_time)
    if prediction.status == FAILED:
        reason = prediction.error or "no reason given"
        raise PredictionFailed(
            f"The model could not make this image: {reason}. Change the prompt and retry."
        )
    if prediction.status == CANCELED:
        raise PredictionCanceled("The prediction was canceled at the provider before it finished.")
    if prediction.status == ABORTED:
        raise PredictionAborted(
            "The prediction's deadline (NANOBANANA['CANCEL_AFTER']) passed before it "
            "started, so it never ran and was not billed. Retry, or allow a longer deadline."
        )
    return prediction


def _store(row: GeneratedImage, provider: Provider, prediction: Prediction) -> None:
    with provider.open_output(prediction, max_bytes=app_settings.MAX_IMAGE_BYTES) as output:
        info = inspect(output, max_pixels=app_settings.MAX_IMAGE_PIXELS)
        row.image.save(f"image.{info.extension}", File(output), save=False)
    finished = GeneratedImage.objects.filter(pk=row.pk, status=Status.RUNNING).update(
        status=Status.SUCCEEDED,
        image=row.image.name,
        image_format=info.format,
        width=info.width,
        height=info.height,
        size_bytes=info.size_bytes,
        finished_at=timezone.now(),
        error_code="",
        error_message="",
    )
    if not finished:
        # Someone else finished or canceled this row meanwhile; keep theirs.
        row.image.delete(save=False)
        row.refresh_from_db()
        return
    row.refresh_from_db()
    logger.info(
        "Generation %s succeeded: %s %dx%d, %d bytes",
        row.pk,
        info.format,
        info.width,
        info.height,
        info.size_bytes,
    )
    if row.content_type_id:
        attach(row)


def _fail(row: GeneratedImage, exc: BaseException) -> None:
    fields = describe(exc)
    GeneratedImage.objects.filter(pk=row.pk, status__in=Status.unfinished()).update(
        status=Status.FAILED, finished_at=timezone.now(), **fields
    )
    row.refresh_from_db()
    logger.warning("Generation %s failed (%s): %s", row.pk, row.error_code, row.error_message)


# Helpers ----------------------------------------------------------------------------------


def _title_for(row: GeneratedImage) -> str:
    obj = row.content_object if row.content_type_id else None
    if obj is None:
        return ""
    try:
        return get_config(obj).title_of(obj)
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
