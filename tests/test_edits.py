"""Conversational editing: an instruction makes a child version of a finished image, on
every route, and the admin shows the chain as a thread."""

import base64
from itertools import pairwise

import pytest
from django.core.exceptions import ValidationError

from nanobanana_django.models import GeneratedImage
from nanobanana_django.providers import gemini_api
from nanobanana_django.services import (
    edit_generation,
    generate_for,
    queue_edit,
    thread_of,
    use_generation,
)
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db

Kind = GeneratedImage.Kind
Status = GeneratedImage.Status


@pytest.fixture
def placeholder(settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "PROVIDER": "placeholder"}


@pytest.fixture
def article():
    return Article.objects.create(title="Ten quiet cafés in Lisbon", topic="travel")


def stored_bytes(row):
    with row.image.storage.open(row.image.name, "rb") as file:
        return file.read()


def gemini_calls(emulator):
    return [r.body for r in emulator.requests if ":generateContent" in r.path]


# The Python API ----------------------------------------------------------------------------


def test_an_edit_makes_a_child_of_the_image_and_leaves_the_article_alone(placeholder, article):
    original = generate_for(article)
    article.refresh_from_db()
    attached = article.header_image.name

    edit = edit_generation(original, "make the background a rooftop at sunset")

    assert edit.status == Status.SUCCEEDED, edit.error_message
    assert (edit.kind, edit.parent_id) == (Kind.EDIT, original.pk)
    assert edit.prompt == "make the background a rooftop at sunset"
    assert edit.content_object == article and edit.target_field == "header_image"
    assert (edit.provider, edit.model_name) == (original.provider, original.model_name)
    assert edit.image and edit.image.name != original.image.name
    assert not edit.auto_attach
    article.refresh_from_db()
    assert article.header_image.name == attached


def test_choosing_an_edit_attaches_it(placeholder, article):
    edit = edit_generation(generate_for(article), "warmer light")

    assert use_generation(edit)
    article.refresh_from_db()
    assert article.header_image.name == edit.image.name


def test_an_edit_asked_to_attach_replaces_the_image_when_done(placeholder, article):
    edit = edit_generation(generate_for(article), "warmer light", attach=True)

    assert edit.status == Status.SUCCEEDED, edit.error_message
    article.refresh_from_db()
    assert article.header_image.name == edit.image.name


def test_the_edit_keeps_the_parents_inputs(placeholder, article):
    original = generate_for(article, input={"aspect_ratio": "21:9", "resolution": "2K"})

    edit = edit_generation(original, "add rain")

    assert edit.input_params["resolution"] == "2K"
    assert edit.input_params["aspect_ratio"] == "21:9"
    assert (edit.width, edit.height) == (original.width, original.height)


def test_edits_of_edits_form_a_chain_of_three_that_links_correctly(placeholder, article):
    original = generate_for(article)
    first = edit_generation(original, "make it night")
    second = edit_generation(first, "add a full moon")
    third = edit_generation(second, "remove the people")

    for child, parent in ((first, original), (second, first), (third, second)):
        assert child.status == Status.SUCCEEDED, child.error_message
        assert child.parent == parent and child.kind == Kind.EDIT
    assert [v.pk for v in original.children.all()] == [first.pk]
    expected = [original.pk, first.pk, second.pk, third.pk]
    for member in (original, first, second, third):
        assert [v.pk for v in thread_of(member)] == expected


def test_the_thread_keeps_branches(placeholder, article):
    original = generate_for(article)
    left = edit_generation(original, "make it night")
    right = edit_generation(original, "make it winter")
    deeper = edit_generation(left, "add a moon")

    assert [v.pk for v in thread_of(right)] == [original.pk, left.pk, right.pk, deeper.pk]


def test_queue_edit_runs_after_the_commit(placeholder, article, django_capture_on_commit_callbacks):
    original = generate_for(article)
    with django_capture_on_commit_callbacks(execute=True):
        queued = queue_edit(original, "make it night")
        assert queued.status == Status.QUEUED

    queued.refresh_from_db()
    assert queued.status == Status.SUCCEEDED, queued.error_message
    assert queued.parent_id == original.pk


# Refusals, before anything is recorded ------------------------------------------------------


