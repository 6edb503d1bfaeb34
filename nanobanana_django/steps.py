"""Post-processing steps: a model run on a generated image (an upscale), each its own row.

A generation asked for with steps (``generate_for(article, steps=["upscale"])`` or a preset's
``steps``) records them in ``next_steps``. When it succeeds, its image is not attached: in
the same transaction a STEP row is created (``kind="step"``, ``parent`` = that row, ``step``
= the name, ``next_steps`` = the rest), which is then run in the foreground when the first
was, else queued. The last step's image is attached. Each row is billed, timed and fails
on its own; a failing step attaches the image before it instead (if the chain would have
attached one) and says so in its message. docs/steps.md tells the whole story.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.signals import setting_changed
from django.db import DatabaseError, IntegrityError, transaction
from django.dispatch import receiver

from .attach import attach
from .conf import app_settings
from .dimensions import image_size
from .exceptions import GenerationInProgress, NanoBananaError
from .lifecycle import fail
from .models import GeneratedImage
from .providers.config import ProviderConfig, get_provider_config
from .providers.replicate_models import REPLICATE_STEP_MODELS, UPSCALER
from .runners import enqueue_generation
from .signals import image_generation_failed
from .specs import validate

logger = logging.getLogger(__name__)

Kind = GeneratedImage.Kind
Status = GeneratedImage.Status

MAX_NAME_LENGTH = 50
"""``GeneratedImage.step`` holds the name."""

BUILTIN_STEPS: dict[str, dict[str, Any]] = {
    "upscale": {
        "label": "Upscale (2x)",
        "provider": "replicate",
        "model": UPSCALER,
        "input": {"scale": 2},
    },
}


@dataclass(frozen=True)
class Step:
    """One configured step: which provider alias and model run it, with which input."""

    name: str
    label: str
    #: The provider alias that runs it.
    provider: str
    #: The model id; for a Replicate-type alias any model, else the alias's own model.
    model: str = ""
    input: Mapping[str, Any] = field(default_factory=dict)
    #: The model input that takes the image (Replicate step models).
    image_input: str = ""
    #: An instruction sent with the image, for models that take a prompt (Gemini).
    prompt: str = ""

    def route(self) -> ProviderConfig:
        return get_provider_config(self.provider)

    def model_on(self, route: ProviderConfig) -> str:
        return self.model if _is_replicate(route) and self.model else route.model

    def problem(self) -> str | None:
        """Why this step cannot run as configured, with the fix, or ``None``."""
        where = f"NANOBANANA['STEPS'][{self.name!r}]"
        try:
            route = self.route()
        except ImproperlyConfigured as exc:
            return f"{where}['provider']: {exc}"
        if _is_replicate(route):
            spec = REPLICATE_STEP_MODELS.get(self.model)
            if spec is None and not self.image_input:
                known = ", ".join(sorted(REPLICATE_STEP_MODELS))
                return (
                    f"{where}: the model {self.model!r} is not one whose inputs this app knows "
                    f"({known}). Give its 'image_input' (the input that takes the image) and "
                    "its 'input' as the model's page lists them."
                )
            if spec is not None:
                try:
                    validate(spec, "-", dict(self.input))
                except ValidationError as exc:
                    return f"{where}['input'] is not valid for {self.model}: {_details(exc)}"
            return None
        if not route.backend.capabilities.image_inputs:
            return (
                f"{where}: the provider {route.alias!r} ({route.backend.__name__}) takes no "
                "images, so it cannot run a step on one. Name a Replicate alias, or a provider "
                "whose model takes an image, in 'provider'."
            )
        if not self.prompt:
            return (
                f"{where}: the provider {route.alias!r} is driven by a prompt; give the step a "
                "'prompt' saying what to do with the image (e.g. 'Upscale this image')."
            )
        try:
            route.validate(self.prompt, dict(self.input))
        except ValidationError as exc:
            return f"{where}['input'] is not valid for {route.model}: {_details(exc)}"
        return None


def get_steps() -> dict[str, Step]:
    """Every step by name: the built-in ``upscale``, then the site's."""
    return _steps()


def get_step(name: str) -> Step:
    steps = _steps()
    if name not in steps:
        raise ValidationError({"steps": [unknown_step(name)]})
    return steps[name]


def unknown_step(name: Any) -> str:
    return (
        f"There is no step {name!r}. Use one of {', '.join(map(repr, _steps()))}, or add "
        f"{name!r} to NANOBANANA['STEPS'] (docs/steps.md)."
    )


