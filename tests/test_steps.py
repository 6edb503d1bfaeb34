"""Multi-model steps: an upscale after generation, each step its own linked, billed row."""

import re
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured, ValidationError

from nanobanana_django.conf import app_settings
from nanobanana_django.exceptions import GenerationInProgress
from nanobanana_django.models import GeneratedImage
from nanobanana_django.pipeline import complete_generation, run_generation
from nanobanana_django.poller import requeue_lost
from nanobanana_django.providers.replicate_models import UPSCALER
from nanobanana_django.services import (
    create_generation,
    generate_for,
    generate_image,
    queue_generation,
    retry_generation,
)
from nanobanana_django.signals import pre_generation
from tests.test_admin import articles_url, confirm, run_action
from tests.test_admin_browser import TIMEOUT, browser, loaded, save_screenshot  # noqa: F401
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db

Kind = GeneratedImage.Kind
Status = GeneratedImage.Status
PRICES = {"replicate": {"google/nano-banana-2": {"1K": "0.04"}, UPSCALER: {"*": "0.0025"}}}


@pytest.fixture
def replicate(replicate, settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "PRICES": PRICES}
    return replicate


def creates(emulator):
    return [r.json() for r in emulator.requests if r.method == "POST" and "/models/" in r.path]


def created_models(emulator):
    return [
        r.path.split("/models/")[1].rsplit("/", 1)[0]
        for r in emulator.requests
        if r.method == "POST" and "/models/" in r.path
    ]


@pytest.fixture
def fail_the_step(replicate):
    """Make the emulator fail the next prediction once a step is about to be sent."""

    def receiver(generated_image, **kwargs):
        if generated_image.kind == Kind.STEP:
            replicate.add_fault("fail", error="CUDA out of memory")

    pre_generation.connect(receiver, dispatch_uid="test-fail-the-step")
    yield
    pre_generation.disconnect(dispatch_uid="test-fail-the-step")


def test_generate_and_upscale_makes_two_linked_rows_and_attaches_the_upscaled_image(replicate):
    article = Article.objects.create(title="The harbour at dawn")

    final = generate_for(article, steps=["upscale"])

    assert final.status == Status.SUCCEEDED, final.error_message
    first = GeneratedImage.objects.get(kind=Kind.GENERATE)
    assert (final.kind, final.parent, final.step, final.next_steps) == (
        Kind.STEP,
        first,
        "upscale",
        [],
    )
    assert first.status == Status.SUCCEEDED and first.next_steps == ["upscale"]
    assert (final.provider, final.model_name) == ("replicate", UPSCALER)
    # Each row is its own prediction: billed, timed.
    assert (
        first.prediction_id and final.prediction_id and first.prediction_id != final.prediction_id
    )
    assert first.predict_time is not None and final.predict_time is not None
    assert (first.cost, final.cost) == (Decimal("0.04"), Decimal("0.0025"))
    assert created_models(replicate) == ["google/nano-banana-2", UPSCALER]
    # The upscaler got the generated image and its scale, and no prompt.
    sent = creates(replicate)[1]["input"]
    assert sent["scale"] == 2 and "prompt" not in sent
    assert sent["image"].startswith(("data:image/", replicate.base_url))
    # The article shows the upscaled image: 2x each side.
    assert article.header_image.name == final.image.name
    article.refresh_from_db()
    assert article.header_image.name == final.image.name != first.image.name
    assert (final.width, final.height) == (2 * first.width, 2 * first.height)
    assert (article.header_image.width, article.header_image.height) == (final.width, final.height)


def test_a_failed_upscale_leaves_the_generated_image_attached_and_says_so(replicate, fail_the_step):
    article = Article.objects.create(title="Night trains")

    final = generate_for(article, steps=["upscale"])

    first = GeneratedImage.objects.get(kind=Kind.GENERATE)
    assert final.kind == Kind.STEP and final.status == Status.FAILED
    assert final.error_code == "prediction_failed"
    assert final.error_message.startswith(
        "The upscale failed: The model could not make this image: CUDA out of memory"
    )
    assert final.error_message.endswith(f"the generated image #{first.pk} was attached instead.")
    assert final.prediction_id and final.prediction_id != first.prediction_id
    assert article.header_image.name == first.image.name  # generate_for shows it on `article`
    article.refresh_from_db()
    assert article.header_image.name == first.image.name


