"""What a model accepts (:class:`ModelSpec`), and local validation of inputs against it.

Each provider describes its own models (``Provider.spec()``); this module only checks.

Inputs are checked here before any request is made, so a typo in an aspect ratio is a
``ValidationError`` naming the field and the allowed values, never a billed call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from .exceptions import InvalidInput

MAX_PROMPT_LENGTH = 8000
"""Characters. Far above any useful header prompt, well below what the API rejects."""

MAX_INLINE_IMAGE_BYTES = 10 * 1024 * 1024
"""Total size of ``data:`` URIs in ``image_input`` (the official JS client's cap)."""


@dataclass(frozen=True)
class ModelSpec:
    """The inputs one model takes, their allowed values and defaults."""

    name: str
    choices: Mapping[str, tuple[str, ...]]
    defaults: Mapping[str, Any]
    booleans: tuple[str, ...] = ()
    max_image_inputs: int = 14
    #: Inputs we always send even when they equal the model's default (the documented
    #: default of ``aspect_ratio`` differs between copies of the model's schema).
    always_send: tuple[str, ...] = field(default=())
    #: False for routes that take images inline only: ``image_input`` must be data: URIs.
    image_urls: bool = True
    #: The most bytes of data: URIs one request may carry.
    max_inline_bytes: int = MAX_INLINE_IMAGE_BYTES
    #: The input that takes the images sent with the prompt (``GenerationRequest.images``);
    #: ``""`` for a model that takes none.
    image_input: str = "image_input"
    #: True when that input is one URI string (an upscaler's ``image``), not an array.
    single_image: bool = False

    @property
    def input_names(self) -> tuple[str, ...]:
        images = (self.image_input,) if self.image_input else ()
        return ("prompt", *images, *self.choices, *self.booleans)

    @property
    def image_limit(self) -> int:
        """How many images one request may send."""
        if not self.image_input:
            return 0
        return 1 if self.single_image else self.max_image_inputs


def validate(spec: ModelSpec, prompt: Any, params: Mapping[str, Any] | None = None) -> dict:
    """Return the full input to send to the model of ``spec``, or raise ``ValidationError``.

    The result has the prompt, every given parameter and the spec's defaults for
    the inputs it always sends; ``image_input`` is left out when empty.
    """
    errors: dict[str, list[str]] = {}
    params = dict(params or {})
    params.pop("prompt", None)

    if not isinstance(prompt, str) or not prompt.strip():
        errors["prompt"] = ["The prompt is empty. Give the image a description."]
    elif len(prompt) > MAX_PROMPT_LENGTH:
        errors["prompt"] = [
            f"The prompt has {len(prompt)} characters; the limit is {MAX_PROMPT_LENGTH}."
        ]

    unknown = sorted(set(params) - set(spec.input_names))
    for name in unknown:
        errors[name] = [
            f"{spec.name} has no input {name!r}. Its inputs are: {', '.join(spec.input_names)}."
        ]

    for name, allowed in spec.choices.items():
        if name in params and params[name] not in allowed:
            listed = ", ".join(map(str, allowed))  # a step model's choices may be numbers
            errors[name] = [f"{params[name]!r} is not allowed for {name}. Choose one of: {listed}."]

    for name in spec.booleans:
        if name in params and not isinstance(params[name], bool):
            errors[name] = [f"{name} must be true or false, not {params[name]!r}."]

    if spec.image_input and spec.image_input in params:
        value = params[spec.image_input]
        if not spec.single_image:
            problem = _check_image_input(value, spec)
        elif isinstance(value, str):
            problem = _check_image_input([value], spec)
        else:
            problem = f"{spec.image_input} must be one image URL or data: URI."
        if problem:
            errors[spec.image_input] = [problem]

    if errors:
        raise ValidationError(errors)

    result: dict[str, Any] = {"prompt": prompt.strip()}
    for name in spec.always_send:
        result[name] = spec.defaults[name]
    result.update(params)
    if spec.image_input and not result.get(spec.image_input):
        result.pop(spec.image_input, None)
    return result


def check_image_count(spec: ModelSpec, count: int) -> None:
    """Refuse more images than the model of ``spec`` takes, before anything is sent."""
    if count <= spec.image_limit:
        return
    if not spec.image_limit:
        raise InvalidInput(
            f"{spec.name} takes no images, but this generation sends {count} (an edited "
            "image or reference images). Use a model that takes images, such as "
            "google/nano-banana-2, or leave the images out.",
            code="images_not_supported",
        )
    raise InvalidInput(
        f"This generation sends {count} images (the edited image and reference images "
        f"together); {spec.name} takes at most {spec.image_limit}. Remove "
        f"{count - spec.image_limit} of them and retry.",
        code="too_many_images",
    )


def _check_image_input(value: Any, spec: ModelSpec) -> str | None:
    kinds = "image URLs or data: URIs" if spec.image_urls else "data: URIs (images inline)"
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        return f"{spec.image_input} must be a list of {kinds}."
    if len(value) > spec.image_limit:
        return (
            f"{spec.image_input} has {len(value)} images; the model takes at most "
            f"{spec.image_limit}."
        )
    schemes = ("https://", "http://", "data:") if spec.image_urls else ("data:",)
    inline = 0
    for position, item in enumerate(value, start=1):
        if not isinstance(item, str) or not item.startswith(schemes):
            return f"{spec.image_input} item {position} must be one of the {kinds}."
        if item.startswith("data:"):
            inline += len(item)
    if inline > spec.max_inline_bytes:
        advice = (
            "Host the images and pass their URLs instead."
            if spec.image_urls
            else ("Send fewer or smaller images.")
        )
        return (
            f"{spec.image_input} carries {inline} bytes of data: URIs; the limit is "
            f"{spec.max_inline_bytes}. {advice}"
        )
    return None
