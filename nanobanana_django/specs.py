"""What each supported model accepts, and local validation of inputs against it.

Inputs are checked here before any request is made, so a typo in an aspect ratio is a
``ValidationError`` naming the field and the allowed values, never a billed call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from .dimensions import ASPECT_RATIOS

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

    @property
    def input_names(self) -> tuple[str, ...]:
        return ("prompt", "image_input", *self.choices, *self.booleans)


_ALL_RATIOS = ("match_input_image", *ASPECT_RATIOS)
_EXTREME_RATIOS = ("1:4", "4:1", "1:8", "8:1")

MODEL_SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="google/nano-banana-2",
            choices={
                "aspect_ratio": _ALL_RATIOS,
                "resolution": ("1K", "2K", "4K"),
                "output_format": ("jpg", "png"),
            },
            defaults={
                "aspect_ratio": "match_input_image",
                "resolution": "1K",
                "output_format": "jpg",
            },
            booleans=("google_search", "image_search"),
            always_send=("aspect_ratio",),
        ),
        ModelSpec(
            name="google/nano-banana-pro",
            choices={
                "aspect_ratio": tuple(r for r in _ALL_RATIOS if r not in _EXTREME_RATIOS),
                "resolution": ("1K", "2K", "4K"),
                "output_format": ("jpg", "png"),
                "safety_filter_level": (
                    "block_low_and_above",
                    "block_medium_and_above",
                    "block_only_high",
                ),
            },
            defaults={
                "aspect_ratio": "match_input_image",
                "resolution": "2K",
                "output_format": "jpg",
            },
            booleans=("google_search", "image_search"),
            always_send=("aspect_ratio",),
        ),
        ModelSpec(
            name="google/nano-banana",
            choices={"output_format": ("jpg", "png")},
            defaults={"output_format": "jpg"},
        ),
    )
}


def get_spec(model: str) -> ModelSpec:
    try:
        return MODEL_SPECS[model]
    except KeyError:
        known = ", ".join(sorted(MODEL_SPECS))
        raise ValidationError(
            {"model": [f"Unknown model {model!r}. Supported models: {known}."]}
        ) from None


def validate_input(model: str, prompt: Any, params: Mapping[str, Any] | None = None) -> dict:
    """Return the full input to send for ``model``, or raise ``ValidationError``.

    The result has the prompt, every given parameter and the spec's defaults for
    the inputs it always sends; ``image_input`` is left out when empty.
    """
    spec = get_spec(model)
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
            errors[name] = [
                f"{params[name]!r} is not allowed for {name}. Choose one of: {', '.join(allowed)}."
            ]

    for name in spec.booleans:
        if name in params and not isinstance(params[name], bool):
            errors[name] = [f"{name} must be true or false, not {params[name]!r}."]

    if "image_input" in params:
        problem = _check_image_input(params["image_input"], spec.max_image_inputs)
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


def _check_image_input(value: Any, limit: int) -> str | None:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        return "image_input must be a list of image URLs or data: URIs."
    if len(value) > limit:
        return f"image_input has {len(value)} images; the model takes at most {limit}."
    inline = 0
    for position, item in enumerate(value, start=1):
        if not isinstance(item, str) or not item.startswith(("https://", "http://", "data:")):
            return f"image_input item {position} must be an http(s) URL or a data: URI."
        if item.startswith("data:"):
            inline += len(item)
    if inline > MAX_INLINE_IMAGE_BYTES:
        return (
            f"image_input carries {inline} bytes of data: URIs; the limit is "
            f"{MAX_INLINE_IMAGE_BYTES}. Host the images and pass their URLs instead."
        )
    return None