def test_an_empty_instruction_is_refused(placeholder, article):
    original = generate_for(article)

    with pytest.raises(ValidationError) as caught:
        edit_generation(original, "   ")
    assert "instruction" in caught.value.message_dict
    assert original.children.count() == 0


def test_a_version_that_did_not_succeed_cannot_be_edited(placeholder, article):
    original = generate_for(article)
    GeneratedImage.objects.filter(pk=original.pk).update(status=Status.FAILED, image="")
    original.refresh_from_db()

    with pytest.raises(ValueError, match="edit a version that succeeded"):
        edit_generation(original, "make it night")
    assert GeneratedImage.objects.count() == 1


def test_a_version_whose_image_is_gone_cannot_be_edited(placeholder, article):
    original = generate_for(article)
    original.image.storage.delete(original.image.name)

    with pytest.raises(ValueError, match="no longer in storage"):
        edit_generation(original, "make it night")
    assert GeneratedImage.objects.count() == 1


def test_a_provider_that_takes_no_images_cannot_edit(placeholder, article, settings):
    original = generate_for(article)
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "PROVIDERS": {"blind": {"BACKEND": "tests.test_edits.BlindProvider"}},
    }
    GeneratedImage.objects.filter(pk=original.pk).update(provider="blind")
    original.refresh_from_db()

    with pytest.raises(ValueError, match="takes no images"):
        edit_generation(original, "make it night")


from nanobanana_django.providers.placeholder import PlaceholderProvider  # noqa: E402


class BlindProvider(PlaceholderProvider):
    """A provider without image inputs (not the placeholder, which edits for the demo)."""

    is_placeholder = False


# Replicate: the parent's stored image as an image input ------------------------------------


def test_a_replicate_edit_sends_the_parents_stored_image(replicate, article):
    original = generate_for(article)

    edit = edit_generation(original, "make the background a rooftop at sunset")

    assert edit.status == Status.SUCCEEDED, edit.error_message
    (received,) = replicate.images_received(edit.prediction_id)
    assert received.data == stored_bytes(original)
    assert received.via in ("data", "file")  # never a URL of the site's storage
    assert edit.input_params["aspect_ratio"] == "match_input_image"
    sent = [
        r.json()["input"] for r in replicate.requests if r.method == "POST" and "/models/" in r.path
    ]
    assert sent[-1]["prompt"] == "make the background a rooftop at sunset"
    for item in sent[-1]["image_input"]:
        assert item.startswith(("data:", f"{replicate.base_url}/v1/files/")), item


def test_a_chain_of_three_on_replicate_sends_each_parents_image(replicate, article):
    original = generate_for(article)
    chain = [original]
    for instruction in ("make it night", "add a full moon", "remove the people"):
        chain.append(edit_generation(chain[-1], instruction))

    for parent, child in pairwise(chain):
        assert child.status == Status.SUCCEEDED, child.error_message
        assert child.parent_id == parent.pk and child.kind == Kind.EDIT
        (received,) = replicate.images_received(child.prediction_id)
        assert received.data == stored_bytes(parent)
    assert [v.pk for v in thread_of(chain[-1])] == [v.pk for v in chain]
    article.refresh_from_db()
    assert article.header_image.name == original.image.name


# Gemini: the previous turn replayed with its thought signature -----------------------------


def test_a_gemini_image_keeps_its_turn_without_the_image_bytes(gemini, article):
    row = generate_for(article)

    assert row.status == Status.SUCCEEDED, row.error_message
    kept = row.provider_state["gemini"]
    assert kept["user"]["parts"][0]["text"] == row.prompt
    parts = kept["model"]["parts"]
    image_parts = [p for p in parts if "inlineData" in p]
    assert len(image_parts) == 1
    assert image_parts[0]["inlineData"]["data"] == gemini_api.STORED_IMAGE
    assert image_parts[0]["thoughtSignature"]
    assert not any(p.get("thought") for p in parts)  # drafts are not kept