def clean_steps(names: Iterable[str] | None, params: Mapping[str, Any] | None = None) -> list[str]:
    """The step names to record, or ``ValidationError`` on ``steps`` naming the fix.

    With the first image's ``params``, a chain whose image would grow past
    ``MAX_IMAGE_PIXELS`` is refused too: it would be billed, then refused when stored.
    """
    if names is None:
        return []
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ValidationError({"steps": ["Give a list of step names, e.g. ['upscale']."]})
    cleaned = list(names)
    for name in cleaned:
        problem = get_step(name).problem()
        if problem:
            raise ValidationError({"steps": [problem]})
    problem = _too_large(cleaned, params or {})
    if problem:
        raise ValidationError({"steps": [problem]})
    return cleaned


def _too_large(names: list[str], params: Mapping[str, Any]) -> str | None:
    """Why the chain's last image would pass ``MAX_IMAGE_PIXELS``, if it would."""
    try:
        width, height = image_size(
            str(params.get("aspect_ratio") or "1:1"), str(params.get("resolution") or "1K")
        )
    except ValueError:
        return None  # a size we cannot foresee: the store step checks it
    for name in names:
        scale = get_step(name).input.get("scale")
        if isinstance(scale, (int, float)) and not isinstance(scale, bool) and scale > 0:
            width, height = int(width * scale), int(height * scale)
            if width * height > app_settings.MAX_IMAGE_PIXELS:
                return (
                    f"The {name} step would make a {width}x{height} image "
                    f"({width * height / 1e6:.1f} megapixels), more than "
                    f"NANOBANANA['MAX_IMAGE_PIXELS'] ({app_settings.MAX_IMAGE_PIXELS / 1e6:g} "
                    "megapixels) allows, so it would be billed and then refused. Ask for a "
                    "lower resolution, or a step with a smaller 'scale', or raise the cap."
                )
    return None


def request_input(row: GeneratedImage) -> dict[str, Any]:
    """The model input of a STEP row: its recorded input, with its prompt only if it has one
    (an upscaler takes none); the image travels in ``GenerationRequest.images``."""
    if row.prompt:
        return {"prompt": row.prompt, **row.input_params}
    return dict(row.input_params)


# The run --------------------------------------------------------------------------------------


def start_next(row: GeneratedImage) -> GeneratedImage | None:
    """Create the STEP row that continues ``row`` (just succeeded), in the caller's transaction.

    Returns ``None`` when the step cannot be created (it was removed from the settings, or
    its provider is misconfigured): a failed STEP row then says why, and the caller attaches
    ``row``'s image as if it had no steps.
    """
    name, rest = row.next_steps[0], list(row.next_steps[1:])
    child = GeneratedImage(
        kind=str(Kind.STEP),
        parent=row,
        step=name[:MAX_NAME_LENGTH],
        next_steps=rest,
        provider=row.provider,
        model_name=row.model_name,
        prompt="",
        content_type_id=row.content_type_id,
        object_id=row.object_id,
        target_field=row.target_field,
        overwrite=row.overwrite,
        preset=row.preset,
        auto_attach=row.auto_attach,
        review=row.review,
        requested_by_id=row.requested_by_id,
    )
    try:
        step = get_step(name)
        problem = step.problem()
        if problem:
            raise ImproperlyConfigured(problem)
        route = step.route()
        child.provider = route.alias
        child.model_name = step.model_on(route)
        child.prompt = step.prompt
        child.input_params = dict(step.input)
        with transaction.atomic():
            child.save()
        return child
    except DatabaseError as exc:
        if not isinstance(exc, IntegrityError):
            raise
        reason = "another generation for this object was started meanwhile"
    except (ImproperlyConfigured, ValidationError) as exc:
        reason = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
    logger.warning("Generation %s: step %r not started: %s", row.pk, name, reason)
    child.pk = None
    child.auto_attach = False  # never counts as this object's generation in flight
    child.status = str(Status.FAILED)
    child.error_code = "step_not_started"
    child.error_message = (
        f"The {name} step could not start: {reason.rstrip('.')}. The image #{row.pk} it was "
        "to run on is used as if the generation had no steps."
    )
    child.save()
    return None


def queued_step_of(row: GeneratedImage) -> GeneratedImage | None:
    """The STEP row waiting to continue ``row``, if any."""
    if row.status != Status.SUCCEEDED or not row.next_steps:
        return None
    return row.children.filter(kind=Kind.STEP, status=Status.QUEUED).order_by("pk").first()


def queue_step(row: GeneratedImage) -> None:
    """Hand a STEP row to the task runner once the transaction commits.

    A worker dying between the parent's success and this hand-over leaves the STEP row
    queued; the watchdog hands such rows out again (``poller.requeue_lost``).
    """
    transaction.on_commit(partial(_hand_over, row.pk))


