"""Reference images and brand kits: sets, a request's own images, their limits, and what
reaches each provider."""

import io

import pytest
from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import path, re_path
from PIL import Image, ImageDraw, ImageFont

from nanobanana_django.image_inputs import images_for
from nanobanana_django.models import GeneratedImage, ReferenceImage, ReferenceSet
from nanobanana_django.providers import get_provider_config
from nanobanana_django.references import ADVICE, resolve
from nanobanana_django.registry import get_config
from nanobanana_django.services import (
    create_generation,
    generate_for,
    generate_image,
    queue_generation,
    retry_generation,
)
from tests.test_admin import serve_media
from tests.test_admin_browser import TIMEOUT, browser, loaded, log_in, save_screenshot  # noqa: F401
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db

ARTICLE = {"title_field": "title", "topic_field": "topic", "image_field": "header_image"}


def png(colour="red", size=(64, 48), fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, fmt)
    return buffer.getvalue()


def make_set(name="brand", count=3) -> ReferenceSet:
    reference_set = ReferenceSet.objects.create(name=name, label=name.title())
    colours = ["navy", "gold", "white", "teal", "coral"]
    for position in reversed(range(count)):  # created out of order: position decides
        image = ReferenceImage(
            reference_set=reference_set,
            caption=f"{name} {position + 1}",
            position=position,
            size_bytes=0,
        )
        data = png(colours[position % len(colours)])
        image.image.save(f"{name}-{position + 1}.png", ContentFile(data), save=False)
        image.size_bytes = len(data)
        image.save()
    return reference_set


def refused(call, *args, **kwargs) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        call(*args, **kwargs)
    return caught.value.message_dict["references"]


# The row records what was used, in order ---------------------------------------------------


def test_a_preset_with_a_set_records_its_images_by_position_then_the_requests(settings):
    make_set("brand", 3)
    upload = SimpleUploadedFile("sketch.png", png("green"), content_type="image/png")

    row = create_generation(None, prompt="A poster", preset="brand", references=[upload])

    assert [(entry["name"], entry["set"]) for entry in row.reference_images] == [
        ("brand 1", "brand"),
        ("brand 2", "brand"),
        ("brand 3", "brand"),
        ("sketch.png", ""),
    ]
    own = ReferenceImage.objects.get(pk=row.reference_images[-1]["id"])
    assert own.reference_set is None and own.size_bytes == len(png("green"))
    assert own.image.name.startswith("nanobanana/references/")
    images = images_for(row)
    assert len(images) == 4 and all(image.mime_type == "image/png" for image in images)


def test_the_builtin_brand_preset_without_a_brand_set_names_the_page_to_create_it():
    (message,) = refused(create_generation, None, prompt="A poster", preset="brand")
    assert "There is no reference set 'brand' (named by the preset 'brand')" in message
    assert "/admin/nanobanana_django/referenceset/add/" in message
    assert not GeneratedImage.objects.exists()


def test_an_empty_set_is_refused_rather_than_sending_none():
    ReferenceSet.objects.create(name="brand")
    (message,) = refused(create_generation, None, prompt="A poster", preset="brand")
    assert "The reference set 'brand' (named by the preset 'brand') has no images" in message


def test_a_set_named_in_the_call_replaces_the_presets(settings):
    make_set("brand", 3)
    make_set("autumn", 2)
    row = create_generation(None, prompt="A poster", preset="brand", references="autumn")
    assert [entry["set"] for entry in row.reference_images] == ["autumn", "autumn"]


def test_a_registered_model_sends_its_set_with_every_generation(settings):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "MODELS": {"testapp.Article": {**ARTICLE, "references": "house-style"}},
    }
    make_set("house-style", 2)
    article = Article.objects.create(title="Harbour lights", topic="travel")

    row = queue_generation(article, references=[png("black")])

    assert [entry["set"] for entry in row.reference_images] == ["house-style", "house-style", ""]
    assert row.reference_images[-1]["name"] == "reference-3"


def test_a_site_preset_names_its_set_and_a_site_can_turn_the_brand_sets_off(settings):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "PRESETS": {"launch": {"references": "launch-kit"}, "brand": {"references": ""}},
    }
    make_set("launch-kit", 2)
    assert len(create_generation(None, prompt="x", preset="launch").reference_images) == 2
    assert create_generation(None, prompt="x", preset="brand").reference_images == []


