"""The admin: the "Generate header image" action, the history on an article's page, and
the read-only ``GeneratedImage`` records with retry, cancel, regenerate and "use".

The tests run against an admin site of their own (this module is its URLconf): the
articles are registered with a plain ``ModelAdmin`` and get the action from
``install_header_image_admin``, as the default site does when the app is ready; the
pages use ``HeaderImageAdminMixin``. Media files are served so thumbnails load.
"""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib import admin
from django.contrib.messages import get_messages
from django.urls import path, re_path, reverse
from django.utils import timezone
from django.views.static import serve
from django_q.conf import Conf

from nanobanana_django.admin import (
    GeneratedImageAdmin,
    GenerationHistoryInline,
    HeaderImageAdminMixin,
    add_header_image_admin,
    generate_header_image,
    install_header_image_admin,
)
from nanobanana_django.models import GeneratedImage
from nanobanana_django.providers import GenerationRequest, get_provider
from nanobanana_django.services import create_generation, generate_for
from tests.backends import queued_tasks
from tests.testapp.models import Article, Page, Poster

ROOT = Path(__file__).resolve().parent.parent
Status = GeneratedImage.Status


class PageAdmin(HeaderImageAdminMixin, admin.ModelAdmin):
    list_display = ("headline",)


class PosterAdmin(HeaderImageAdminMixin, admin.ModelAdmin):
    """Posters are not in NANOBANANA["MODELS"]: a mistake the action must explain."""


site = admin.AdminSite(name="testadmin")
site.register(Article)  # no admin code: the installer adds the action and the history
site.register(Page, PageAdmin)
site.register(Poster, PosterAdmin)
site.register(GeneratedImage, GeneratedImageAdmin)
install_header_image_admin(site)


def serve_media(request, path):
    return serve(request, path, document_root=django_settings.MEDIA_ROOT)


urlpatterns = [
    path("admin/", site.urls),
    re_path(r"^media/(?P<path>.*)$", serve_media),
]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


# Helpers ----------------------------------------------------------------------------


def url(name, *args):
    return reverse(f"testadmin:{name}", args=args)


def articles_url():
    return url("testapp_article_changelist")


def images_url():
    return url("nanobanana_django_generatedimage_changelist")


def run_action(client, changelist, action, objects, **data):
    """Post an action from the changelist, as its "Go" button does."""
    return client.post(
        changelist,
        {"action": action, "_selected_action": [obj.pk for obj in objects], "index": 0, **data},
    )


def confirm(client, objects, **choices):
    """Post the action's page with ``choices`` (the defaults when not given)."""
    data = {
        "action": "generate_header_image",
        "_selected_action": [obj.pk for obj in objects],
        "post": "yes",
        "resolution": "1K",
        "aspect_ratio": "16:9",
        "output_format": "jpg",
        "prompt": "",
        **choices,
    }
    return client.post(articles_url(), data)


def texts(response):
    """The messages the page after ``response`` shows (which uses them up)."""
    if response.status_code == 302:
        response = response.client.get(response["Location"])
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def queue_in_django_q(settings, monkeypatch):
    """Generations land in django-q2's ORM queue and stay there: nothing runs them."""
    settings.NANOBANANA = {**settings.NANOBANANA, "TASK_RUNNER": "django_q"}
    monkeypatch.setattr(Conf, "SYNC", False)


@pytest.fixture
def emulator(replicate_emulator, settings):
    """The app pointed at the emulator, generations run as soon as they are committed."""
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        **replicate_emulator.settings(),
        "TASK_RUNNER": "immediate",
        "POLL_INTERVAL": 0.05,
        "REPLICATE_WAIT": 0,
    }
    return replicate_emulator


@pytest.fixture
def two_articles():
    return [
        Article.objects.create(title="Ten quiet cafés in Lisbon", topic="travel"),
        Article.objects.create(title="Sourdough in a small kitchen", topic="food"),
    ]


# Wiring ------------------------------------------------------------------------------


