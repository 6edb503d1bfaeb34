"""Offline provider: renders a stand-in image locally, with no account and no network."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import datetime
from typing import IO

from ..conf import app_settings
from ..dimensions import image_size
from ..exceptions import ImageTooLarge, OutputExpired
from ..placeholder import render_placeholder
from .base import SUCCEEDED, GenerationRequest, Prediction, Provider


class PlaceholderProvider(Provider):
    """Art from the title or prompt, at the requested ratio and size.

    Each generation gets its own picture (seeded by its id), the same every time
    that generation is rendered.

    The default when no Replicate token is configured, so a fresh checkout works.
    Images it makes are flagged (``GeneratedImage.is_placeholder``) everywhere.
    """

    name = "placeholder"
    is_placeholder = True

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

    def fetch(self, prediction_id: str) -> Prediction:
        raise OutputExpired(
            "Placeholder images are made in one step and cannot be resumed; retry the generation."
        )

    def find(self, request: GenerationRequest, *, created_after: datetime) -> list[Prediction]:
        """Nothing is billed and nothing is kept: a lost render is simply made again."""
        return []

    def states(self, prediction_ids: list[str], since: datetime) -> dict[str, Prediction]:
        return {}

    def cancel(self, prediction_id: str) -> Prediction:
        return Prediction(id=prediction_id, status=SUCCEEDED)

    def open_output(self, prediction: Prediction, *, max_bytes: int) -> IO[bytes]:
        if prediction.content is None:
            raise OutputExpired("The placeholder image is no longer available; retry.")
        if len(prediction.content) > max_bytes:
            raise ImageTooLarge("The placeholder image is larger than MAX_IMAGE_BYTES.")
        return io.BytesIO(prediction.content)