def test_bytes_files_and_stored_images_may_be_mixed():
    stored = make_set("kit", 1).images.get()
    row = create_generation(
        None, prompt="A poster", references=[png("blue"), io.BytesIO(png("pink")), stored]
    )
    assert [entry["set"] for entry in row.reference_images] == ["", "", ""]
    assert row.reference_images[2] == {"id": stored.pk, "name": "kit 1", "set": ""}


# Checked before anything is sent ------------------------------------------------------------


def test_a_fifteenth_image_is_refused_before_anything_is_stored():
    make_set("brand", 14)
    (message,) = refused(
        create_generation, None, prompt="A poster", preset="brand", references=[png()]
    )
    assert "15 images, more than the 14 that" in message and "Remove 1" in message
    assert not GeneratedImage.objects.exists()
    assert ReferenceImage.objects.filter(reference_set=None).count() == 0


def test_an_edits_parent_image_counts_towards_the_fourteen():
    """create_generation passes other_images=1 for an edit or a step (row.parent)."""
    make_set("brand", 14)
    spec = get_provider_config().spec()
    assert len(resolve(None, default_set=("brand", "the call"), spec=spec).items) == 14
    with pytest.raises(ValidationError) as caught:
        resolve(None, default_set=("brand", "the call"), spec=spec, other_images=1)
    (message,) = caught.value.message_dict["references"]
    assert "14 reference images and the image being edited: 15 images" in message


def test_a_file_that_is_not_an_image_is_refused_by_name():
    upload = SimpleUploadedFile("notes.txt", b"not an image at all")
    (message,) = refused(create_generation, None, prompt="x", references=[upload])
    assert message == (
        "The reference image 'notes.txt' is not a JPEG, PNG or WebP image (or it is damaged). "
        "Upload it as one of those."
    )


def test_a_reference_over_the_size_cap_is_refused_without_reading_it(settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "MAX_REFERENCE_BYTES": 1000}
    upload = SimpleUploadedFile("poster.png", png(size=(400, 400)) + b"\0" * 2000)
    (message,) = refused(create_generation, None, prompt="x", references=[upload])
    assert "'poster.png'" in message and "NANOBANANA['MAX_REFERENCE_BYTES']" in message


def test_a_reference_over_the_pixel_cap_is_refused(settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "MAX_IMAGE_PIXELS": 100 * 100}
    (message,) = refused(
        create_generation, None, prompt="x", references=[png(size=(200, 100), fmt="JPEG")]
    )
    assert "more than 10,000 pixels" in message and "Scale it down" in message


def test_a_stored_set_image_grown_past_the_cap_is_refused(settings):
    make_set("brand", 2)
    ReferenceImage.objects.filter(caption="brand 2").update(size_bytes=8 * 1024 * 1024)
    (message,) = refused(create_generation, None, prompt="x", preset="brand")
    assert "'brand 2' (8 MiB) is larger than the 7 MiB allowed" in message


def test_a_model_without_image_inputs_refuses_references(settings, monkeypatch):
    from dataclasses import replace

    from nanobanana_django.providers.config import ProviderConfig

    original = ProviderConfig.spec
    monkeypatch.setattr(
        ProviderConfig, "spec", lambda self: replace(original(self), max_image_inputs=0)
    )
    (message,) = refused(create_generation, None, prompt="x", references=[png()])
    assert "takes no image inputs, so it cannot use reference images" in message


def test_something_else_in_the_list_is_refused_with_what_to_give():
    (message,) = refused(create_generation, None, prompt="x", references=[42])
    assert message.startswith("Reference 1 is a int; give a reference set's name")


# Retry, settings ----------------------------------------------------------------------------


def test_retry_sends_the_set_as_it_is_now_and_the_same_own_images(settings):
    kit = make_set("brand", 2)
    row = create_generation(None, prompt="x", preset="brand", references=[png("olive")])
    own_id = row.reference_images[-1]["id"]
    kit.images.first().delete()

    again = retry_generation(row)

    assert [entry["set"] for entry in again.reference_images] == ["brand", ""]
    assert again.reference_images[-1]["id"] == own_id
    assert ReferenceImage.objects.filter(reference_set=None).count() == 1


def test_a_registration_naming_a_set_with_a_number_is_a_configuration_error(settings):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "MODELS": {"testapp.Article": {**ARTICLE, "references": 3}},
    }
    with pytest.raises(ImproperlyConfigured, match=r"\['references'\] must be the name"):
        get_config(Article)


def test_the_advice_on_one_reference_is_worded_for_editors():
    assert "two or more" in str(ADVICE) and "copy" in str(ADVICE)


