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

    @property
    def input_names(self) -> tuple[str, ...]:
        return ("prompt", "image_input", *self.choices, *self.booleans)


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

    if "image_input" in params:
        problem = _check_image_input(params["image_input"], spec)
        if problem:
            errors["image_input"] = [problem]

    if errors:
        raise ValidationError(errors)

    result: dict[str, Any] = {"prompt": prompt.strip()}
    for name in spec.always_send:
        result[name] = spec.defaults[name]
    result.update(params)
    if not result.get("image_input"):
        result.pop("image_input", None)
    return result


def _check_image_input(value: Any, spec: ModelSpec) -> str | None:
    kinds = "image URLs or data: URIs" if spec.image_urls else "data: URIs (images inline)"
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        return f"image_input must be a list of {kinds}."
    if len(value) > spec.max_image_inputs:
        return (
            f"image_input has {len(value)} images; the model takes at most {spec.max_image_inputs}."
        )
    schemes = ("https://", "http://", "data:") if spec.image_urls else ("data:",)
    inline = 0
    for position, item in enumerate(value, start=1):
        if not isinstance(item, str) or not item.startswith(schemes):
            return f"image_input item {position} must be one of the {kinds}."
        if item.startswith("data:"):
            inline += len(item)
    if inline > spec.max_inline_bytes:
        advice = (
            "Host the images and pass their URLs instead."
            if spec.image_urls
            else ("Send fewer or smaller images.")
        )
        return (
            f"image_input carries {inline} bytes of data: URIs; the limit is "
            f"{spec.max_inline_bytes}. {advice}"
        )
    return None
