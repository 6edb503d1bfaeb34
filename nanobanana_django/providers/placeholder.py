"""Offline provider: renders a stand-in image locally, with no account and no network."""

from __future__ import annotations

import hashlib
import io
import json
import math
from typing import IO, Any

from PIL import Image, UnidentifiedImageError

from ..conf import app_settings
from ..dimensions import ASPECT_RATIOS, image_size
from ..exceptions import ImageTooLarge, OutputExpired
from ..placeholder import render_placeholder
from ..specs import ModelSpec
from .base import SUCCEEDED, GenerationRequest, ImageInput, Prediction, Provider
from .replicate_models import get_model_spec


class PlaceholderProvider(Provider):
    """Art from the title or prompt, at the requested ratio and size.

    Each generation gets its own picture (seeded by its id), the same every time
    that generation is rendered.

    The default when no Replicate token is configured, so a fresh checkout works.
    Images it makes are flagged (``GeneratedImage.is_placeholder``) everywhere.
    """

    name = "placeholder"
    is_placeholder = True

    @classmethod
    def model_for(cls, options: dict[str, Any]) -> str:
        """The model it stands in for (``NANOBANANA["MODEL"]``), whose inputs it takes."""
        from ..conf import app_settings

        return app_settings.MODEL

    @classmethod
    def spec_for(cls, options: dict[str, Any]) -> ModelSpec:
        return get_model_spec(cls.model_for(options))

    @classmethod
    def max_call_seconds(cls, options: dict[str, Any]) -> float:
        return 60.0

    def submit(self, request: GenerationRequest) -> Prediction:
        """Images sent with the prompt are taken, not drawn: an edit follows its image's
        shape, and the title says it is an edit or how many references it had."""
        params = request.input
        ratio = params.get("aspect_ratio", "match_input_image")
        if ratio == "match_input_image" and request.images:
            ratio = _ratio_of(request.images[0]) or ratio
        width, height = image_size(ratio, params.get("resolution", "1K"))
        font_path = app_settings.PLACEHOLDER_FONT  # a bad one fails the row, naming the setting
        content = render_placeholder(
            prompt=params["prompt"],
            title=_noted(request.title, params["prompt"], request.images),
            width=width,
            height=height,
            output_format=params.get("output_format", "jpg"),
            seed=request.generation_id,
            font_path=font_path,
        )
        digest = hashlib.sha256(
            json.dumps(
                [request.model, params, request.title, request.generation_id], sort_keys=True
            ).encode()
        ).hexdigest()
        return Prediction(id=f"placeholder-{digest[:20]}", status=SUCCEEDED, content=content)

    def open_output(self, prediction: Prediction, *, max_bytes: int) -> IO[bytes]:
        if prediction.content is None:
            raise OutputExpired("The placeholder image is no longer available; retry.")
        if len(prediction.content) > max_bytes:
            raise ImageTooLarge("The placeholder image is larger than MAX_IMAGE_BYTES.")
        return io.BytesIO(prediction.content)


def _ratio_of(image: ImageInput) -> str | None:
    """The aspect ratio closest to ``image``'s (on a log scale), as the model matches it."""
    try:
        with Image.open(io.BytesIO(image.data)) as opened:
            width, height = opened.size
    except (UnidentifiedImageError, OSError):
        return None
    if not width or not height:
        return None
    wanted = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = ratio.split(":")
        return abs(math.log(int(w) / int(h)) - wanted)

    return min(ASPECT_RATIOS, key=distance)


def _noted(title: str, prompt: str, images: tuple[ImageInput, ...]) -> str | None:
    """The title drawn: with "(edited)" or "(N references)" when images were sent."""
    if not images:
        return title or None
    if not title:
        title = prompt if len(prompt) <= 60 else prompt[:59].rstrip() + "\u2026"
    references = sum(1 for image in images if image.role != "parent")
    notes = ["edited"] if len(images) > references else []
    if references:
        notes.append(f"{references} reference{'s' if references != 1 else ''}")
    return f"{title} ({', '.join(notes)})"