def test_generate_image_takes_references_on_the_placeholder_route():
    row = generate_image("A lighthouse", references=[png("yellow"), png("grey")])
    assert row.status == GeneratedImage.Status.SUCCEEDED, row.error_message
    assert len(row.reference_images) == 2


# The admin ----------------------------------------------------------------------------------


def upload(name="logo.png", data=None):
    return SimpleUploadedFile(name, data if data is not None else png(), content_type="image/png")


@pytest.mark.urls("tests.test_admin")
def test_the_action_page_offers_a_set_and_uploads_with_the_advice(admin_client):
    from tests.test_admin import articles_url, run_action

    make_set("brand", 3)
    article = Article.objects.create(title="Harbour lights", topic="travel")
    page = run_action(admin_client, articles_url(), "generate_header_image", [article])
    html = page.content.decode()
    assert 'enctype="multipart/form-data"' in html
    assert '<option value="brand">Brand</option>' in html
    assert 'type="file" name="references"' in html and "multiple" in html
    assert "two or more reference images to carry a style" in html


@pytest.mark.urls("tests.test_admin")
def test_the_action_sends_the_picked_set_and_one_stored_upload_for_every_article(
    admin_client, django_capture_on_commit_callbacks
):
    from tests.test_admin import confirm

    make_set("brand", 3)
    articles = [Article.objects.create(title=f"Article {n}", topic="news") for n in (1, 2)]
    with django_capture_on_commit_callbacks():  # queued, not run
        response = confirm(
            admin_client, articles, reference_set="brand", references=[upload("sketch.png")]
        )

    assert response.status_code == 302
    rows = list(GeneratedImage.objects.all())
    assert len(rows) == 2
    for row in rows:
        assert [entry["set"] for entry in row.reference_images] == ["brand"] * 3 + [""]
    (own,) = ReferenceImage.objects.filter(reference_set=None)
    assert {row.reference_images[-1]["id"] for row in rows} == {own.pk}


@pytest.mark.urls("tests.test_admin")
def test_a_bad_upload_in_the_action_is_an_error_on_the_form_not_a_500(admin_client):
    from tests.test_admin import confirm

    article = Article.objects.create(title="Harbour lights", topic="travel")
    response = confirm(admin_client, [article], references=[upload("notes.png", b"plain text")])

    assert response.status_code == 200
    assert response.context["form"].errors["references"] == [
        "The reference image 'notes.png' is not a JPEG, PNG or WebP image (or it is damaged). "
        "Upload it as one of those."
    ]
    assert not GeneratedImage.objects.exists() and not ReferenceImage.objects.exists()


def inline_data(*images):
    """The reference-set page's POST for its image inline: (caption, file, position)s."""
    data = {
        "images-TOTAL_FORMS": str(len(images)),
        "images-INITIAL_FORMS": "0",
        "images-MIN_NUM_FORMS": "0",
        "images-MAX_NUM_FORMS": "1000",
    }
    for index, (caption, file, position) in enumerate(images):
        data[f"images-{index}-image"] = file
        data[f"images-{index}-caption"] = caption
        data[f"images-{index}-position"] = str(position)
    return data


def test_an_editor_uploads_a_brand_kit_in_the_admin(admin_client, settings):
    add = "/admin/nanobanana_django/referenceset/add/"
    page = admin_client.get(add).content.decode()
    assert "two or more reference images to carry a style" in page

    response = admin_client.post(
        add,
        {
            "label": "Brand",
            "name": "brand",
            "description": "Our colours",
            **inline_data(
                ("wordmark", upload("wordmark.png", png("navy")), 1),
                ("", upload("palette.jpg", png("gold", fmt="JPEG")), 0),  # named after its file
            ),
        },
    )

    assert response.status_code == 302, response.context["errors"]
    kit = ReferenceSet.objects.get(name="brand")
    assert [
        (image.caption, image.width, image.height) for image in kit.images.order_by("position")
    ] == [
        ("palette", 64, 48),
        ("wordmark", 64, 48),
    ]
    assert all(image.size_bytes for image in kit.images.all())
    listing = admin_client.get("/admin/nanobanana_django/referenceset/").content.decode()
    assert listing.count('class="nanobanana-thumb"') == 2
    assert "preset “brand”" in listing  # the built-in brand preset uses it