def test_a_gemini_edit_replays_the_previous_turn_with_its_signature(gemini, article):
    original = generate_for(article)
    edit = edit_generation(original, "make the background a rooftop at sunset")

    assert edit.status == Status.SUCCEEDED, edit.error_message
    body = gemini_calls(gemini)[-1]
    user, model, instruction = body["contents"]
    assert user == {"role": "user", "parts": [{"text": original.prompt}]}
    (image_part,) = [p for p in model["parts"] if "inlineData" in p]
    assert base64.b64decode(image_part["inlineData"]["data"]) == stored_bytes(original)
    signature = original.provider_state["gemini"]["model"]["parts"][-1]["thoughtSignature"]
    assert image_part["thoughtSignature"] == signature
    assert instruction == {
        "role": "user",
        "parts": [{"text": "make the background a rooftop at sunset"}],
    }
    assert "aspectRatio" in body["generationConfig"]["imageConfig"]  # the parent's ratio
    assert edit.provider_state["gemini"]["user"]["parts"][0]["text"] == edit.prompt


def test_a_kept_turn_that_lost_its_signature_is_not_replayed(gemini, article):
    """Google refuses a replayed image without its signature: send the image inline."""
    original = generate_for(article)
    state = original.provider_state
    for part in state["gemini"]["model"]["parts"]:
        part.pop("thoughtSignature", None)
    GeneratedImage.objects.filter(pk=original.pk).update(provider_state=state)
    original.refresh_from_db()
    gemini.reset()

    edit = edit_generation(original, "make it night")

    assert edit.status == Status.SUCCEEDED, edit.error_message
    (body,) = gemini_calls(gemini)
    assert [turn["role"] for turn in body["contents"]] == ["user"]
    assert len(body["contents"][0]["parts"]) == 2  # the instruction and the image


def test_the_emulator_refuses_a_model_turn_whose_image_has_no_signature(gemini):
    import httpx

    image = base64.b64encode(gemini_image(gemini)).decode()
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "a harbour"}]},
            {
                "role": "model",
                "parts": [
                    {"text": "Here it is.", "thoughtSignature": "c2ln"},
                    {"inlineData": {"mimeType": "image/png", "data": image}},
                ],
            },
            {"role": "user", "parts": [{"text": "make it night"}]},
        ]
    }
    answer = httpx.post(
        f"{gemini.base_url}/v1beta/models/gemini-3.1-flash-image:generateContent",
        json=body,
        headers={"x-goog-api-key": gemini.api_key},
    )
    assert answer.status_code == 400
    assert "thought_signature" in answer.json()["error"]["message"]


def gemini_image(emulator):
    from nanobanana_django.testing.images import render_image

    return render_image("seed", (64, 64), "png")


def test_an_edit_of_an_image_without_kept_state_sends_it_inline(gemini, article):
    original = generate_for(article)
    GeneratedImage.objects.filter(pk=original.pk).update(provider_state={})
    original.refresh_from_db()
    gemini.reset()

    edit = edit_generation(original, "make it night")

    assert edit.status == Status.SUCCEEDED, edit.error_message
    (body,) = gemini_calls(gemini)
    (turn,) = body["contents"]
    text, image = turn["parts"]
    assert text == {"text": "make it night"}
    assert base64.b64decode(image["inlineData"]["data"]) == stored_bytes(original)


def test_a_chain_of_three_on_gemini_replays_each_parent(gemini, article):
    original = generate_for(article)
    first = edit_generation(original, "make it night")
    second = edit_generation(first, "add a full moon")
    third = edit_generation(second, "remove the people")

    assert third.status == Status.SUCCEEDED, third.error_message
    assert [third.parent, second.parent, first.parent] == [second, first, original]
    last = gemini_calls(gemini)[-1]["contents"]
    assert last[0]["parts"] == [{"text": "add a full moon"}]
    (image_part,) = [p for p in last[1]["parts"] if "inlineData" in p]
    assert base64.b64decode(image_part["inlineData"]["data"]) == stored_bytes(second)


# The admin -----------------------------------------------------------------------------------

admin_urls = pytest.mark.urls("tests.test_admin")


def admin_url(name, *args):
    from tests.test_admin import url

    return url(f"nanobanana_django_generatedimage_{name}", *args)


@admin_urls
def test_a_generations_page_has_the_edit_form(placeholder, article, admin_client):
    original = generate_for(article)

    page = admin_client.get(admin_url("change", original.pk)).content.decode()

    assert "Edit this image" in page
    assert f'action="{admin_url("edit", original.pk)}"' in page
    assert 'name="instruction"' in page


