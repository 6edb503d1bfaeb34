"""Images sent with the prompt (edits, steps, reference images) reach each provider."""

import base64
import dataclasses
import io
import json
import os
from datetime import timedelta

import httpx
import pytest
from django.core.cache import caches
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image

from nanobanana_django.exceptions import InvalidInput, RequestTooLarge
from nanobanana_django.models import GeneratedImage, ReferenceImage, ReferenceSet
from nanobanana_django.pipeline import run_generation
from nanobanana_django.providers import gemini_api
from nanobanana_django.providers.base import GenerationRequest, ImageInput
from nanobanana_django.providers.replicate import ReplicateProvider
from nanobanana_django.providers.replicate_models import REPLICATE_MODELS
from nanobanana_django.services import create_generation, generate_for
from nanobanana_django.specs import ModelSpec
from nanobanana_django.testing import replicate as replicate_testing
from nanobanana_django.testing.replicate import DEFAULT_TOKEN
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db

Status = GeneratedImage.Status


def small_png(colour: tuple[int, int, int], size: int = 32) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(out, format="PNG")
    return out.getvalue()


def large_png(side: int = 400) -> bytes:
    """Noise does not compress: about 480 KB, above the 256 KB inline limit."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, format="PNG")
    return out.getvalue()


def reference(data: bytes, name: str, reference_set: ReferenceSet | None = None, position=0):
    return ReferenceImage.objects.create(
        reference_set=reference_set,
        image=ContentFile(data, name=name),
        position=position,
    )


def entry(ref: ReferenceImage) -> dict:
    return {
        "id": ref.pk,
        "name": ref.image.name.rsplit("/", 1)[-1],
        "set": ref.reference_set.name if ref.reference_set else "",
    }


def queued_with(article: Article, references: list[ReferenceImage]) -> GeneratedImage:
    row = create_generation(article)
    row.reference_images = [entry(ref) for ref in references]
    row.save(update_fields=["reference_images"])
    return row


def edit_of(parent: GeneratedImage, instruction: str) -> GeneratedImage:
    return GeneratedImage.objects.create(
        kind=GeneratedImage.Kind.EDIT,
        parent=parent,
        provider=parent.provider,
        model_name=parent.model_name,
        prompt=instruction,
        input_params=parent.input_params,
        auto_attach=False,
    )


def colour_of(data: bytes) -> tuple[int, int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").getpixel((0, 0))


def creates(emulator):
    return [r for r in emulator.requests if r.method == "POST" and "/models/" in r.path]


def uploads(emulator):
    return [r for r in emulator.requests if r.method == "POST" and r.path.startswith("/v1/files")]


@pytest.fixture
def replicate(replicate, settings):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "MODELS": {"testapp.Article": {"title_field": "title", "image_field": "header_image"}},
    }
    return replicate


@pytest.fixture
def gemini(settings, gemini_emulator):
    caches["default"].clear()
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        **gemini_emulator.settings(),
        "TASK_RUNNER": "immediate",
        "MODELS": {"testapp.Article": {"title_field": "title", "image_field": "header_image"}},
    }
    return gemini_emulator


@pytest.fixture
def brand_kit():
    kit = ReferenceSet.objects.create(name="brand-kit", label="Brand kit")
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    return [
        reference(small_png(colour), f"kit-{i}.png", kit, position=i)
        for i, colour in enumerate(colours)
    ]


@pytest.fixture
def article():
    return Article.objects.create(title="Harbour festival")


# Replicate ------------------------------------------------------------------------------


def test_a_brand_kit_and_a_request_image_reach_replicate_as_four_inputs_in_order(
    replicate, article, brand_kit
):
    own = reference(small_png((250, 250, 0)), "own.png")
    row = run_generation(queued_with(article, [*brand_kit, own]).pk)

    assert row.status == Status.SUCCEEDED, row.error_message
    received = replicate.images_received()
    assert [image.via for image in received] == ["data"] * 4
    assert [colour_of(image.data) for image in received] == [
        (200, 30, 30),
        (30, 200, 30),
        (30, 30, 200),
        (250, 250, 0),
    ]
    assert uploads(replicate) == []


def test_a_large_reference_travels_through_the_files_api_and_is_deleted_afterwards(
    replicate, article, brand_kit
):
    big = large_png()
    assert len(big) > 256 * 1024
    row = run_generation(queued_with(article, [brand_kit[0], reference(big, "big.png")]).pk)

    assert row.status == Status.SUCCEEDED, row.error_message
    received = replicate.images_received()
    assert [image.via for image in received] == ["data", "file"]
    assert received[1].data == big
    (upload,) = uploads(replicate)
    assert upload.headers["authorization"] == f"Bearer {DEFAULT_TOKEN}"
    sent = creates(replicate)[0].json()["input"]["image_input"]
    assert sent[1] == f"{replicate.base_url}/v1/files/{received[1].file_id}"
    assert "/media/" not in json.dumps(sent)  # never a URL of the site's storage
    assert replicate.deleted_files == [received[1].file_id]


def test_an_edit_sends_the_parent_image_first(replicate, article, brand_kit):
    parent = generate_for(article)
    assert parent.status == Status.SUCCEEDED, parent.error_message
    child = edit_of(parent, "make the background a rooftop at sunset")
    child.reference_images = [entry(brand_kit[0])]
    child.save(update_fields=["reference_images"])

    child = run_generation(child.pk)

    assert child.status == Status.SUCCEEDED, child.error_message
    received = replicate.images_received()
    assert len(received) == 2
    with parent.image.open("rb") as file:
        assert received[0].data == file.read()
    assert colour_of(received[1].data) == (200, 30, 30)
    assert creates(replicate)[-1].json()["input"]["prompt"].startswith("make the background")


def test_a_fifteenth_image_is_refused_before_any_request(replicate, article):
    references = [reference(small_png((i, i, i), 8), f"r{i}.png") for i in range(15)]
    row = run_generation(queued_with(article, references).pk)

    assert row.status == Status.FAILED
    assert row.error_code == "too_many_images"
    assert "15 images" in row.error_message and "at most 14" in row.error_message
    assert replicate.requests == []


@pytest.mark.parametrize(
    ("fault", "code", "said"),
    [
        ("file_too_large", "request_too_large", "too large"),
        ("token", "authentication_failed", "HTTP 401"),
        ("drop", "provider_unavailable", "RemoteProtocolError"),
    ],
)
def test_an_upload_failure_fails_the_row_readably_and_creates_nothing(
    settings, replicate, article, fault, code, said
):
    settings.NANOBANANA = {**settings.NANOBANANA, "MAX_RETRIES": 0}
    if fault == "token":
        settings.NANOBANANA = {**settings.NANOBANANA, "REPLICATE_API_TOKEN": "r8_wrong"}
    else:
        replicate.add_fault(fault, on="upload")
    row = run_generation(queued_with(article, [reference(large_png(), "big.png")]).pk)

    assert row.status == Status.FAILED
    assert row.error_code == code
    assert said in row.error_message
    assert "Uploading the reference image '" in row.error_message
    assert "nothing was billed" in row.error_message
    assert "r8_wrong" not in row.error_message
    assert creates(replicate) == []
    assert replicate.created_count == 0
    assert row.cost is None or row.cost == 0


def test_a_rejected_create_deletes_the_files_it_uploaded(replicate, article):
    replicate.add_fault("payment_required")
    row = run_generation(queued_with(article, [reference(large_png(), "big.png")]).pk)

    assert row.error_code == "payment_required"
    assert len(replicate.deleted_files) == 1
    assert replicate.files == {}


# Replicate, at the provider level ----------------------------------------------------------


def provider_for(emulator, **options) -> ReplicateProvider:
    return ReplicateProvider(
        api_token=emulator.token, base_url=emulator.base_url, wait=0, max_retries=0, **options
    )


def request_with(images, model="google/nano-banana-2", **input) -> GenerationRequest:
    return GenerationRequest(model=model, input={"prompt": "a harbour", **input}, images=images)


def test_uploads_do_not_use_the_create_rate_limit(replicate_emulator):
    class CountingLimiter:
        acquired = 0

        def acquire(self):
            self.acquired += 1

        def pause(self, seconds):
            pass

    limiter = CountingLimiter()
    images = tuple(ImageInput(large_png(), "image/png", f"big{i}.png") for i in range(3))
    with provider_for(replicate_emulator, rate_limiter=limiter) as provider:
        provider.submit(request_with(images))

    assert replicate_emulator.counts["upload"] == 3
    assert limiter.acquired == 1


def test_inline_image_bytes_decides_what_is_uploaded(replicate_emulator):
    image = ImageInput(small_png((1, 2, 3)), "image/png", "small.png")
    with provider_for(replicate_emulator, inline_image_bytes=0) as provider:
        provider.submit(request_with((image,)))

    assert [i.via for i in replicate_emulator.images_received()] == ["file"]


def test_images_past_the_total_inline_budget_are_uploaded(monkeypatch, replicate_emulator):
    spec = dataclasses.replace(REPLICATE_MODELS["google/nano-banana-2"], max_inline_bytes=200_000)
    monkeypatch.setitem(REPLICATE_MODELS, spec.name, spec)
    images = tuple(ImageInput(large_png(180), "image/png", f"{i}.png") for i in range(2))
    with provider_for(replicate_emulator, inline_image_bytes=10**6) as provider:
        provider.submit(request_with(images))

    assert [i.via for i in replicate_emulator.images_received()] == ["data", "file"]


def test_a_lost_create_with_images_is_found_again(replicate_emulator):
    images = (
        ImageInput(small_png((9, 9, 9)), "image/png", "a.png"),
        ImageInput(large_png(), "image/png", "b.png"),
    )
    request = request_with(images, aspect_ratio="16:9")
    since = timezone.now() - timedelta(minutes=1)
    with provider_for(replicate_emulator) as provider:
        made = provider.submit(request)
        found = provider.find(request, created_after=since)
        other = provider.find(request_with(images[:1], aspect_ratio="16:9"), created_after=since)

    assert [p.id for p in found] == [made.id]
    assert other == []


def test_a_model_that_takes_no_images_refuses_them_before_any_request(
    monkeypatch, replicate_emulator
):
    monkeypatch.setitem(
        REPLICATE_MODELS, "acme/text-only", ModelSpec("acme/text-only", {}, {}, image_input="")
    )
    image = ImageInput(small_png((1, 1, 1)), "image/png", "a.png")
    with provider_for(replicate_emulator) as provider, pytest.raises(InvalidInput) as caught:
        provider.submit(request_with((image,), model="acme/text-only"))

    assert caught.value.code == "images_not_supported"
    assert "acme/text-only takes no images" in caught.value.message
    assert replicate_emulator.requests == []


def test_a_single_image_model_gets_one_uri_in_its_own_input(monkeypatch, replicate_emulator):
    spec = ModelSpec(
        "acme/upscaler",
        {"scale": ("2", "4")},
        {"scale": "2"},
        image_input="image",
        single_image=True,
    )
    monkeypatch.setitem(REPLICATE_MODELS, spec.name, spec)
    monkeypatch.setitem(replicate_testing.MODELS, spec.name, replicate_testing._schema(spec))
    image = ImageInput(small_png((5, 6, 7)), "image/png", "a.png")
    with provider_for(replicate_emulator) as provider:
        provider.submit(request_with((image,), model=spec.name))
        with pytest.raises(InvalidInput) as caught:
            provider.submit(request_with((image, image), model=spec.name))

    sent = creates(replicate_emulator)[0].json()["input"]
    assert isinstance(sent["image"], str) and sent["image"].startswith("data:image/png;base64,")
    assert colour_of(replicate_emulator.images_received()[0].data) == (5, 6, 7)
    assert caught.value.code == "too_many_images"
    assert len(creates(replicate_emulator)) == 1


def test_a_single_image_models_own_input_is_validated_as_one_uri():
    from django.core.exceptions import ValidationError

    from nanobanana_django.specs import validate

    spec = ModelSpec("acme/upscaler", {}, {}, image_input="image", single_image=True)

    assert validate(spec, "x", {"image": "https://e.com/a.png"})["image"] == "https://e.com/a.png"
    for bad in (["https://e.com/a.png"], "a.png"):
        with pytest.raises(ValidationError) as caught:
            validate(spec, "x", {"image": bad})
        assert "image" in caught.value.message_dict
    with pytest.raises(ValidationError):
        validate(spec, "x", {"image_input": ["https://e.com/a.png"]})  # not its input


# The Replicate emulator --------------------------------------------------------------------


def emulator_client(emulator) -> httpx.Client:
    return httpx.Client(
        base_url=emulator.base_url, headers={"Authorization": f"Bearer {emulator.token}"}
    )


@pytest.mark.parametrize(
    "item",
    [
        "data:image/png;base64," + base64.b64encode(b"not an image").decode(),
        "data:image/png;base64,@@@",
        "https://example.com/cat.png",
    ],
)
def test_the_replicate_emulator_refuses_an_image_input_it_cannot_read(replicate_emulator, item):
    with emulator_client(replicate_emulator) as client:
        response = client.post(
            "/v1/models/google/nano-banana-2/predictions",
            json={"input": {"prompt": "a cat", "image_input": [item]}},
        )

    assert response.status_code == 422
    assert response.json()["invalid_fields"][0]["field"] == "input.image_input.0"
    assert replicate_emulator.created_count == 0


def test_the_replicate_emulator_serves_the_files_api(replicate_emulator):
    data = small_png((1, 2, 3))
    with emulator_client(replicate_emulator) as client:
        created = client.post(
            "/v1/files", files={"content": ("a.png", data, "image/png")}, data={"filename": "a.png"}
        )
        file = created.json()
        got = client.get(f"/v1/files/{file['id']}")
        content = client.get(f"/v1/files/{file['id']}/download")
        anonymous = httpx.get(f"{replicate_emulator.base_url}/v1/files/{file['id']}/download")
        deleted = client.delete(f"/v1/files/{file['id']}")
        gone = client.get(f"/v1/files/{file['id']}")

    assert created.status_code == 201
    assert file["size"] == len(data) and file["content_type"] == "image/png"
    assert file["urls"]["get"] == f"{replicate_emulator.base_url}/v1/files/{file['id']}"
    assert file["expires_at"] > file["created_at"]
    assert got.json()["id"] == file["id"]
    assert content.content == data
    assert anonymous.status_code == 401
    assert deleted.status_code == 204
    assert gone.status_code == 404


# Gemini ----------------------------------------------------------------------------------


def inline_parts(emulator):
    (call,) = [r for r in emulator.requests if ":generateContent" in r.path]
    (turn,) = call.body["contents"]
    return turn["parts"]


def test_gemini_receives_the_images_as_inline_parts_after_the_prompt_in_order(
    gemini, article, brand_kit
):
    row = run_generation(queued_with(article, brand_kit).pk)

    assert row.status == Status.SUCCEEDED, row.error_message
    parts = inline_parts(gemini)
    assert "text" in parts[0]
    assert all("inlineData" in part for part in parts[1:])
    received = gemini.images_received()
    assert [mime for mime, _ in received] == ["image/png"] * 3
    assert [colour_of(data) for _, data in received] == [
        (200, 30, 30),
        (30, 200, 30),
        (30, 30, 200),
    ]


def test_a_gemini_edit_sends_the_parent_image_inline(gemini, article):
    parent = generate_for(article)
    # Without a kept turn (with one, the turn is replayed instead: tests/test_edits.py).
    GeneratedImage.objects.filter(pk=parent.pk).update(provider_state={})
    parent.refresh_from_db()
    gemini.reset()
    child = run_generation(edit_of(parent, "add a lighthouse").pk)

    assert child.status == Status.SUCCEEDED, child.error_message
    with parent.image.open("rb") as file:
        assert [data for _, data in gemini.images_received()] == [file.read()]


def test_a_gemini_request_over_the_inline_limit_is_refused_before_sending(
    monkeypatch, gemini, article
):
    monkeypatch.setattr(gemini_api, "MAX_REQUEST_BYTES", 200_000)
    row = run_generation(queued_with(article, [reference(large_png(), "big.png")]).pk)

    assert row.status == Status.FAILED
    assert row.error_code == RequestTooLarge.code
    assert "20 MB" in row.error_message
    assert gemini.requests == []


def test_a_fifteenth_image_is_refused_on_gemini_too(gemini, article):
    references = [reference(small_png((i, i, i), 8), f"r{i}.png") for i in range(15)]
    row = run_generation(queued_with(article, references).pk)

    assert row.error_code == "too_many_images"
    assert gemini.requests == []


# Placeholder -----------------------------------------------------------------------------


def test_an_edit_on_the_placeholder_works_without_a_key(settings, article, brand_kit):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "PROVIDER": "placeholder",
        "TASK_RUNNER": "immediate",
        "MODELS": {"testapp.Article": {"title_field": "title", "image_field": "header_image"}},
    }
    parent = generate_for(article)
    child = edit_of(parent, "make it night")
    child.reference_images = [entry(brand_kit[0])]
    child.save(update_fields=["reference_images"])

    child = run_generation(child.pk)

    assert child.status == Status.SUCCEEDED, child.error_message
    assert child.is_placeholder


def test_a_placeholder_edit_follows_the_shape_of_the_image_it_edits(settings):
    from nanobanana_django.providers.placeholder import PlaceholderProvider

    tall = io.BytesIO()
    Image.new("RGB", (90, 160), (1, 2, 3)).save(tall, format="PNG")
    request = GenerationRequest(
        model="google/nano-banana-2",
        input={"prompt": "make it night", "aspect_ratio": "match_input_image"},
        images=(ImageInput(tall.getvalue(), "image/png", "parent.png", role="parent"),),
        generation_id="7",
    )

    prediction = PlaceholderProvider().submit(request)

    with Image.open(io.BytesIO(prediction.content)) as made:
        assert made.size == (768, 1376)  # 9:16 at 1K, as the model would match it