def test_a_plain_model_admin_gets_the_action_and_the_history():
    model_admin = site._registry[Article]
    assert type(model_admin) is admin.ModelAdmin
    assert generate_header_image in model_admin.actions
    assert GenerationHistoryInline in model_admin.inlines


def test_installing_twice_adds_nothing_twice():
    install_header_image_admin(site)
    model_admin = site._registry[Article]
    assert list(model_admin.actions).count(generate_header_image) == 1
    assert list(model_admin.inlines).count(GenerationHistoryInline) == 1


def test_the_mixin_adds_both_to_an_admin_of_its_own():
    model_admin = PageAdmin(Page, admin.AdminSite(name="other"))
    assert generate_header_image in model_admin.actions
    assert GenerationHistoryInline in model_admin.inlines


def test_unregistered_models_get_nothing(django_user_model):
    other = admin.AdminSite(name="other")
    other.register(django_user_model)
    install_header_image_admin(other)
    assert generate_header_image not in (other._registry[django_user_model].actions or ())


def test_an_admin_with_actions_turned_off_gets_only_the_history():
    class QuietAdmin(admin.ModelAdmin):
        actions = None

    model_admin = QuietAdmin(Article, admin.AdminSite(name="other"))
    add_header_image_admin(model_admin)
    assert model_admin.actions is None
    assert GenerationHistoryInline in model_admin.inlines


def test_the_admins_pass_djangos_system_checks():
    assert site.check(None) == []


def test_the_action_on_a_model_that_is_not_registered_says_so(admin_client):
    poster = Poster.objects.create(name="Summer fair")
    response = run_action(
        admin_client, url("testapp_poster_changelist"), "generate_header_image", [poster]
    )
    assert texts(response) == [
        "Posters are not registered for header images in NANOBANANA['MODELS']."
    ]
    assert GeneratedImage.objects.count() == 0


#: Run in the example project: whether the default site's Article admin has the action and
#: the history, and whether the generated images are registered.
EXAMPLE_ADMIN = """
import django; django.setup()
from django.contrib import admin
from blog.models import Article
from nanobanana_django.admin import GenerationHistoryInline, generate_header_image
from nanobanana_django.models import GeneratedImage
def show():
    model_admin = admin.site._registry[Article]
    print(generate_header_image in model_admin.actions, GenerationHistoryInline in
          model_admin.inlines, GeneratedImage in admin.site._registry)
show()
"""


def in_example_project(tmp_path, script, **nanobanana):
    """Run ``script`` in a fresh process with the example project's settings, ``NANOBANANA``
    updated with ``nanobanana``; returns the lines it printed."""
    settings_module = "example_project.settings"
    if nanobanana:
        settings_module = "changed_settings"
        (tmp_path / f"{settings_module}.py").write_text(
            "from example_project.settings import *  # noqa: F403\n"
            f"NANOBANANA = {{**NANOBANANA, **{nanobanana!r}}}  # noqa: F405\n"
        )
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("REPLICATE_", "DJANGO_"))},
        "DJANGO_SETTINGS_MODULE": settings_module,
        "DEMO_DATABASE": str(tmp_path / "demo.sqlite3"),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "example_project"), str(tmp_path)]),
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_the_example_project_gets_the_action_without_admin_code(tmp_path):
    """``blog/admin.py`` registers Article with no mention of this app."""
    assert in_example_project(tmp_path, EXAMPLE_ADMIN) == ["True True True"]


def test_with_the_admin_integration_off_other_admins_get_nothing_until_asked(tmp_path):
    script = EXAMPLE_ADMIN + (
        "from nanobanana_django.admin import HeaderImageAdminMixin, install_header_image_admin\n"
        "class ArticleAdmin(HeaderImageAdminMixin, admin.ModelAdmin):\n"
        "    pass\n"
        "admin.site.unregister(Article)\n"
        "admin.site.register(Article, ArticleAdmin)\n"
        "show()\n"
        "admin.site.unregister(Article)\n"
        "admin.site.register(Article)\n"
        "install_header_image_admin(admin.site)\n"
        "show()\n"
    )
    shown = in_example_project(tmp_path, script, ADMIN_INTEGRATION=False)
    assert shown == [
        "False False True",  # the generated images are still listed
        "True True True",  # with the mixin
        "True True True",  # with the installer
    ]


