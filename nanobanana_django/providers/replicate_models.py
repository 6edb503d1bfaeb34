"""The models this app runs on Replicate, and what each accepts (PROVIDERS.md)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from ..conf import app_settings
from ..dimensions import ASPECT_RATIOS
from ..specs import ModelSpec, validate

_ALL_RATIOS = ("match_input_image", *ASPECT_RATIOS)
_EXTREME_RATIOS = ("1:4", "4:1", "1:8", "8:1")

REPLICATE_MODELS: dict[str, ModelSpec] = {
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


def get_model_spec(model: str) -> ModelSpec:
    try:
        return REPLICATE_MODELS[model]
    except KeyError:
        known = ", ".join(sorted(REPLICATE_MODELS))
        raise ValidationError(
            {"model": [f"Unknown model {model!r}. Supported models: {known}."]}
        ) from None


def validate_input(model: str, prompt: Any, params: dict[str, Any] | None = None) -> dict:
    """The full input to send to Replicate's ``model``, or ``ValidationError``."""
    return validate(get_model_spec(model), prompt, params)


# Post-processing steps (docs/steps.md) ---------------------------------------------------------

UPSCALER = "nightmareai/real-esrgan"
"""The built-in ``upscale`` step's default model (``NANOBANANA["STEPS"]["upscale"]["model"]``)."""

REPLICATE_STEP_MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        # Real-ESRGAN: one image in ``image``, ``scale`` (we offer 2x and 4x), no prompt.
        ModelSpec(
            name=UPSCALER,
            choices={"scale": (2, 4)},  # type: ignore[dict-item]
            defaults={"scale": 4, "face_enhance": False},
            booleans=("face_enhance",),
            image_input="image",
            single_image=True,
        ),
    )
}
"""Models that run a step on an image rather than make one from a prompt: what each
accepts is ours, the model id to use is a setting."""


def step_model_spec(model: str) -> ModelSpec | None:
    """The spec of a step model: ours, else one made from a ``STEPS`` entry naming ``model``
    and its ``image_input`` (its other inputs unknown to us, sent as configured)."""
    if model in REPLICATE_STEP_MODELS:
        return REPLICATE_STEP_MODELS[model]
    for entry in app_settings.STEPS.values():
        if entry.get("model") == model and entry.get("image_input"):
            return ModelSpec(
                name=model,
                choices={},
                defaults={},
                image_input=entry["image_input"],
                single_image=True,
            )
    return None
