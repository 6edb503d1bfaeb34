"""The public Python API: generate, queue, cancel and retry header images.

``generate_for(article)`` and ``generate_image("a prompt")`` run a generation in the
foreground; ``queue_generation(article)`` records it and hands it to the task runner
once the transaction commits. ``create_generation`` + ``run_generation`` are the two
halves: "record the request" (here) and "carry it out" (:mod:`nanobanana_django.pipeline`).

Exactly once: one unfinished generation per object and image field (a partial unique
constraint), one claim per row, and a prediction id saved the moment the provider
answers (docs/exactly-once.md).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from functools import partial
from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import IntegrityError, connections, models, transaction

from . import grounding as grounding_
from .adapter import get_adapter
from .alttext import initial_alt_text
from .attach import attach
from .conf import app_settings
from .dispatcher import ensure_dispatcher, uses_dispatcher
from .edits import create_edit, edit_generation, thread_of
from .exceptions import AlreadyHasImage, GenerationInProgress, Interrupted, NanoBananaError
from .lifecycle import cancel as cancel_row
from .lifecycle import fail
from .models import GeneratedImage
from .pipeline import complete_generation, run_generation
from .presets import Preset, get_preset, get_presets
from .providers import get_provider, get_provider_config
from .references import for_retry as references_for_retry
from .references import resolve as resolve_references
from .registry import ContentConfig, get_config
from .review import (
    CannotReview,
    approve_generation,
    initial_review,
    record_use,
    reject_generation,
)
from .runners import IMMEDIATE, enqueue_generation
from .steps import clean_steps, get_steps, retry_step
from .variants import choose_variant, create_batch

__all__ = [
    "AlreadyHasImage",
    "CannotReview",
    "GenerationInProgress",
    "Interrupted",
    "approve_generation",
    "attach",
    "build_prompt",
    "cancel_generation",
    "choose_variant",
    "complete_generation",
    "create_edit",
    "create_generation",
    "edit_generation",
    "generate_for",
    "generate_image",
    "generate_variants",
    "queue_edit",
    "queue_generation",
    "queue_variants",
    "reject_generation",
    "retry_generation",
    "run_generation",
    "thread_of",
    "use_generation",
]

logger = logging.getLogger(__name__)

Status = GeneratedImage.Status


def generate_for(
    obj: models.Model,
    *,
    prompt: str | None = None,
    input: dict[str, Any] | None = None,
    overwrite: bool = False,
    provider: str | None = None,
    preset: str | None = None,
    grounding: str | None = None,
    references: Any = None,
    steps: list[str] | None = None,
) -> GeneratedImage:
    """Generate a header image for ``obj`` now, in this process, and attach it.

    ``obj`` must belong to a model registered in ``NANOBANANA["MODELS"]``. The prompt
    is built from its title and topic unless given; ``preset`` names a preset
    (default: the model's); ``references`` adds reference images (docs/references.md);
    ``steps`` names post-processing steps (default: the preset's), run here too: the last
    step's row is returned. Raises ``ValidationError`` for
    bad input, :class:`AlreadyHasImage` when ``obj`` has an image and ``overwrite`` is
    false, and :class:`GenerationInProgress` when one is already under way (all
    before anything is sent). Provider failures do not raise: they end as a
    ``failed`` row whose ``error_message`` says what happened. For a model in approval
    mode the image is made but waits for an editor (:func:`approve_generation`).
    """
    row = create_generation(
        obj,
        prompt=prompt,
        input=input,
        overwrite=overwrite,
        provider=provider,
        preset=preset,
        grounding=grounding,
        references=references,
        steps=steps,
    )
    row = run_generation(row.pk)
    if row.status == Status.SUCCEEDED or row.kind == GeneratedImage.Kind.STEP:
        _show_attached_image(obj)  # a failed step may have attached the image before it
    return row


def _show_attached_image(obj: models.Model) -> None:
    """Load the attached image into the caller's ``obj``, with an ImageField's width and
    height fields, and without reading the file back to measure it (a download on S3)."""
    field: Any = obj._meta.get_field(get_config(obj).image_field)
    sizes = [
        name
        for name in (getattr(field, "width_field", None), getattr(field, "height_field", None))
        if name
    ]
    if not sizes:
        obj.refresh_from_db(fields=[field.name])
        return
    values = type(obj)._base_manager.filter(pk=obj.pk).values(field.attname, *sizes).first()
    if values is not None:
        obj.__dict__.update(values)  # not setattr: the field would open the file to measure it


def generate_image(
    prompt: str,
    *,
    input: dict[str, Any] | None = None,
    provider: str | None = None,
    preset: str | None = None,
    grounding: str | None = None,
    references: Any = None,
    steps: list[str] | None = None,
) -> GeneratedImage:
    """Generate an image for a bare prompt now; the result is ``row.image``.

    A ``preset`` gives its inputs; the prompt is sent as given, without its guidance.
    With ``steps`` (or the preset's) the last step's row is returned.
    """
    row = create_generation(
        None,
        prompt=prompt,
        input=input,
        provider=provider,
        preset=preset,
        grounding=grounding,
        references=references,
        steps=steps,
    )
    return run_generation(row.pk)


def queue_generation(
    obj: models.Model | None,
    *,
    prompt: str | None = None,
    input: dict[str, Any] | None = None,
    overwrite: bool = False,
    provider: str | None = None,
    preset: str | None = None,
    image_checked: bool = False,
    grounding: str | None = None,
    references: Any = None,
    steps: list[str] | None = None,
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
        preset=preset,
        image_checked=image_checked,
        grounding=grounding,
        references=references,
        steps=steps,
    )
    transaction.on_commit(partial(_enqueue, row.pk, row.provider))
    return row


def create_generation(
    obj: models.Model | None,
    *,
    prompt: str | None = None,
    input: dict[str, Any] | None = None,
    overwrite: bool = False,
    provider: str | None = None,
    preset: str | None = None,
    image_checked: bool = False,
    grounding: str | None = None,
    references: Any = None,
    batch: uuid.UUID | None = None,
    steps: list[str] | None = None,
) -> GeneratedImage:
    """Validate a request and record it as a ``queued`` row; nothing is sent yet.

    Input is resolved from ``NANOBANANA["DEFAULT_INPUT"]``, the model's default preset,
    the model's registration (through the adapter), the ``preset`` picked here and
    ``input``, in that order, then validated against the model of the provider that
    will receive it: ``provider`` (an alias), else the picked preset's, else the
    registration's, else its default preset's, else ``NANOBANANA["PROVIDER"]``. A
    preset the provider cannot honour is a ``ValidationError`` on ``preset``.
    ``image_checked`` says the caller has just seen the object's image field empty in
    the database (the publish hook), saving a query. ``grounding`` (``"web"``,
    ``"image"``, ``"off"``; default: as the presets and registration say) is a
    ``ValidationError`` on ``grounding`` where the model cannot ground
    (:mod:`nanobanana_django.grounding`). ``references`` (set names, images, or a list
    of them) and the set the picked preset, the registration or the default preset
    names are checked here and recorded on the row (:mod:`.references`). ``steps``
    (default: the active preset's) are recorded in ``next_steps``; an unknown or unusable
    one is a ``ValidationError`` on ``steps`` (docs/steps.md). ``batch`` makes the row a
    candidate of that batch (:func:`queue_variants`): it waits for an editor's pick.
    """
    grounding = grounding_.call_value(grounding)
    params = dict(app_settings.DEFAULT_INPUT)
    config: ContentConfig | None = None
    if obj is not None:
        if obj.pk is None:
            raise ValueError("Save the object before generating an image for it.")
        config = get_config(obj)
    picked, default = _presets_for(config, preset)
    active = picked or default
    route = get_provider_config(
        provider
        or (picked and picked.provider)
        or (config and config.provider)
        or (default and default.provider)
        or None
    )
    if active is not None:
        problem = active.problem_on(route)
        if problem:
            raise ValidationError({"preset": [problem]})
        if default is not None:
            params.update(default.input)
            params = grounding_.apply(params, default.grounding, route)
    if obj is not None and config is not None:
        adapter = get_adapter()
        params.update(adapter.get_input(obj, config))
        params = grounding_.apply(params, config.grounding, route)
        if not overwrite and not image_checked and config.has_image(obj):
            raise AlreadyHasImage(
                f"{config.label} {obj.pk} already has an image in "
                f"{config.image_field!r}; pass overwrite=True to replace it."
            )
        if not connections[GeneratedImage.objects.db].features.supports_partial_indexes:
            _refuse_if_in_progress(obj, config)  # no constraint to rely on (MySQL)
        if prompt is None:
            prompt = _build_prompt(obj, config, picked, default)
    if picked is not None:
        params.update(picked.input)
        params = grounding_.apply(params, picked.grounding, route)
    params.update(input or {})
    params = grounding_.apply(params, grounding, route)
    sent = route.validate(prompt, params)
    next_steps = clean_steps(steps if steps is not None else active.steps if active else None, sent)

    row = GeneratedImage(
        provider=route.alias,
        model_name=route.model,
        prompt=sent.pop("prompt"),
        input_params=sent,
        overwrite=overwrite,
        preset=active.name if active is not None else "",
        next_steps=next_steps,
    )
    row.alt_text = initial_alt_text(obj, config, row.prompt)
    if obj is not None and config is not None:
        row.content_object = obj
        row.target_field = config.image_field
        if batch is not None:
            row.kind, row.auto_attach, row.batch = str(GeneratedImage.Kind.VARIANT), False, batch
        row.review = initial_review(config, row)
    checked = resolve_references(
        references,
        default_set=_default_set(picked, config, default),
        spec=route.spec(),
        other_images=1 if row.parent_id and row.kind in (row.Kind.EDIT, row.Kind.STEP) else 0,
    )
    try:
        with transaction.atomic():
            row.reference_images = checked.save()
            row.save()
    except IntegrityError:
        checked.discard()
        # The partial unique constraint: another request queued one a moment ago.
        if obj is not None and config is not None:
            _refuse_if_in_progress(obj, config)
        raise
    return row


def queue_variants(
    obj: models.Model,
    n: int,
    *,
    prompt: str | None = None,
    input: dict[str, Any] | None = None,
    provider: str | None = None,
    preset: str | None = None,
    grounding: str | None = None,
    references: Any = None,
) -> list[GeneratedImage]:
    """Ask for ``n`` candidate images for ``obj``, made in the background: ``n``
    predictions, billed ``n`` times. None is attached; an editor picks one
    (:func:`choose_variant`). Takes the arguments of :func:`create_generation`; a bad
    ``n`` is a ``ValidationError`` on ``candidates`` (1 to ``MAX_VARIANTS``), and a batch
    still being made for ``obj`` raises :class:`GenerationInProgress`.
    """
    rows = _create_variants(
        obj,
        n,
        prompt=prompt,
        input=input,
        provider=provider,
        preset=preset,
        grounding=grounding,
        references=references,
    )
    for row in rows:
        transaction.on_commit(partial(_enqueue, row.pk, row.provider))
    return rows


def generate_variants(
    obj: models.Model,
    n: int,
    *,
    prompt: str | None = None,
    input: dict[str, Any] | None = None,
    provider: str | None = None,
    preset: str | None = None,
    grounding: str | None = None,
    references: Any = None,
) -> list[GeneratedImage]:
    """:func:`queue_variants`, made now in this process, one after the other; returns the
    finished rows. A failure (a budget reached, say) ends on its own row only."""
    rows = _create_variants(
        obj,
        n,
        prompt=prompt,
        input=input,
        provider=provider,
        preset=preset,
        grounding=grounding,
        references=references,
    )
    return [run_generation(row.pk) for row in rows]


def _create_variants(obj: models.Model, n: int, **request: Any) -> list[GeneratedImage]:
    """Record the candidate rows; each may replace the object's image once picked."""
    return create_batch(
        obj, n, lambda batch: create_generation(obj, overwrite=True, batch=batch, **request)
    )


def _default_set(
    picked: Preset | None, config: ContentConfig | None, default: Preset | None
) -> tuple[str, str] | None:
    """The reference set sent unless the call names one, and who named it."""
    if picked is not None and picked.references:
        return picked.references, f"the preset {picked.name!r}"
    if config is not None and config.references:
        return config.references, f"NANOBANANA['MODELS'][{config.label!r}]['references']"
    if default is not None and default.references:
        return default.references, f"the preset {default.name!r}"
    return None


def build_prompt(obj: models.Model, *, preset: str | None = None) -> str:
    """The prompt a generation for ``obj`` would be sent (default: the model's preset)."""
    config = get_config(obj)
    picked, default = _presets_for(config, preset)
    return _build_prompt(obj, config, picked, default)


def _presets_for(
    config: ContentConfig | None, name: str | None
) -> tuple[Preset | None, Preset | None]:
    """(the preset picked for this call, the model's default preset).

    Picking the model's default preset is the same as picking none: it keeps its place
    below the registration's ``input``.
    """
    default = get_preset(config.preset) if config is not None and config.preset else None
    picked = get_preset(name) if name else None
    if picked is not None and default is not None and picked.name == default.name:
        picked = None
    return picked, default


def _build_prompt(
    obj: models.Model, config: ContentConfig, picked: Preset | None, default: Preset | None
) -> str:
    """The adapter's prompt, with the active preset's template and guidance.

    A picked preset's template beats the registration's; the model's default preset's
    template only stands in for a registration without one.
    """
    active = picked or default
    if (
        active is not None
        and active.prompt_template
        and (picked is not None or not config.prompt_template)
    ):
        config = replace(config, prompt_template=active.prompt_template)
    prompt = get_adapter().build_prompt(obj, config)
    return active.apply_guidance(prompt) if active is not None else prompt


def queue_edit(
    row: GeneratedImage,
    instruction: str,
    *,
    attach: bool = False,
    input: dict[str, Any] | None = None,
    requested_by: Any = None,
) -> GeneratedImage:
    """Record an edit of ``row`` (:func:`~nanobanana_django.edits.create_edit`) and run it
    in the background after the transaction commits; returns the ``queued`` child."""
    child = create_edit(row, instruction, attach=attach, input=input, requested_by=requested_by)
    transaction.on_commit(partial(_enqueue, child.pk, child.provider))
    return child


def use_generation(row: GeneratedImage) -> bool:
    """Attach ``row``'s image to its object, replacing the one it has: an editor's choice
    of an edit, a variant or an older version. Returns False when the object is gone.
    Using an image awaiting review approves it; using a candidate picks it."""
    used = attach(row, overwrite=True)
    if used:
        record_use(row)
    return used


def cancel_generation(row: GeneratedImage) -> bool:
    """Cancel a queued or running generation, at the provider too.

    Returns False when it had already finished. A worker busy with it notices at its
    next poll and stops; a result arriving later is discarded, never attached.
    """
    canceled = cancel_row(row)
    if canceled and row.prediction_id:
        try:
            with get_provider(row.provider) as provider:
                if provider.capabilities.cancel:
                    provider.cancel(row.prediction_id)
        except (NanoBananaError, ImproperlyConfigured) as exc:
            logger.warning("Generation %s: cancelling at the provider failed: %s", row.pk, exc)
    return canceled


def retry_generation(row: GeneratedImage, *, overwrite: bool | None = None) -> GeneratedImage:
    """Queue a new generation with ``row``'s prompt, inputs, preset, references, steps and
    object; a failed step is run again on the same image.

    A reference set is sent as it is now, so a retry after fixing a set uses the fix. A
    candidate's retry is one more candidate of its batch: it waits for the pick too.
    """
    if row.kind == GeneratedImage.Kind.STEP:
        return retry_step(row)
    obj = row.content_object if row.content_type_id else None
    preset = row.preset if row.preset in get_presets() else None  # kept unless removed
    if row.batch and obj is not None:
        again = create_generation(
            obj,
            prompt=row.prompt,
            input=dict(row.input_params),
            overwrite=True,
            preset=preset,
            references=references_for_retry(row),
            batch=row.batch,
        )
        transaction.on_commit(partial(_enqueue, again.pk, again.provider))
        return again
    return queue_generation(
        obj,
        prompt=row.prompt,
        input=dict(row.input_params),
        overwrite=row.overwrite if overwrite is None else overwrite,
        preset=preset,
        references=references_for_retry(row),
        steps=[name for name in row.next_steps if name in get_steps()],  # kept unless removed
    )


def _enqueue(image_id: int, alias: str = "") -> None:
    """Hand a committed row to the runner; a runner that refuses fails the row visibly.

    A provider with long calls (Gemini) needs no task per row: its dispatcher takes the
    queued rows itself, so only a dispatcher is made sure of (one task, not hundreds
    ahead of it in the broker).
    """
    try:
        if alias and app_settings.TASK_RUNNER != IMMEDIATE and _dispatched(alias):
            ensure_dispatcher(alias)
        else:
            enqueue_generation(image_id)
    except Exception as exc:
        logger.exception("Generation %s could not be queued", image_id)
        row = GeneratedImage.objects.get(pk=image_id)
        reason = str(exc) if isinstance(exc, ImproperlyConfigured) else type(exc).__name__
        fail(
            row,
            NanoBananaError(
                f"The generation could not be handed to the task runner "
                f"({app_settings.TASK_RUNNER}): {reason}. Check that the worker's broker is "
                "reachable, then retry.",
                code="enqueue_failed",
            ),
        )


def _dispatched(alias: str) -> bool:
    try:
        return uses_dispatcher(alias)
    except ImproperlyConfigured:
        return False  # the generation's own task fails the row with the reason


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