def test_a_bad_admin_integration_value_is_reported_by_the_checks_not_at_startup(tmp_path):
    script = EXAMPLE_ADMIN + (
        "from django.core.management import call_command\n"
        "from django.core.management.base import SystemCheckError\n"
        "try:\n"
        "    call_command('check')\n"
        "except SystemCheckError as exc:\n"
        "    print(*[line for line in str(exc).splitlines() if 'ADMIN_INTEGRATION' in line])\n"
    )
    features, error = in_example_project(tmp_path, script, ADMIN_INTEGRATION="no")
    assert features == "False False True"
    assert "(nanobanana.E001) NANOBANANA['ADMIN_INTEGRATION'] is 'no'. Use True" in error


# The action ---------------------------------------------------------------------------


def test_the_action_is_offered_on_the_changelist(admin_client, two_articles):
    page = admin_client.get(articles_url()).content.decode()
    assert '<option value="generate_header_image">Generate header image</option>' in page


def test_the_action_opens_a_page_listing_the_articles_and_the_choices(admin_client, two_articles):
    response = run_action(admin_client, articles_url(), "generate_header_image", two_articles)

    assert response.status_code == 200
    assert "admin/nanobanana_django/generate_header_image.html" in [
        template.name for template in response.templates
    ]
    page = response.content.decode()
    assert 'class="breadcrumbs"' in page and "csrfmiddlewaretoken" in page
    for article in two_articles:
        assert f'name="_selected_action" value="{article.pk}"' in page
        assert article.title in page
    # Each article's own prompt is shown, and the override is empty.
    assert "Editorial header image for an article titled “Ten quiet cafés in Lisbon”" in page
    assert "Sourdough in a small kitchen”, about food" in page
    assert "replaces the prompt of every selected object" in page
    form = response.context["form"]
    assert form["prompt"].value() in (None, "")
    assert dict(form.fields["resolution"].choices) == {"1K": "1K", "2K": "2K", "4K": "4K"}
    assert "21:9" in dict(form.fields["aspect_ratio"].choices)
    assert list(dict(form.fields["output_format"].choices)) == ["jpg", "png"]
    assert form["aspect_ratio"].value() == "16:9"  # NANOBANANA["DEFAULT_INPUT"]
    assert 'name="replace"' in page
    assert 'value="Confirm"' in page and "No, take me back" in page
    assert GeneratedImage.objects.count() == 0  # nothing happens before confirming


def test_for_one_article_the_prompt_is_shown_ready_to_edit(admin_client, two_articles):
    response = run_action(admin_client, articles_url(), "generate_header_image", two_articles[:1])
    prompt = response.context["form"]["prompt"].value()
    assert prompt.startswith("Editorial header image for an article titled “Ten quiet cafés")
    assert prompt in response.content.decode()


