"""Conversational editing: change a finished image by instruction, one version at a time.

``edit_generation(row, "make the background a rooftop at sunset")`` records a child
generation (``kind="edit"``, ``parent=row``) whose prompt is the instruction and runs it:
the parent's stored image travels with the instruction
(:func:`nanobanana_django.image_inputs.images_for`), and a provider that keeps
conversation state (Gemini) gets the parent's turn replayed too. Edits of edits form a
chain; :func:`thread_of` returns it for the admin.

An edit never replaces the image its object shows until an editor chooses it
(``services.use_generation``), unless the call passes ``attach=True``.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from .exceptions import GenerationInProgress
from .models import GeneratedImage
from .pipeline import run_generation
from .providers import get_provider_config
from .review import config_of, initial_review

__all__ = ["create_edit", "edit_generation", "thread_of"]

Kind = GeneratedImage.Kind
Status = GeneratedImage.Status

MATCH_INPUT = "match_input_image"
#: Inputs of the parent not carried over: the edit works on the parent's image, not on
#: the images the parent was made from.
NOT_CARRIED = ("image_input",)


def edit_generation(
    row: GeneratedImage,
    instruction: str,
    *,
    attach: bool = False,
    input: dict[str, Any] | None = None,
) -> GeneratedImage:
    """Edit ``row``'s image now, in this process, and return the finished child.

    Raises the errors of :func:`create_edit` before anything is sent. Provider failures
    do not raise: they end as a ``failed`` child whose ``error_message`` says why.
    """
    child = create_edit(row, instruction, attach=attach, input=input)
    return run_generation(child.pk)


def create_edit(
    row: GeneratedImage,
    instruction: str,
    *,
    attach: bool = False,
    input: dict[str, Any] | None = None,
    requested_by: Any = None,
) -> GeneratedImage:
    """Validate an edit of ``row`` and record it as a ``queued`` child; nothing is sent.

    The child keeps the parent's object, field, provider alias and inputs (``input``
    overrides some); on a provider that takes images by URL (Replicate) its aspect ratio
    follows the parent's image (``match_input_image``). ``attach=True`` makes it replace
    the object's image when done. Raises ``ValidationError`` on ``instruction`` for an
    empty one, ``ValueError`` for a parent without a stored image or on a provider that
    takes no images, and :class:`GenerationInProgress` when ``attach`` is asked while
    another attaching generation of the object is under way.
    """
    instruction = (instruction or "").strip() if isinstance(instruction, str) else ""
    if not instruction:
        raise ValidationError(
            {"instruction": ["Say what to change, e.g. “make the background a rooftop at sunset”."]}
        )
    if row.status != Status.SUCCEEDED or not row.image:
        raise ValueError(
            f"Generation {row.pk} is {row.status} and has no image to edit; edit a version "
            "that succeeded."
        )
    if not row.image.storage.exists(row.image.name or ""):
        raise ValueError(
            f"The image of generation {row.pk} ({row.image.name}) is no longer in storage, so "
            "there is nothing to edit; edit another version or generate a new image."
        )
    route = get_provider_config(row.provider)
    takes_images = route.backend.capabilities.image_inputs
    if not takes_images and not route.backend.is_placeholder:
        raise ValueError(
            f"The provider {route.alias!r} that made generation {row.pk} takes no images, so "
            "it cannot edit one. Generate the image with a provider that does (replicate or "
            "gemini), then edit that."
        )
    params = {k: v for k, v in (row.input_params or {}).items() if k not in NOT_CARRIED}
    if takes_images == "url" and MATCH_INPUT in route.spec().choices.get("aspect_ratio", ()):
        params["aspect_ratio"] = MATCH_INPUT
    params.update(input or {})
    sent = route.validate(instruction, params)

    child = GeneratedImage(
        kind=str(GeneratedImage.Kind.EDIT),
        parent=row,
        provider=route.alias,
        model_name=route.model,
        prompt=sent.pop("prompt"),
        input_params=sent,
        preset=row.preset,
        content_type_id=row.content_type_id,
        object_id=row.object_id,
        target_field=row.target_field,
        auto_attach=attach,
        overwrite=attach,
        requested_by=requested_by,
    )
    child.review = initial_review(config_of(row), child)  # approval mode
    try:
        with transaction.atomic():
            child.save()
    except IntegrityError:
        # attach=True: the one-attaching-generation-per-object constraint applies.
        raise GenerationInProgress(
            f"The object of generation {row.pk} already has a generation queued or running "
            "that will attach its image; wait for it, or edit without attach=True."
        ) from None
    return child


def thread_of(row: GeneratedImage) -> list[GeneratedImage]:
    """Every version in ``row``'s chain: its first ancestor and all that descends from it,
    oldest first (each knows its ``parent_id``, so branches can be told apart)."""
    root = row
    seen = {row.pk}
    while root.parent_id and root.parent_id not in seen:
        parent = GeneratedImage.objects.filter(pk=root.parent_id).first()
        if parent is None:
            break
        seen.add(parent.pk)
        root = parent
    thread = [root]
    frontier = [root.pk]
    known = {root.pk}
    while frontier:
        children = [
            child
            for child in GeneratedImage.objects.filter(parent_id__in=frontier)
            if child.pk not in known
        ]
        known.update(child.pk for child in children)
        thread.extend(children)
        frontier = [child.pk for child in children]
    return sorted(thread, key=lambda version: (version.created_at, version.pk))