def test_a_failed_upscale_of_an_image_without_an_object_keeps_it_usable(replicate, fail_the_step):
    final = generate_image("A lighthouse in fog", steps=["upscale"])

    first = final.parent
    assert final.status == Status.FAILED and first.status == Status.SUCCEEDED
    assert first.image
    assert final.error_message.endswith(
        f"the generated image #{first.pk} is kept: use it from its page."
    )


def test_retrying_a_failed_step_upscales_the_same_image_and_replaces_the_fallback(
    replicate, fail_the_step, django_capture_on_commit_callbacks
):
    article = Article.objects.create(title="Night trains")
    failed = generate_for(article, steps=["upscale"])
    pre_generation.disconnect(dispatch_uid="test-fail-the-step")

    with django_capture_on_commit_callbacks(execute=True):
        retry = retry_generation(failed)

    retry.refresh_from_db()
    assert retry.status == Status.SUCCEEDED, retry.error_message
    assert (retry.kind, retry.parent_id, retry.step) == (Kind.STEP, failed.parent_id, "upscale")
    article.refresh_from_db()
    assert article.header_image.name == retry.image.name


def test_steps_come_from_a_preset(replicate, settings, django_capture_on_commit_callbacks):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "PRESETS": {"hires": {"input": {"aspect_ratio": "4:3"}, "steps": ["upscale"]}},
    }
    article = Article.objects.create(title="Old maps")

    with django_capture_on_commit_callbacks(execute=True):
        first = queue_generation(article, preset="hires")

    assert first.next_steps == ["upscale"]
    step = GeneratedImage.objects.get(kind=Kind.STEP)
    assert step.status == Status.SUCCEEDED, step.error_message
    assert (step.parent_id, step.preset) == (first.pk, "hires")
    article.refresh_from_db()
    assert article.header_image.name == step.image.name


def test_a_background_generation_queues_its_step_when_it_completes(
    replicate, django_capture_on_commit_callbacks
):
    """The poller or the webhook finishes the first row; its step is queued, not run there."""
    article = Article.objects.create(title="Harvest")
    first = create_generation(article, steps=["upscale"])
    replicate.latency = 0.2
    assert run_generation(first.pk, wait=False).status == Status.RUNNING
    time.sleep(0.3)
    replicate.latency = 0.0

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = complete_generation(first.pk)

    assert first.status == Status.SUCCEEDED, first.error_message
    step = GeneratedImage.objects.get(kind=Kind.STEP)
    assert step.status == Status.QUEUED  # the one unfinished generation of this article now
    article.refresh_from_db()
    assert not article.header_image  # nothing attached while the step waits
    with pytest.raises(Exception, match="already has a generation queued"):
        create_generation(article, overwrite=True)
    assert len(callbacks) == 1
    callbacks[0]()  # the task runner (immediate here) takes it
    step.refresh_from_db()
    assert step.status == Status.SUCCEEDED, step.error_message
    article.refresh_from_db()
    assert article.header_image.name == step.image.name


def test_retry_keeps_the_steps(replicate, django_capture_on_commit_callbacks):
    article = Article.objects.create(title="Ferries")
    first = generate_for(article, steps=["upscale"]).parent

    with django_capture_on_commit_callbacks(execute=False):
        again = retry_generation(first, overwrite=True)

    assert (again.kind, again.next_steps) == (Kind.GENERATE, ["upscale"])


def test_an_unknown_step_is_refused_before_anything_is_recorded(replicate):
    article = Article.objects.create(title="Ferries")

    with pytest.raises(ValidationError) as caught:
        create_generation(article, steps=["sharpen"])

    (message,) = caught.value.message_dict["steps"]
    assert "There is no step 'sharpen'" in message and "'upscale'" in message
    assert "NANOBANANA['STEPS']" in message
    assert not GeneratedImage.objects.exists()
    assert replicate.created_count == 0


