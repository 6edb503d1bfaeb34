"""Against the real Replicate API: opt-in, because it bills the account.

Run with ``NANOBANANA_LIVE_REPLICATE_TOKEN=r8_... make test PYTEST_ARGS="-m live"``.
"""

import os

import pytest
from PIL import Image

from nanobanana_django.models import GeneratedImage
from nanobanana_django.services import generate_image

TOKEN = os.environ.get("NANOBANANA_LIVE_REPLICATE_TOKEN", "")

pytestmark = [
    pytest.mark.live,
    pytest.mark.django_db,
    pytest.mark.skipif(not TOKEN, reason="opt-in: set NANOBANANA_LIVE_REPLICATE_TOKEN"),
]


def test_nano_banana_2_makes_a_real_1k_image(settings):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "PROVIDER": "replicate",
        "REPLICATE_API_TOKEN": TOKEN,
        "REPLICATE_BASE_URL": "https://api.replicate.com",
    }
    row = generate_image(
        "A lighthouse at dawn, photographic", input={"aspect_ratio": "16:9", "resolution": "1K"}
    )
    assert row.status == GeneratedImage.Status.SUCCEEDED, row.error_message
    with Image.open(row.image.path) as image:
        width, height = image.size
    assert abs((width / height) / (16 / 9) - 1) < 0.015
    assert TOKEN not in row.error_message