def test_a_bad_upload_in_the_set_admin_is_a_form_error(admin_client, settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "MAX_REFERENCE_BYTES": 100}
    response = admin_client.post(
        "/admin/nanobanana_django/referenceset/add/",
        {"label": "Kit", "name": "kit", **inline_data(("big", upload("big.png"), 0))},
    )
    assert response.status_code == 200
    (errors,) = response.context["inline_admin_formsets"][0].formset.errors
    assert errors["image"] == [
        f"The reference image 'big.png' ({len(png())} bytes) is larger than the 100 bytes allowed "
        "(NANOBANANA['MAX_REFERENCE_BYTES']). Save it smaller (e.g. as a JPEG) and upload it "
        "again."
    ]
    assert not ReferenceSet.objects.exists()


def test_the_set_page_lists_the_models_that_use_it(admin_client, settings):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "MODELS": {"testapp.Article": {**ARTICLE, "references": "house"}},
        "PRESETS": {"autumn": {"references": "house"}},
    }
    kit = make_set("house", 2)
    page = admin_client.get(f"/admin/nanobanana_django/referenceset/{kit.pk}/change/")
    assert "preset “autumn”, testapp.Article" in page.content.decode()


def test_a_reference_deleted_while_queued_fails_the_generation_saying_so():
    from nanobanana_django.pipeline import run_generation

    row = create_generation(None, prompt="A poster", references=[png("red"), png("blue")])
    ReferenceImage.objects.filter(pk=row.reference_images[0]["id"]).delete()

    row = run_generation(row.pk)

    assert row.status == GeneratedImage.Status.FAILED
    assert row.error_code == "reference_missing"
    assert "'reference-1' was deleted after this generation was queued" in row.error_message


def test_a_generations_page_shows_the_references_it_sent(admin_client):
    make_set("brand", 2)
    row = create_generation(None, prompt="A poster", preset="brand", references=[png("red")])
    ReferenceImage.objects.filter(caption="brand 2").delete()

    page = admin_client.get(f"/admin/nanobanana_django/generatedimage/{row.pk}/change/")

    html = page.content.decode()
    assert 'title="brand 1 (brand)"' in html and 'title="reference-3 (this request)"' in html
    assert html.count('class="nanobanana-thumb"') == 2
    assert "brand 2 (deleted)" in html


# What reaches the provider (the emulators) --------------------------------------------------


def colour_of(data: bytes):
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").getpixel((0, 0))


KIT_COLOURS = [(0, 0, 128), (255, 215, 0), (255, 255, 255)]  # navy, gold, white
OWN_COLOUR = (0, 128, 0)


def test_a_brand_kit_of_3_and_1_request_image_reach_replicate_as_4_image_inputs(replicate):
    make_set("brand", 3)
    article = Article.objects.create(title="The harbour festival", topic="events")

    row = generate_for(article, preset="brand", references=[upload("sketch.png", png("green"))])

    assert row.status == GeneratedImage.Status.SUCCEEDED, row.error_message
    received = replicate.images_received()
    assert [colour_of(image.data) for image in received] == [*KIT_COLOURS, OWN_COLOUR]
    (create,) = [r for r in replicate.requests if r.method == "POST" and "/models/" in r.path]
    assert len(create.json()["input"]["image_input"]) == 4
    assert len(row.reference_images) == 4


def test_a_brand_kit_of_3_and_1_request_image_reach_gemini_as_4_inline_parts(gemini):
    make_set("brand", 3)
    article = Article.objects.create(title="The harbour festival", topic="events")

    row = generate_for(article, preset="brand", references=[png("green")])

    assert row.status == GeneratedImage.Status.SUCCEEDED, row.error_message
    received = gemini.images_received()
    assert [mime for mime, _ in received] == ["image/png"] * 4
    assert [colour_of(data) for _, data in received] == [*KIT_COLOURS, OWN_COLOUR]


@pytest.mark.parametrize("route", ["replicate", "gemini"])
def test_a_fifteenth_reference_is_refused_before_any_request(request, route):
    emulator = request.getfixturevalue(route)
    make_set("brand", 14)
    article = Article.objects.create(title="The harbour festival", topic="events")

    (message,) = refused(generate_for, article, preset="brand", references=[png()])

    assert "15 images, more than the 14" in message
    assert emulator.requests == []
    assert not GeneratedImage.objects.exists()


# The reference-set page in a real browser (the screenshot in docs/references.md) ------------

urlpatterns = [
    path("admin/", admin.site.urls),
    re_path(r"^media/(?P<path>.*)$", serve_media),
]