def test_a_step_on_a_provider_that_takes_no_image_is_refused(replicate, settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "STEPS": {"upscale": {"provider": "placeholder"}}}

    with pytest.raises(ValidationError) as caught:
        create_generation(None, prompt="A kite", steps=["upscale"])

    (message,) = caught.value.message_dict["steps"]
    assert "'placeholder'" in message and "takes no images" in message
    assert "Name a Replicate alias" in message
    errors = [m for m in checks.run_checks() if m.id == "nanobanana.E014"]
    assert len(errors) == 1 and "takes no images" in errors[0].msg


def test_a_step_input_the_upscaler_does_not_take_is_a_check_error(settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "STEPS": {"upscale": {"input": {"scale": 8}}}}

    (error,) = [m for m in checks.run_checks() if m.id == "nanobanana.E014"]

    assert "NANOBANANA['STEPS']['upscale']['input']" in error.msg
    assert "8 is not allowed for scale" in error.msg


def test_a_custom_upscaler_model_needs_its_image_input(settings):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "STEPS": {"upscale": {"model": "someone/upscaler-x"}},
    }

    (error,) = [m for m in checks.run_checks() if m.id == "nanobanana.E014"]
    assert "'someone/upscaler-x'" in error.msg and "'image_input'" in error.msg

    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "STEPS": {"upscale": {"model": "someone/upscaler-x", "image_input": "img"}},
    }
    assert not [m for m in checks.run_checks() if m.id == "nanobanana.E014"]


def test_a_preset_naming_an_unknown_step_is_a_check_error(settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "PRESETS": {"hires": {"steps": ["upscal"]}}}

    (error,) = [m for m in checks.run_checks() if m.id == "nanobanana.E014"]

    assert "NANOBANANA['PRESETS']['hires']['steps']" in error.msg and "'upscal'" in error.msg


@pytest.mark.parametrize(
    ("steps", "problem"),
    [
        ({"Upscale!": {}}, "has the name"),
        ({"upscale": {"scale": 2}}, "unknown keys ['scale']"),
        ({"upscale": {"input": 2}}, "['input'] must be a dict"),
        ({"upscale": {"model": 2}}, "['model'] must be a string"),
    ],
)
def test_bad_step_settings_name_the_key(settings, steps, problem):
    settings.NANOBANANA = {**settings.NANOBANANA, "STEPS": steps}

    with pytest.raises(ImproperlyConfigured, match=r"NANOBANANA\['STEPS'\]") as caught:
        _ = app_settings.STEPS
    assert problem in str(caught.value)


def test_a_preset_with_steps_that_are_not_a_list_is_refused(settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "PRESETS": {"hires": {"steps": "upscale"}}}

    with pytest.raises(ImproperlyConfigured, match="must be a list of step names"):
        _ = app_settings.PRESETS


def test_another_upscaler_gets_the_image_in_the_input_its_step_names(replicate, settings):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "STEPS": {"upscale": {"model": "someone/upscaler-x", "image_input": "img", "input": {}}},
    }
    article = Article.objects.create(title="Dunes")

    final = generate_for(article, steps=["upscale"])

    # The emulator does not serve that model: Replicate's 404 fails the step, visibly.
    assert final.status == Status.FAILED and final.model_name == "someone/upscaler-x"
    assert "could not find the model 'someone/upscaler-x'" in final.error_message
    (sent,) = creates(replicate)[1:]
    assert list(sent["input"]) == ["img"] and sent["input"]["img"].startswith("data:image/jpeg")
    article.refresh_from_db()
    assert article.header_image.name == final.parent.image.name