def test_posting_the_action_for_two_articles_queues_two(
    admin_client, two_articles, queue_in_django_q, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = confirm(admin_client, two_articles)

    assert response.status_code == 302
    assert response["Location"] == articles_url()
    rows = GeneratedImage.objects.all()
    assert sorted(row.object_id for row in rows) == sorted(str(a.pk) for a in two_articles)
    assert {row.status for row in rows} == {Status.QUEUED}
    assert len(queued_tasks()) == 2  # handed to the task runner, not run in the request
    assert texts(response) == ["Queued 2 header images."]


def test_a_staff_user_without_change_permission_cannot_run_it(editor, two_articles):
    client = editor("view_article", "delete_article")
    page = client.get(articles_url()).content.decode()
    assert "generate_header_image" not in page

    response = run_action(client, articles_url(), "generate_header_image", two_articles)
    assert response.status_code == 302  # the admin's refusal: back to the list
    assert texts(response) == ["No action selected."]
    response = confirm(client, two_articles)
    assert texts(response) == ["No action selected."]
    assert GeneratedImage.objects.count() == 0


def test_a_staff_user_who_may_only_view_gets_no_actions_at_all(editor, two_articles):
    client = editor("view_article")
    response = confirm(client, two_articles)
    assert response.status_code == 200
    assert "generate_header_image" not in response.content.decode()
    assert GeneratedImage.objects.count() == 0


def test_an_article_that_has_an_image_is_skipped_unless_replace_is_chosen(
    admin_client, two_articles
):
    illustrated, bare = two_articles
    Article.objects.filter(pk=illustrated.pk).update(header_image="headers/kept.jpg")

    page = run_action(admin_client, articles_url(), "generate_header_image", two_articles)
    assert "Skipped unless “Replace existing images” is chosen." in page.content.decode()

    response = confirm(admin_client, two_articles)
    assert texts(response) == [
        "Queued 1 header image.",
        "Skipped 1: Article “Ten quiet cafés in Lisbon” already has an image "
        "(choose “Replace existing images”).",
    ]
    assert GeneratedImage.objects.get().object_id == str(bare.pk)

    GeneratedImage.objects.update(status=Status.FAILED)
    response = confirm(admin_client, two_articles, replace="on")
    assert texts(response) == ["Queued 2 header images."]
    replacing = GeneratedImage.objects.get(object_id=str(illustrated.pk))
    assert replacing.overwrite is True


def test_an_article_with_a_generation_under_way_is_skipped(admin_client, two_articles):
    busy, idle = two_articles
    create_generation(busy)

    response = confirm(admin_client, two_articles)

    assert texts(response) == [
        "Queued 1 header image.",
        "Skipped 1: Article “Ten quiet cafés in Lisbon” already has a generation queued or "
        "running.",
    ]
    assert GeneratedImage.objects.filter(object_id=str(idle.pk)).count() == 1


def test_the_prompt_override_and_the_choices_are_used(admin_client, two_articles):
    confirm(
        admin_client,
        two_articles,
        prompt="  A lighthouse at dawn, photographic  ",
        resolution="2K",
        aspect_ratio="21:9",
        output_format="png",
    )
    rows = GeneratedImage.objects.all()
    assert len(rows) == 2
    for row in rows:
        assert row.prompt == "A lighthouse at dawn, photographic"
        assert row.input_params == {
            "aspect_ratio": "21:9",
            "resolution": "2K",
            "output_format": "png",
        }


def test_an_emptied_prompt_uses_each_articles_own(admin_client, two_articles):
    confirm(admin_client, two_articles[:1], prompt="")
    assert "Ten quiet cafés in Lisbon" in GeneratedImage.objects.get().prompt


def test_an_invalid_choice_shows_a_form_error_and_queues_nothing(admin_client, two_articles):
    response = confirm(admin_client, two_articles, aspect_ratio="7:3")

    assert response.status_code == 200
    assert "Select a valid choice. 7:3 is not one of the available choices." in (
        response.content.decode()
    )
    assert 'class="errornote"' in response.content.decode()
    assert GeneratedImage.objects.count() == 0


def test_an_input_the_service_rejects_is_shown_on_the_page(admin_client, two_articles, settings):
    models = dict(settings.NANOBANANA["MODELS"])
    models["testapp.Article"] = {**models["testapp.Article"], "input": {"image_input": "x.jpg"}}
    settings.NANOBANANA = {**settings.NANOBANANA, "MODELS": models}

    response = confirm(admin_client, two_articles)

    assert response.status_code == 200
    assert "image_input: image_input must be a list" in response.content.decode()
    assert GeneratedImage.objects.count() == 0


def test_the_generations_run_after_the_request_and_attach_their_images(
    admin_client, two_articles, emulator, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        confirm(admin_client, two_articles)

    assert emulator.created_count == 2
    for article in two_articles:
        article.refresh_from_db()
        row = GeneratedImage.objects.for_object(article).get()
        assert row.status == Status.SUCCEEDED
        assert article.header_image.name == row.image.name


def test_the_action_works_for_a_model_whose_image_is_a_generated_image(
    admin_client, django_capture_on_commit_callbacks
):
    page = Page.objects.create(headline="About us")
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            url("testapp_page_changelist"),
            {
                "action": "generate_header_image",
                "_selected_action": [page.pk],
                "post": "yes",
                "resolution": "1K",
                "aspect_ratio": "4:3",
                "output_format": "jpg",
            },
        )
    page.refresh_from_db()
    assert page.image.status == Status.SUCCEEDED
    assert (page.image.width, page.image.height) == (1200, 896)


# GeneratedImage records -----------------------------------------------------------------


def test_the_changelist_shows_thumbnail_status_object_model_inputs_duration_and_time(
    admin_client, two_articles
):
    article = two_articles[0]
    row = generate_for(article, input={"aspect_ratio": "21:9", "resolution": "2K"})

    page = admin_client.get(images_url()).content.decode()

    assert f'<img src="{row.image.url}"' in page
    assert 'nanobanana-status-succeeded">Succeeded<' in page
    article_url = url("testapp_article_change", article.pk)
    assert f'<a href="{article_url}">Article “Ten quiet cafés in Lisbon”</a>' in page
    assert '<span class="nanobanana-nowrap">21:9 · 2K</span>' in page
    assert '<div class="nanobanana-muted">google/nano-banana-2</div>' in page
    assert f"{row.duration:.1f} s" in page
    for title in ("By status", "By provider", "By model", "By created"):
        assert title in page


def test_a_placeholder_image_is_marked_as_placeholder(admin_client, two_articles):
    row = generate_for(two_articles[0])
    assert row.is_placeholder

    assert ">Placeholder</span>" in admin_client.get(images_url()).content.decode()
    page = admin_client.get(url("nanobanana_django_generatedimage_change", row.pk))
    assert "made offline by the placeholder provider" in page.content.decode()


def test_an_image_from_the_model_is_not_marked(admin_client, two_articles, emulator):
    generate_for(two_articles[0])
    assert "Placeholder" not in admin_client.get(images_url()).content.decode()


def test_the_change_page_shows_preview_prompt_parameters_timings_and_prediction(
    admin_client, two_articles, emulator
):
    row = generate_for(two_articles[0])

    page = admin_client.get(url("nanobanana_django_generatedimage_change", row.pk))

    html = page.content.decode()
    assert page.status_code == 200
    assert f'class="nanobanana-preview"><img src="{row.image.url}"' in html
    assert row.prompt in html
    assert "<dt>aspect_ratio</dt><dd>16:9</dd>" in html
    assert row.prediction_id in html
    assert "JPEG, 1376 × 768 px" in html
    for label in ("Created", "Started", "Finished", "Duration", "Attempts"):
        assert label in html


def test_a_failure_is_explained_in_plain_words(admin_client, two_articles, emulator):
    emulator.add_fault("fail", error="The model's output was flagged as sensitive (E005).")
    row = generate_for(two_articles[0])

    html = admin_client.get(url("nanobanana_django_generatedimage_change", row.pk)).content
    html = html.decode()
    assert "The model could not make this image" in html
    assert "flagged as sensitive" in html
    assert 'nanobanana-status-failed">Failed<' in html


def test_generated_images_are_read_only(admin_client, two_articles):
    row = generate_for(two_articles[0])

    assert admin_client.get(url("nanobanana_django_generatedimage_add")).status_code == 403
    change_url = url("nanobanana_django_generatedimage_change", row.pk)
    page = admin_client.get(change_url)
    assert "View generated image" in page.content.decode()
    assert 'name="_save"' not in page.content.decode()
    assert admin_client.post(change_url, {"prompt": "edited"}).status_code == 403
    row.refresh_from_db()
    assert row.prompt != "edited"


def test_searching_finds_generations_by_object_title_prompt_and_prediction(
    admin_client, two_articles, emulator
):
    lisbon, sourdough = two_articles
    by_title = generate_for(lisbon, prompt="a lighthouse at dawn")
    other = generate_for(sourdough, prompt="a loaf of bread")

    def found(term):
        response = admin_client.get(images_url(), {"q": term})
        return {row.pk for row in response.context["cl"].result_list}

    assert found("quiet cafés") == {by_title.pk}
    assert found("loaf") == {other.pk}
    assert found(other.prediction_id) == {other.pk}
    assert found(str(sourdough.pk)) >= {other.pk}


def test_search_by_title_keeps_the_filters(admin_client, two_articles):
    row = generate_for(two_articles[0], prompt="a lighthouse")
    GeneratedImage.objects.filter(pk=row.pk).update(status=Status.FAILED)
    response = admin_client.get(images_url(), {"q": "quiet cafés", "status__exact": "succeeded"})
    assert list(response.context["cl"].result_list) == []


# Retry, cancel, regenerate, use --------------------------------------------------------------


def test_retrying_a_failed_generation_makes_a_new_image(
    admin_client, two_articles, emulator, django_capture_on_commit_callbacks
):
    article = two_articles[0]
    emulator.add_fault("fail")
    failed = generate_for(article)
    assert failed.status == Status.FAILED

    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(admin_client, images_url(), "retry_generations", [failed])

    assert texts(response) == ["Queued 1 retry."]
    retried = GeneratedImage.objects.exclude(pk=failed.pk).get()
    assert retried.status == Status.SUCCEEDED
    assert retried.prompt == failed.prompt and retried.input_params == failed.input_params
    article.refresh_from_db()
    assert article.header_image.name == retried.image.name
    assert emulator.created_count == 2


def test_retry_skips_what_has_not_failed(admin_client, two_articles):
    done = generate_for(two_articles[0])
    response = run_action(admin_client, images_url(), "retry_generations", [done])
    assert texts(response) == [f"Skipped 1: image #{done.pk} has not failed."]


def test_canceling_a_running_generation_cancels_it_at_the_provider(
    admin_client, two_articles, emulator
):
    emulator.latency = 60
    row = create_generation(two_articles[0])
    with get_provider() as provider:
        prediction = provider.submit(
            GenerationRequest(model=row.model_name, input={"prompt": row.prompt})
        )
    GeneratedImage.objects.filter(pk=row.pk).update(
        status=Status.RUNNING, prediction_id=prediction.id, started_at=timezone.now()
    )
    assert emulator.predictions[prediction.id]["status"] == "processing"

    response = run_action(admin_client, images_url(), "cancel_generations", [row])

    assert texts(response) == ["Canceled 1 generation."]
    row.refresh_from_db()
    assert row.status == Status.CANCELED
    assert emulator.counts["cancel"] == 1
    assert emulator.predictions[prediction.id]["status"] == "canceled"


def test_canceling_a_queued_generation_lets_a_new_one_be_queued(admin_client, two_articles):
    row = create_generation(two_articles[0])
    canceled = run_action(admin_client, images_url(), "cancel_generations", [row])
    assert texts(canceled) == ["Canceled 1 generation."]
    response = confirm(admin_client, two_articles[:1])
    assert texts(response) == ["Queued 1 header image."]


def test_cancel_skips_finished_generations(admin_client, two_articles):
    done = generate_for(two_articles[0])
    response = run_action(admin_client, images_url(), "cancel_generations", [done])
    assert texts(response) == [f"Skipped 1: image #{done.pk} had already finished."]


def test_regenerating_replaces_the_image(
    admin_client, two_articles, django_capture_on_commit_callbacks
):
    article = two_articles[0]
    first = generate_for(article)
    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(admin_client, images_url(), "regenerate", [first])

    assert texts(response) == ["Queued 1 new generation."]
    second = GeneratedImage.objects.exclude(pk=first.pk).get()
    article.refresh_from_db()
    assert article.header_image.name == second.image.name != first.image.name


def test_use_this_image_attaches_an_older_generation(admin_client, two_articles):
    article = two_articles[0]
    older = generate_for(article)
    newer = generate_for(article, overwrite=True)
    article.refresh_from_db()
    assert article.header_image.name == newer.image.name

    response = run_action(admin_client, images_url(), "use_images", [older])

    assert texts(response) == ["Used 1 image."]
    article.refresh_from_db()
    assert article.header_image.name == older.image.name


def test_use_this_image_skips_failed_generations(admin_client, two_articles):
    row = create_generation(two_articles[0])
    GeneratedImage.objects.filter(pk=row.pk).update(status=Status.FAILED)
    response = run_action(admin_client, images_url(), "use_images", [row])
    assert texts(response) == [f"Skipped 1: image #{row.pk} has no image to use."]


def test_the_buttons_on_a_generations_page_retry_it(
    admin_client, two_articles, django_capture_on_commit_callbacks
):
    row = create_generation(two_articles[0])
    GeneratedImage.objects.filter(pk=row.pk).update(status=Status.FAILED)
    page = admin_client.get(url("nanobanana_django_generatedimage_change", row.pk))
    retry_url = url("nanobanana_django_generatedimage_retry", row.pk)
    assert f'action="{retry_url}"' in page.content.decode()

    assert admin_client.get(retry_url).status_code == 405
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(retry_url)

    assert response["Location"] == url("nanobanana_django_generatedimage_change", row.pk)
    assert GeneratedImage.objects.filter(status=Status.SUCCEEDED).count() == 1


# The history on the article's page ------------------------------------------------------------


def test_the_article_page_shows_its_history_with_a_way_to_use_an_older_image(
    admin_client, two_articles
):
    article = two_articles[0]
    older = generate_for(article)
    newer = generate_for(article, overwrite=True)

    page = admin_client.get(url("testapp_article_change", article.pk)).content.decode()

    assert "Header image history" in page
    assert f'<img src="{older.image.url}"' in page and f'<img src="{newer.image.url}"' in page
    assert "In use" in page
    use_url = url("nanobanana_django_generatedimage_use", older.pk)
    assert f'href="{use_url}"' in page
    assert url("nanobanana_django_generatedimage_use", newer.pk) not in page


def test_an_object_without_generations_says_how_to_make_one(admin_client, two_articles):
    article = two_articles[0]
    page = admin_client.get(url("testapp_article_change", article.pk)).content.decode()

    assert "Header image history" in page
    assert "No header image has been generated for this object yet." in page
    assert "“Generate header image” action" in page
    assert "nanobanana-empty" in page

    generate_for(article)
    page = admin_client.get(url("testapp_article_change", article.pk)).content.decode()
    assert "No header image has been generated" not in page


def test_an_object_without_generations_can_still_be_saved(admin_client, two_articles):
    article = two_articles[0]
    prefix = "nanobanana_django-generatedimage-content_type-object_id"
    response = admin_client.post(
        url("testapp_article_change", article.pk),
        {
            "title": "Ten quiet cafés",
            "topic": "travel",
            "status": "draft",
            f"{prefix}-TOTAL_FORMS": "0",
            f"{prefix}-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.context["errors"]


def test_the_add_page_has_no_history(admin_client):
    page = admin_client.get(url("testapp_article_add")).content.decode()
    assert "Header image history" not in page


def test_saving_the_object_leaves_its_history_alone(admin_client):
    page = Page.objects.create(headline="About us")
    generate_for(page)
    page.refresh_from_db()
    prefix = "nanobanana_django-generatedimage-content_type-object_id"

    response = admin_client.post(
        url("testapp_page_change", page.pk),
        {
            "headline": "About us, again",
            "image": page.image_id,
            f"{prefix}-TOTAL_FORMS": "1",
            f"{prefix}-INITIAL_FORMS": "1",
        },
    )

    assert response.status_code == 302, response.context["errors"]
    page.refresh_from_db()
    assert page.headline == "About us, again"
    assert GeneratedImage.objects.get().pk == page.image_id


def test_use_this_image_asks_first_then_attaches(admin_client, two_articles):
    article = two_articles[0]
    older = generate_for(article)
    generate_for(article, overwrite=True)
    use_url = url("nanobanana_django_generatedimage_use", older.pk)

    page = admin_client.get(use_url)
    assert "Use this image as the header image of Article “Ten quiet cafés in Lisbon”?" in (
        page.content.decode()
    )
    article.refresh_from_db()
    assert article.header_image.name != older.image.name  # asking changes nothing

    response = admin_client.post(use_url)

    assert response["Location"] == url("testapp_article_change", article.pk)
    article.refresh_from_db()
    assert article.header_image.name == older.image.name


def test_an_editor_who_may_only_view_the_article_cannot_use_an_image(editor, two_articles):
    article = two_articles[0]
    older = generate_for(article)
    generate_for(article, overwrite=True)
    client = editor("view_article", "view_generatedimage")

    page = client.get(url("testapp_article_change", article.pk)).content.decode()
    assert "Header image history" in page
    assert "Use this image" not in page
    use_url = url("nanobanana_django_generatedimage_use", older.pk)
    assert client.get(use_url).status_code == 403
    assert client.post(use_url).status_code == 403


def test_an_editor_of_articles_can_use_an_image_from_the_history(editor, two_articles):
    article = two_articles[0]
    older = generate_for(article)
    generate_for(article, overwrite=True)
    client = editor("view_article", "change_article")

    response = client.post(url("nanobanana_django_generatedimage_use", older.pk))

    assert response.status_code == 302
    article.refresh_from_db()
    assert article.header_image.name == older.image.name


def test_generated_image_actions_need_change_permission_on_the_object(editor, two_articles):
    row = create_generation(two_articles[0])
    GeneratedImage.objects.filter(pk=row.pk).update(status=Status.FAILED)
    client = editor("view_generatedimage", "view_article")

    page = client.get(images_url()).content.decode()
    assert "retry_generations" not in page
    run_action(client, images_url(), "retry_generations", [row])
    assert GeneratedImage.objects.count() == 1


# No secrets -----------------------------------------------------------------------------------


def test_no_page_or_message_shows_the_token(
    admin_client, two_articles, emulator, settings, django_capture_on_commit_callbacks
):
    token = emulator.token
    article, other = two_articles
    emulator.add_fault("fail")
    failed = generate_for(article)
    settings.NANOBANANA = {**settings.NANOBANANA, "REPLICATE_API_TOKEN": "r8_wrong_secret_1234"}
    unauthorized = generate_for(other, overwrite=True)
    assert unauthorized.status == Status.FAILED
    settings.NANOBANANA = {**settings.NANOBANANA, "REPLICATE_API_TOKEN": token}
    with django_capture_on_commit_callbacks(execute=True):
        done = confirm(admin_client, two_articles, replace="on")
    succeeded = GeneratedImage.objects.filter(status=Status.SUCCEEDED).first()

    pages = [
        admin_client.get(articles_url()),
        run_action(admin_client, articles_url(), "generate_header_image", two_articles),
        admin_client.get(done["Location"]),  # shows the messages
        admin_client.get(images_url()),
        admin_client.get(url("nanobanana_django_generatedimage_change", failed.pk)),
        admin_client.get(url("nanobanana_django_generatedimage_change", unauthorized.pk)),
        admin_client.get(url("nanobanana_django_generatedimage_change", succeeded.pk)),
        admin_client.get(url("testapp_article_change", article.pk)),
        admin_client.get(url("nanobanana_django_generatedimage_use", failed.pk), follow=True),
    ]
    for page in pages:
        assert page.status_code == 200
        html = page.content.decode()
        assert token not in html
        assert "r8_wrong_secret_1234" not in html
        assert emulator.webhook_secret not in html
    assert "Replicate rejected the API token (HTTP 401)." in pages[5].content.decode()


# Timings shown sensibly --------------------------------------------------------------------------


def test_an_unfinished_generation_has_no_duration(admin_client, two_articles):
    row = create_generation(two_articles[0])
    GeneratedImage.objects.filter(pk=row.pk).update(
        status=Status.RUNNING, started_at=timezone.now() - timedelta(seconds=5)
    )
    response = admin_client.get(images_url())
    assert '<td class="field-duration_label">—</td>' in response.content.decode()