def brand_image(kind: str) -> bytes:
    colours = ["#12355b", "#2a7f8e", "#e8765c", "#f2c57c", "#f7f1e5"]
    image = Image.new("RGB", (800, 450), colours[-1] if kind != "pattern" else colours[0])
    draw = ImageDraw.Draw(image)
    if kind == "palette":
        for index, colour in enumerate(colours):
            draw.rectangle([index * 160, 0, index * 160 + 160, 450], fill=colour)
    elif kind == "wordmark":
        draw.ellipse([60, 135, 240, 315], fill=colours[2])
        draw.text((280, 170), "Harbour", font=ImageFont.load_default(size=90), fill=colours[0])
    else:
        for row, y in enumerate(range(-40, 490, 80)):
            for x in range(-40 + (row % 2) * 40, 840, 80):
                draw.arc([x, y, x + 80, y + 80], 180, 360, fill=colours[1 + row % 3], width=12)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("tests.test_references")
def test_an_editor_sees_the_brand_kit_in_order_with_what_uses_it(
    live_server,
    browser,  # noqa: F811
    admin_user,
    settings,
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "PRESETS": {"house_style": {"label": "House style", "references": "brand"}},
    }
    kit = ReferenceSet.objects.create(
        name="brand",
        label="Harbour Press brand kit",
        description="Palette, wordmark and pattern of the magazine.",
    )
    for position, kind in enumerate(["palette", "wordmark", "pattern"]):
        data = brand_image(kind)
        image = ReferenceImage(reference_set=kit, caption=kind.title(), position=position)
        image.image.save(f"{kind}.png", ContentFile(data), save=False)
        image.size_bytes = len(data)
        image.save()
    wait = WebDriverWait(browser, TIMEOUT)

    log_in(browser, live_server, admin_user, "/admin/nanobanana_django/referenceset/")
    wait.until(EC.presence_of_element_located((By.ID, "result_list")))
    browser.execute_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    listed = browser.find_elements(By.CSS_SELECTOR, "#result_list .nanobanana-thumb img")
    assert len(listed) == 3

    browser.find_element(By.LINK_TEXT, "brand").click()
    wait.until(EC.presence_of_element_located((By.ID, "images-group")))
    thumbnails = browser.find_elements(By.CSS_SELECTOR, "#images-group .nanobanana-thumb img")
    assert [image.get_attribute("alt") for image in thumbnails] == [
        "Palette",
        "Wordmark",
        "Pattern",
    ]
    wait.until(lambda driver: all(loaded(driver, image) for image in thumbnails))
    page = browser.find_element(By.ID, "content").text
    assert "two or more reference images to carry a style" in page
    assert "preset “brand”, preset “house_style”" in page
    assert "800×450" in page
    scroll = browser.execute_script("return document.documentElement.scrollWidth")
    assert scroll <= browser.execute_script("return window.innerWidth")
    table, box = browser.execute_script(
        "const g = document.querySelector('#images-group fieldset');"
        "return [g.scrollWidth, g.clientWidth]"
    )
    assert table <= box, f"the images table is {table} px wide in a {box} px box"
    save_screenshot(browser, "references-admin.png")


def test_publishing_with_a_missing_brand_set_saves_the_article_and_logs_why(settings, caplog):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "MODELS": {
            "testapp.Article": {
                **ARTICLE,
                "preset": "brand",
                "publish": {"field": "status", "values": ["published"]},
            }
        },
    }
    article = Article.objects.create(title="Harbour lights", topic="travel", status="published")

    assert Article.objects.filter(pk=article.pk).exists()
    assert not GeneratedImage.objects.exists()
    assert "There is no reference set 'brand' (named by the preset 'brand')" in caplog.text


def test_a_set_image_made_in_code_is_measured_once():
    kit = make_set("kit", 2)
    kit.images.update(size_bytes=None)
    create_generation(None, prompt="x", references="kit")
    assert all(image.size_bytes for image in kit.images.all())


def test_the_action_page_offers_no_references_for_a_model_that_takes_no_images():
    from dataclasses import replace

    from nanobanana_django.forms import GenerateHeaderImageForm

    make_set("brand", 2)
    spec = get_provider_config().spec()
    with_images = GenerateHeaderImageForm(spec=spec, defaults={}, several=False)
    without = GenerateHeaderImageForm(
        spec=replace(spec, image_input=""), defaults={}, several=False
    )
    assert {"reference_set", "references"} <= set(with_images.fields)
    assert not {"reference_set", "references"} & set(without.fields)