def test_a_generations_page_links_it_to_its_steps(replicate, admin_client):
    final = generate_for(Article.objects.create(title="Dunes"), steps=["upscale"])
    first = final.parent

    for row, other in ((final, first), (first, final)):
        page = admin_client.get(f"/admin/nanobanana_django/generatedimage/{row.pk}/change/")
        html = page.content.decode()
        assert f"<strong>#{row.pk} {'Upscale' if row is final else 'Generation'}</strong>" in html
        assert f'/admin/nanobanana_django/generatedimage/{other.pk}/change/"' in html


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("tests.test_admin")
def test_an_editor_sees_the_upscale_linked_to_the_generation_it_ran_on(
    live_server, request, admin_user, replicate
):
    driver = request.getfixturevalue("browser")  # tests.test_admin_browser's Chromium
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    article = Article.objects.create(title="Ten quiet cafés in Lisbon", topic="travel")
    final = generate_for(article, steps=["upscale"])
    assert final.status == Status.SUCCEEDED, final.error_message
    wait = WebDriverWait(driver, TIMEOUT)
    driver.get(f"{live_server.url}/admin/login/?next=/admin/nanobanana_django/generatedimage/")
    driver.find_element(By.NAME, "username").send_keys(admin_user.username)
    driver.find_element(By.NAME, "password").send_keys("password")
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait.until(EC.presence_of_element_located((By.ID, "result_list")))
    driver.execute_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")

    driver.get(f"{live_server.url}/admin/nanobanana_django/generatedimage/{final.pk}/change/")
    steps = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "ol.nanobanana-steps")))
    assert steps.text.splitlines() == [
        f"#{final.parent_id} Generation Succeeded",
        f"#{final.pk} Upscale Succeeded",
    ]
    preview = driver.find_element(By.CSS_SELECTOR, ".nanobanana-preview img")
    wait.until(lambda driver: loaded(driver, preview))
    content = driver.find_element(By.ID, "content").text
    assert "2752 × 1536 px" in content
    assert "Step: upscale of the version before" in content  # its card among the versions
    save_screenshot(driver, "step-row.png")

    steps.find_element(By.LINK_TEXT, f"#{final.parent_id} Generation").click()
    wait.until(EC.url_contains(f"/generatedimage/{final.parent_id}/change/"))
    assert "1376 × 768 px" in driver.find_element(By.ID, "content").text


def test_an_upscale_past_the_pixel_cap_is_refused_before_anything_is_billed(replicate):
    article = Article.objects.create(title="Glaciers")

    with pytest.raises(ValidationError) as caught:
        create_generation(article, input={"resolution": "4K"}, steps=["upscale"])

    (message,) = caught.value.message_dict["steps"]
    assert "would make a 11008x6144 image (67.6 megapixels)" in message
    assert "NANOBANANA['MAX_IMAGE_PIXELS'] (40 megapixels)" in message
    assert not GeneratedImage.objects.exists() and replicate.created_count == 0
    assert create_generation(article, input={"resolution": "2K"}, steps=["upscale"]).next_steps


def test_a_budget_without_a_price_for_a_steps_model_is_a_warning(settings):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "DAILY_BUDGET": "5",
        "PRESETS": {"hires": {"steps": ["upscale"]}},
    }

    warnings = [m.msg for m in checks.run_checks() if m.id == "nanobanana.W009"]

    assert any("the step 'upscale' (nightmareai/real-esrgan on 'replicate')" in w for w in warnings)
    settings.NANOBANANA = {**settings.NANOBANANA, "PRICES": PRICES}
    warnings = [m.msg for m in checks.run_checks() if m.id == "nanobanana.W009"]
    assert not any("step" in w for w in warnings)


def test_a_step_on_a_prompt_driven_provider_sends_its_instruction_and_the_image(
    replicate, gemini_emulator, settings
):
    """Any provider whose model takes an image can run a step: here Gemini, told what to do."""
    gemini = gemini_emulator.settings("gemini")["PROVIDERS"]
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "PROVIDERS": {**settings.NANOBANANA.get("PROVIDERS", {}), **gemini},
        "STEPS": {"polish": {"provider": "gemini", "prompt": "Sharpen this image, keep all"}},
    }

    final = generate_image("A kite over the dunes", steps=["polish"])

    assert final.status == Status.SUCCEEDED, final.error_message
    assert (final.provider, final.step, final.prompt) == (
        "gemini",
        "polish",
        "Sharpen this image, keep all",
    )
    (call,) = [r for r in gemini_emulator.requests if ":generateContent" in r.path]
    parts = call.body["contents"][-1]["parts"]
    assert parts[0]["text"] == "Sharpen this image, keep all"
    assert parts[1]["inlineData"]["mimeType"] == "image/jpeg"