@admin_urls
def test_posting_an_instruction_queues_an_edit_that_appears_in_the_thread(
    placeholder, article, admin_client, settings, django_capture_on_commit_callbacks
):
    settings.NANOBANANA = {**settings.NANOBANANA, "TASK_RUNNER": "immediate"}
    original = generate_for(article)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            admin_url("edit", original.pk), {"instruction": "make it night"}
        )

    assert response.status_code == 302
    assert response["Location"] == admin_url("change", original.pk) + "#nanobanana-edit"
    (edit,) = original.children.all()
    assert edit.status == Status.SUCCEEDED, edit.error_message
    assert edit.requested_by is not None
    page = admin_client.get(response["Location"]).content.decode()
    assert f"Edit queued as image #{edit.pk}" in page
    assert "Version 2" in page and "make it night" in page
    assert admin_url("use", edit.pk) in page  # not in use yet: it can be chosen
    assert "In use" in page  # the original, still the article's image


@admin_urls
def test_an_empty_instruction_queues_nothing_and_says_why(placeholder, article, admin_client):
    original = generate_for(article)

    response = admin_client.post(admin_url("edit", original.pk), {"instruction": " "})

    assert original.children.count() == 0
    page = admin_client.get(response["Location"]).content.decode()
    assert "This field is required." in page


@admin_urls
def test_a_failed_version_offers_no_edit_form(placeholder, article, admin_client):
    original = generate_for(article)
    GeneratedImage.objects.filter(pk=original.pk).update(status=Status.FAILED, image="")

    page = admin_client.get(admin_url("change", original.pk)).content.decode()
    assert "Edit this image" not in page
    response = admin_client.post(admin_url("edit", original.pk), {"instruction": "night"})
    assert original.children.count() == 0
    assert (
        "edit a version that succeeded" in admin_client.get(response["Location"]).content.decode()
    )


@admin_urls
def test_an_editor_who_may_only_view_cannot_edit(placeholder, article, client, django_user_model):
    from django.contrib.auth.models import Permission

    original = generate_for(article)
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(codename__in=["view_generatedimage", "view_article"])
    )
    client.force_login(user)

    page = client.get(admin_url("change", original.pk)).content.decode()
    assert "Edit this image" not in page
    response = client.post(admin_url("edit", original.pk), {"instruction": "night"})
    assert response.status_code == 403
    assert original.children.count() == 0


@admin_urls
def test_the_articles_history_links_each_version_to_its_edit_form(
    placeholder, article, admin_client
):
    from tests.test_admin import url

    original = generate_for(article)

    page = admin_client.get(url("testapp_article_change", article.pk)).content.decode()

    assert f'href="{admin_url("change", original.pk)}#nanobanana-edit"' in page


@admin_urls
def test_the_thread_reloads_itself_while_a_version_is_unfinished(
    placeholder, article, admin_client
):
    original = generate_for(article)
    page = admin_client.get(admin_url("change", original.pk)).content.decode()
    assert "data-nanobanana-refresh" not in page

    queue_edit(original, "make it night")  # not committed in this test: stays queued

    page = admin_client.get(admin_url("change", original.pk)).content.decode()
    assert "data-nanobanana-refresh" in page and "edit_thread.js" in page


def test_an_image_made_for_a_bare_prompt_can_be_edited(placeholder):
    from nanobanana_django.services import generate_image

    original = generate_image("A lighthouse at dusk")

    edit = edit_generation(original, "add a storm")

    assert edit.status == Status.SUCCEEDED, edit.error_message
    assert edit.parent == original and not edit.content_type_id
    assert edit.image


def test_the_pre_generation_signal_can_stop_an_edit(replicate, article):
    from nanobanana_django.costs import CancelGeneration
    from nanobanana_django.signals import pre_generation

    original = generate_for(article)
    created = replicate.created_count

    def no_edits_on_fridays(sender, generated_image, **kwargs):
        if generated_image.kind == Kind.EDIT:
            raise CancelGeneration("Edits wait for Monday.")

    pre_generation.connect(no_edits_on_fridays)
    try:
        edit = edit_generation(original, "make it night")
    finally:
        pre_generation.disconnect(no_edits_on_fridays)

    assert edit.status == Status.FAILED
    assert (edit.error_code, edit.error_message) == ("canceled_by_policy", "Edits wait for Monday.")
    assert replicate.created_count == created  # nothing sent, nothing billed
    original.refresh_from_db()
    assert original.status == Status.SUCCEEDED