def _hand_over(image_id: int) -> None:
    try:
        enqueue_generation(image_id)
    except Exception as exc:
        logger.exception("Step %s could not be queued", image_id)
        reason = str(exc) if isinstance(exc, ImproperlyConfigured) else type(exc).__name__
        fail(
            GeneratedImage.objects.get(pk=image_id),
            NanoBananaError(
                f"The step could not be handed to the task runner ({app_settings.TASK_RUNNER}): "
                f"{reason}. Check that the worker's broker is reachable, then retry.",
                code="enqueue_failed",
            ),
        )


def retry_step(row: GeneratedImage) -> GeneratedImage:
    """Queue the step of STEP row ``row`` again on the same parent image.

    It may replace the object's image: after a failed step that is the parent's, attached
    in its place.
    """
    parent = row.parent
    if parent is None or parent.status != Status.SUCCEEDED or not parent.image:
        raise ValidationError(
            {"parent": ["The image this step ran on is gone; generate a new image instead."]}
        )
    step = get_step(row.step)
    problem = step.problem()
    if problem:
        raise ValidationError({"steps": [problem]})
    route = step.route()
    retry = GeneratedImage(
        kind=str(Kind.STEP),
        parent=parent,
        step=row.step,
        next_steps=list(row.next_steps),
        provider=route.alias,
        model_name=step.model_on(route),
        prompt=step.prompt,
        input_params=dict(step.input),
        content_type_id=row.content_type_id,
        object_id=row.object_id,
        target_field=row.target_field,
        overwrite=row.overwrite or row.auto_attach,
        preset=row.preset,
        auto_attach=row.auto_attach,
        review=row.review,
    )
    try:
        with transaction.atomic():
            retry.save()
    except IntegrityError:
        raise GenerationInProgress(
            f"The object of step {row.pk} already has a generation queued or running; wait for "
            "it to finish or cancel it, then retry the step."
        ) from None
    queue_step(retry)
    return retry


@receiver(image_generation_failed, dispatch_uid="nanobanana_step_fallback")
def _fall_back(sender: Any, generated_image: GeneratedImage, **kwargs: Any) -> None:
    """A step failed: attach the image before it, if the chain would have attached one, and
    say in the step's message what became of it. The steps after it do not run."""
    row = generated_image
    if row.kind != Kind.STEP or not row.parent_id:
        return
    parent = row.parent
    if parent is None or parent.status != Status.SUCCEEDED or not parent.image:
        return
    attached = False
    if row.attaches_when_done:
        try:
            attached = attach(parent, overwrite=row.overwrite)
        except DatabaseError:
            raise
        except Exception:
            logger.exception(
                "Step %s failed; attaching its parent %s failed too", row.pk, parent.pk
            )
    reason = (row.error_message or "no reason given").rstrip(". ")
    message = f"The {row.step} failed: {reason}; {_fallback_sentence(parent, will_attach=attached)}"
    GeneratedImage.objects.filter(pk=row.pk).update(error_message=message)
    row.error_message = message


def _fallback_sentence(parent: GeneratedImage, *, will_attach: bool) -> str:
    what = "generated" if parent.kind != Kind.STEP else "previous"
    if will_attach:
        return f"the {what} image #{parent.pk} was attached instead."
    return f"the {what} image #{parent.pk} is kept: use it from its page."


# Configuration ----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _steps() -> dict[str, Step]:
    declared = {name: dict(entry) for name, entry in BUILTIN_STEPS.items()}
    for name, entry in app_settings.STEPS.items():
        declared[name] = {**declared.get(name, {}), **entry}
    return {name: _build(name, entry) for name, entry in declared.items()}


@receiver(setting_changed)
def _forget_steps(setting: str, **kwargs: Any) -> None:
    if setting == "NANOBANANA":
        _steps.cache_clear()


def _build(name: str, entry: dict[str, Any]) -> Step:
    model = entry.get("model") or ""
    return Step(
        name=name,
        label=entry.get("label") or name.replace("_", " ").capitalize(),
        provider=entry.get("provider") or "replicate",
        model=model,
        input=dict(entry.get("input") or {}),
        image_input=entry.get("image_input") or _image_input_of(model),
        prompt=" ".join((entry.get("prompt") or "").split()),
    )


def _image_input_of(model: str) -> str:
    spec = REPLICATE_STEP_MODELS.get(model)
    return spec.image_input if spec is not None else ""


def _is_replicate(route: ProviderConfig) -> bool:
    from .providers.replicate import ReplicateProvider

    return issubclass(route.backend, ReplicateProvider)


def _details(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return " ".join(f"{name}: {' '.join(errors)}" for name, errors in exc.message_dict.items())
    return " ".join(exc.messages)