def test_a_step_whose_hand_over_was_lost_is_run_by_the_watchdog(
    replicate, django_capture_on_commit_callbacks
):
    """A worker dying after the parent's success and before queueing the step: the STEP row
    was created with that success, queued, and the watchdog hands it out again."""
    article = Article.objects.create(title="Harvest")
    first = create_generation(article, steps=["upscale"])
    replicate.latency = 0.2
    run_generation(first.pk, wait=False)
    time.sleep(0.3)
    with django_capture_on_commit_callbacks(execute=False):  # the hand-over never happens
        complete_generation(first.pk)
    step = GeneratedImage.objects.get(kind=Kind.STEP, status=Status.QUEUED)
    GeneratedImage.objects.filter(pk=step.pk).update(
        created_at=step.created_at - timedelta(minutes=2)
    )

    assert requeue_lost() == 1

    step.refresh_from_db()
    assert step.status == Status.SUCCEEDED, step.error_message
    article.refresh_from_db()
    assert article.header_image.name == step.image.name


def test_a_step_removed_from_the_settings_meanwhile_leaves_the_first_image_attached(replicate):
    article = Article.objects.create(title="Lighthouses")
    first = create_generation(article)
    GeneratedImage.objects.filter(pk=first.pk).update(next_steps=["sharpen"])  # queued earlier

    assert run_generation(first.pk).pk == first.pk

    step = GeneratedImage.objects.get(kind=Kind.STEP)
    assert (step.status, step.error_code, step.parent_id) == (
        Status.FAILED,
        "step_not_started",
        first.pk,
    )
    assert step.error_message.startswith("The sharpen step could not start: There is no step")
    assert step.error_message.endswith(
        f"The image #{first.pk} it was to run on is used as if the generation had no steps."
    )
    article.refresh_from_db()
    first.refresh_from_db()
    assert article.header_image.name == first.image.name
    assert replicate.created_count == 1


@pytest.mark.urls("tests.test_admin")
def test_an_editor_ticks_upscale_on_the_generate_page(
    replicate, admin_client, django_capture_on_commit_callbacks
):
    article = Article.objects.create(title="Old harbours")
    page = run_action(admin_client, articles_url(), "generate_header_image", [article])
    assert "Steps after generating" in page.content.decode()
    assert upscale_box(page) is not None and "checked" not in upscale_box(page)

    with django_capture_on_commit_callbacks(execute=True):
        confirm(admin_client, [article], steps=["upscale"])

    step = GeneratedImage.objects.get(kind=Kind.STEP)
    assert step.status == Status.SUCCEEDED, step.error_message
    article.refresh_from_db()
    assert article.header_image.name == step.image.name


@pytest.mark.urls("tests.test_admin")
def test_a_preset_with_steps_ticks_them_and_an_editor_can_untick_them(
    replicate, admin_client, settings
):
    registered = settings.NANOBANANA["MODELS"]["testapp.Article"]
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "PRESETS": {"hires": {"steps": ["upscale"]}},
        "MODELS": {"testapp.Article": {**registered, "preset": "hires"}},
    }
    article = Article.objects.create(title="Old harbours")
    page = run_action(admin_client, articles_url(), "generate_header_image", [article])
    assert "checked" in upscale_box(page)

    confirm(admin_client, [article], preset="hires")  # the box unticked: no steps sent

    (row,) = GeneratedImage.objects.all()
    assert row.kind == Kind.GENERATE and row.next_steps == []


def upscale_box(page):
    match = re.search(r'<input[^>]*name="steps"[^>]*value="upscale"[^>]*>', page.content.decode())
    return match and match.group(0)


def test_retrying_a_step_while_the_object_has_a_generation_in_flight_is_refused(
    replicate, fail_the_step
):
    article = Article.objects.create(title="Night trains")
    failed = generate_for(article, steps=["upscale"])
    create_generation(article, overwrite=True)  # queued, holds the object's one slot

    with pytest.raises(GenerationInProgress, match=f"The object of step {failed.pk} already"):
        retry_generation(failed)


def test_in_approval_mode_a_failed_upscale_puts_the_generated_image_up_for_review(
    replicate, fail_the_step, settings
):
    from nanobanana_django.review import awaiting_review

    models = settings.NANOBANANA["MODELS"]
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "MODELS": {**models, "testapp.Article": {**models["testapp.Article"], "approval": True}},
    }
    article = Article.objects.create(title="Night trains")

    final = generate_for(article, steps=["upscale"])

    first = final.parent
    assert final.status == Status.FAILED
    assert [row.pk for row in awaiting_review()] == [first.pk]
    article.refresh_from_db()
    assert not article.header_image  # waits for an editor, as without steps
