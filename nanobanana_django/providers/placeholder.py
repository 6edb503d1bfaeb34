"""Offline provider: renders a stand-in image locally, with no account and no network."""

from __future__ import annotations

import hashlib
import io
import json
from typing import IO, Any

from ..conf import app_settings
from ..dimensions import image_size
from ..exceptions import ImageTooLarge, OutputExpired
from ..placeholder import render_placeholder
from ..specs import ModelSpec
from .base import SUCCEEDED, GenerationRequest, Prediction, Provider
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
        params = request.input
        width, height = image_size(
            params.get("aspect_ratio", "match_input_image"), params.get("resolution", "1K")
        )
        font_path = app_settings.PLACEHOLDER_FONT  # a bad one fails the row, naming the setting
        content = render_placeholder(
            prompt=params["prompt"],
            title=request.title or None,
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
