"""Variants: N candidate images for one article, N predictions, and only the chosen one
attached; the others stay in the history, marked as not chosen."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from nanobanana_django.models import GeneratedImage
from nanobanana_django.services import (
    GenerationInProgress,
    choose_variant,
    generate_for,
    generate_variants,
    queue_variants,
)
from tests.testapp.models import Article, Page

pytestmark = pytest.mark.django_db

Status = GeneratedImage.Status
Review = GeneratedImage.Review


def gemini_calls(emulator):
    return [r for r in emulator.requests if ":generateContent" in r.path]


def test_three_variants_make_three_predictions_and_attach_only_the_chosen_one(replicate):
    article = Article.objects.create(title="Ten quiet cafés in Lisbon", topic="travel")

    rows = generate_variants(article, 3)

    assert replicate.created_count == 3
    assert [row.status for row in rows] == [Status.SUCCEEDED] * 3, [r.error_message for r in rows]
    assert len({row.batch for row in rows}) == 1 and rows[0].batch is not None
    assert {row.kind for row in rows} == {GeneratedImage.Kind.VARIANT}
    assert len({row.prediction_id for row in rows}) == 3
    article.refresh_from_db()
    assert not article.header_image  # nothing attached until an editor picks

    assert choose_variant(rows[1]) is True

    article.refresh_from_db()
    assert article.header_image.name == rows[1].image.name
    reviews = {row.pk: row.review for row in GeneratedImage.objects.all()}
    assert reviews == {
        rows[0].pk: Review.REJECTED,
        rows[1].pk: Review.APPROVED,
        rows[2].pk: Review.REJECTED,
    }
    assert GeneratedImage.objects.for_object(article).count() == 3  # all kept in the history
    assert replicate.created_count == 3  # choosing bills nothing


def test_variants_on_the_gemini_route_make_one_call_each(gemini):
    article = Article.objects.create(title="The harbour festival", topic="events")

    rows = generate_variants(article, 2)

    assert [row.status for row in rows] == [Status.SUCCEEDED] * 2, [r.error_message for r in rows]
    assert len(gemini_calls(gemini)) == 2
    choose_variant(rows[0])
    article.refresh_from_db()
    assert article.header_image.name == rows[0].image.name


def test_choosing_another_candidate_later_replaces_the_first_pick(settings):
    article = Article.objects.create(title="Tides")
    first, second = generate_variants(article, 2)

    choose_variant(first)
    choose_variant(second)

    article.refresh_from_db()
    assert article.header_image.name == second.image.name
    first.refresh_from_db()
    assert first.review == Review.REJECTED


def test_a_variant_replaces_an_image_the_article_already_has():
    article = Article.objects.create(title="Tides")
    old = generate_for(article)
    (candidate,) = generate_variants(article, 1)

    choose_variant(candidate)

    article.refresh_from_db()
    assert article.header_image.name == candidate.image.name != old.image.name


def test_variants_work_for_a_model_whose_image_is_a_generated_image():
    page = Page.objects.create(headline="About us")
    rows = generate_variants(page, 2)

    choose_variant(rows[1])

    page.refresh_from_db()
    assert page.image_id == rows[1].pk


def test_queued_variants_run_after_the_commit(settings, django_capture_on_commit_callbacks):
    settings.NANOBANANA = {**settings.NANOBANANA, "TASK_RUNNER": "immediate"}
    article = Article.objects.create(title="Tides")

    with django_capture_on_commit_callbacks(execute=True):
        rows = queue_variants(article, 3)
        assert {row.status for row in rows} == {Status.QUEUED}

    assert set(GeneratedImage.objects.values_list("status", flat=True)) == {Status.SUCCEEDED}
    article.refresh_from_db()
    assert not article.header_image


@pytest.mark.parametrize("n", [0, -1, 5, "3", 2.0, True])
def test_a_number_of_candidates_out_of_range_is_refused_before_anything_is_made(n):
    article = Article.objects.create(title="Tides")

    with pytest.raises(ValidationError) as raised:
        queue_variants(article, n)

    assert "candidates" in raised.value.message_dict
    assert "MAX_VARIANTS" in raised.value.message_dict["candidates"][0]
    assert not GeneratedImage.objects.exists()


def test_the_limit_is_a_setting(settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "MAX_VARIANTS": 6}
    article = Article.objects.create(title="Tides")

    assert len(queue_variants(article, 6)) == 6


def test_a_second_batch_for_the_same_article_is_refused_while_one_is_unfinished():
    article = Article.objects.create(title="Tides")
    queue_variants(article, 2)  # queued: the test's transaction never commits

    with pytest.raises(GenerationInProgress, match="candidate images being made"):
        queue_variants(article, 2)
    assert GeneratedImage.objects.count() == 2


def test_a_batch_may_be_asked_for_while_a_publish_generation_is_queued():
    """Candidates do not attach by themselves, so the one-unfinished rule does not stop them."""
    from nanobanana_django.services import queue_generation

    article = Article.objects.create(title="Tides")
    queue_generation(article)

    assert len(queue_variants(article, 2)) == 2


def test_a_budget_may_stop_some_of_a_batch(replicate, settings):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "PRICES": {"replicate": {"*": {"*": "0.10"}}},
        "DAILY_BUDGET": "0.25",
    }
    article = Article.objects.create(title="Tides")

    rows = generate_variants(article, 3)

    assert [row.status for row in rows] == [Status.SUCCEEDED, Status.SUCCEEDED, Status.FAILED]
    assert rows[2].error_code == "budget_exceeded"
    assert replicate.created_count == 2
    assert sum(row.cost for row in rows[:2]) == Decimal("0.20")


def test_only_a_succeeded_candidate_can_be_chosen():
    article = Article.objects.create(title="Tides")
    (queued,) = queue_variants(article, 1)

    with pytest.raises(ValueError, match="no image"):
        choose_variant(queued)
    plain = generate_for(Article.objects.create(title="Other"))
    with pytest.raises(ValueError, match="not a candidate"):
        choose_variant(plain)


def test_a_bad_max_variants_is_named_with_the_fix(settings):
    from django.core.exceptions import ImproperlyConfigured

    from nanobanana_django.conf import app_settings

    settings.NANOBANANA = {**settings.NANOBANANA, "MAX_VARIANTS": 0}
    with pytest.raises(ImproperlyConfigured, match=r"MAX_VARIANTS.*whole number"):
        _ = app_settings.MAX_VARIANTS


# In the admin -------------------------------------------------------------------------------------


@pytest.fixture
def admin_emulator(replicate):
    return replicate


def ask_for_candidates(client, objects, n, **extra):
    from tests.test_admin import confirm

    return confirm(client, objects, candidates=str(n), **extra)


@pytest.mark.urls("tests.test_admin")
def test_the_admin_says_what_three_candidates_will_be_billed_before_making_them(
    admin_client, admin_emulator, settings
):
    settings.NANOBANANA = {**settings.NANOBANANA, "PRICES": {"replicate": {"*": {"1K": "0.07"}}}}
    article = Article.objects.create(title="Ten quiet cafés in Lisbon", topic="travel")

    response = ask_for_candidates(admin_client, [article], 3)

    assert response.status_code == 200
    page = response.content.decode()
    assert "3 images will be made and billed 3 times (about 0.21 USD)." in page
    assert 'name="candidates_confirmed" value="3"' in page
    assert admin_emulator.created_count == 0
    assert not GeneratedImage.objects.exists()


@pytest.mark.urls("tests.test_admin")
def test_confirming_three_candidates_makes_three_and_attaches_only_the_one_chosen(
    admin_client, admin_emulator, django_capture_on_commit_callbacks
):
    from tests.test_admin import texts, url

    article = Article.objects.create(title="Ten quiet cafés in Lisbon", topic="travel")

    with django_capture_on_commit_callbacks(execute=True):
        response = ask_for_candidates(admin_client, [article], 3, candidates_confirmed="3")

    rows = list(GeneratedImage.objects.order_by("pk"))
    assert admin_emulator.created_count == 3
    assert [row.status for row in rows] == [Status.SUCCEEDED] * 3
    variants_url = url("nanobanana_django_generatedimage_variants", rows[0].batch)
    assert response.status_code == 302 and response["Location"] == variants_url
    article.refresh_from_db()
    assert not article.header_image

    page = admin_client.get(variants_url).content.decode()
    assert "Candidates for Article “Ten quiet cafés in Lisbon”" in page
    assert page.count(">Choose this one<") == 3
    assert all(row.image.url in page for row in rows)

    response = admin_client.post(variants_url, {"choose": rows[1].pk})

    assert texts(response) == [
        f"Article “Ten quiet cafés in Lisbon” now uses candidate #{rows[1].pk}; "
        "the others stay in its history."
    ]
    article.refresh_from_db()
    assert article.header_image.name == rows[1].image.name
    page = admin_client.get(variants_url).content.decode()
    assert page.count(">Not chosen<") == 2 and page.count(">Chosen<") == 1
    assert admin_emulator.created_count == 3


@pytest.mark.urls("tests.test_admin")
def test_for_two_articles_the_notice_counts_every_image(admin_client, settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "TASK_RUNNER": "immediate"}
    articles = [Article.objects.create(title=title) for title in ("Tides", "Harbours")]

    page = ask_for_candidates(admin_client, articles, 2).content.decode()

    assert "2 images will be made for each of the 2 selected objects: 4 images, billed 4 " in page
    assert "(about 0 USD)" in page or "(about 0.00 USD)" in page  # the placeholder is free


@pytest.mark.urls("tests.test_admin")
def test_more_candidates_than_the_limit_is_a_form_error(admin_client):
    article = Article.objects.create(title="Tides")

    response = ask_for_candidates(admin_client, [article], 5, candidates_confirmed="5")

    assert response.status_code == 200
    assert "Ensure this value is less than or equal to 4." in response.content.decode()
    assert not GeneratedImage.objects.exists()


@pytest.mark.urls("tests.test_admin")
def test_one_candidate_is_a_plain_generation(admin_client, settings):
    article = Article.objects.create(title="Tides")

    ask_for_candidates(admin_client, [article], 1)

    row = GeneratedImage.objects.get()
    assert row.kind == GeneratedImage.Kind.GENERATE and row.batch is None


@pytest.mark.urls("tests.test_admin")
def test_a_generations_page_links_to_its_candidates(admin_client):
    from tests.test_admin import url

    rows = generate_variants(Article.objects.create(title="Tides"), 2)

    page = admin_client.get(url("nanobanana_django_generatedimage_change", rows[0].pk))

    assert url("nanobanana_django_generatedimage_variants", rows[0].batch) in page.content.decode()
    assert "Compare candidates" in page.content.decode()


@pytest.mark.urls("tests.test_admin")
def test_use_this_image_on_a_candidate_picks_it(admin_client):
    from tests.test_admin import url

    article = Article.objects.create(title="Tides")
    rows = generate_variants(article, 2)

    admin_client.post(url("nanobanana_django_generatedimage_use", rows[0].pk))

    assert [GeneratedImage.objects.get(pk=row.pk).review for row in rows] == [
        Review.APPROVED,
        Review.REJECTED,
    ]
    listing = admin_client.get(url("nanobanana_django_generatedimage_changelist")).content
    assert b">Chosen<" in listing and b">Not chosen<" in listing


def test_retrying_a_candidate_stopped_by_the_budget_makes_another_candidate(replicate, settings):
    from nanobanana_django.services import retry_generation

    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "PRICES": {"replicate": {"*": {"*": "0.10"}}},
        "DAILY_BUDGET": "0.15",
    }
    article = Article.objects.create(title="Tides")
    made, stopped = generate_variants(article, 2)
    assert stopped.status == Status.FAILED

    settings.NANOBANANA = {**settings.NANOBANANA, "DAILY_BUDGET": "1.00"}
    again = retry_generation(stopped)

    assert again.kind == GeneratedImage.Kind.VARIANT and again.batch == made.batch
    assert not again.auto_attach  # waits for the pick, never replaces the image by itself
    assert [row.pk for row in GeneratedImage.objects.filter(batch=made.batch).order_by("pk")] == (
        [made.pk, stopped.pk, again.pk]
    )


@pytest.mark.urls("tests.test_admin")
def test_candidates_with_a_reference_set_and_an_upload_send_them_with_every_candidate(
    admin_client, django_capture_on_commit_callbacks
):
    from tests.test_references import make_set, upload

    make_set("brand", 2)
    article = Article.objects.create(title="Harbour lights", topic="travel")

    notice = ask_for_candidates(
        admin_client, [article], 2, reference_set="brand", references=[upload("sketch.png")]
    ).content.decode()
    assert "2 images will be made and billed 2 times" in notice
    assert "not kept between the two steps: choose them again below" in notice
    assert not GeneratedImage.objects.exists()

    with django_capture_on_commit_callbacks():  # queued, not run
        ask_for_candidates(
            admin_client,
            [article],
            2,
            candidates_confirmed="2",
            reference_set="brand",
            references=[upload("sketch.png")],
        )

    rows = list(GeneratedImage.objects.order_by("pk"))
    assert len(rows) == 2 and rows[0].batch == rows[1].batch
    for row in rows:
        assert [entry["set"] for entry in row.reference_images] == ["brand", "brand", ""]
