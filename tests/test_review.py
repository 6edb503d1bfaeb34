"""Approval mode: with ``"approval": True`` a published article's image waits in the admin's
review queue; approve attaches it, reject leaves the article untouched. Off, nothing changes.

The admin is driven through the test client, as an editor would, on the test admin site of
tests/test_admin.py.
"""

import pytest
from django.core.exceptions import ImproperlyConfigured

from nanobanana_django.models import GeneratedImage
from nanobanana_django.registry import get_config
from nanobanana_django.services import (
    AlreadyHasImage,
    CannotReview,
    approve_generation,
    generate_for,
    generate_variants,
    queue_generation,
    reject_generation,
)
from nanobanana_django.signals import image_awaiting_review
from tests.test_admin import images_url, run_action, texts, url
from tests.testapp.models import Article, Page

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.test_admin")]

Status = GeneratedImage.Status
Review = GeneratedImage.Review

ARTICLE = {
    "title_field": "title",
    "topic_field": "topic",
    "image_field": "header_image",
    "publish": {"field": "status", "values": ["published"]},
}


@pytest.fixture
def approval(settings):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "TASK_RUNNER": "immediate",
        "MODELS": {
            **settings.NANOBANANA["MODELS"],
            "testapp.Article": {**ARTICLE, "approval": True},
        },
    }


@pytest.fixture
def awaiting():
    """Every image_awaiting_review sent during the test: (sender, instance, row)."""
    sent = []

    def receive(sender, instance, generated_image, **kwargs):
        sent.append((sender, instance, generated_image.pk))

    image_awaiting_review.connect(receive)
    yield sent
    image_awaiting_review.disconnect(receive)


def publish(title, capture, **fields):
    with capture(execute=True):
        article = Article.objects.create(title=title, status="draft", **fields)
        article.status = "published"
        article.save()
    article.refresh_from_db()
    return article


def queue_url():
    return url("nanobanana_django_generatedimage_review")


def review(client, operation, *rows):
    target = "selected" if len(rows) > 1 else str(rows[0].pk)
    return client.post(
        queue_url(), {"do": f"{operation}:{target}", "selected": [row.pk for row in rows]}
    )


# Publishing with approval on and off ---------------------------------------------------------


def test_with_approval_on_publishing_makes_the_image_but_attaches_nothing(
    approval, awaiting, django_capture_on_commit_callbacks
):
    article = publish("Ten quiet cafés in Lisbon", django_capture_on_commit_callbacks)

    row = GeneratedImage.objects.get()
    assert row.status == Status.SUCCEEDED, row.error_message
    assert row.review == Review.PENDING and row.image
    assert not article.header_image
    assert awaiting == [(Article, article, row.pk)]


def test_an_approve_in_the_admin_attaches_the_image(
    approval, awaiting, admin_client, django_capture_on_commit_callbacks
):
    article = publish("Ten quiet cafés in Lisbon", django_capture_on_commit_callbacks)
    row = GeneratedImage.objects.get()

    response = review(admin_client, "approve", row)

    assert response.status_code == 302
    assert texts(response) == ["Approved 1 image: it is now its object's image."]
    article.refresh_from_db()
    row.refresh_from_db()
    assert article.header_image.name == row.image.name
    assert row.review == Review.APPROVED
    assert len(awaiting) == 1  # sent once, when it was made


def test_a_reject_in_the_admin_leaves_the_article_untouched(
    approval, awaiting, admin_client, django_capture_on_commit_callbacks
):
    article = publish("Ten quiet cafés in Lisbon", django_capture_on_commit_callbacks)
    row = GeneratedImage.objects.get()

    response = review(admin_client, "reject", row)

    assert texts(response) == ["Rejected 1 image; its object was left as it was."]
    article.refresh_from_db()
    row.refresh_from_db()
    assert not article.header_image
    assert row.review == Review.REJECTED
    assert row.image  # kept in the history
    assert len(awaiting) == 1


def test_with_approval_off_publishing_attaches_as_before(
    settings, awaiting, django_capture_on_commit_callbacks
):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "TASK_RUNNER": "immediate",
        "MODELS": {**settings.NANOBANANA["MODELS"], "testapp.Article": ARTICLE},
    }
    article = publish("Ten quiet cafés in Lisbon", django_capture_on_commit_callbacks)

    row = GeneratedImage.objects.get()
    assert row.review == Review.NONE
    assert article.header_image.name == row.image.name
    assert awaiting == []


def test_approval_applies_per_registered_model(approval, awaiting):
    page = Page.objects.create(headline="About us")  # registered without approval

    row = generate_for(page)

    page.refresh_from_db()
    assert page.image_id == row.pk and row.review == Review.NONE
    assert awaiting == []


def test_generate_for_in_approval_mode_waits_too(approval, awaiting):
    article = Article.objects.create(title="Tides")

    row = generate_for(article)

    assert row.status == Status.SUCCEEDED and row.review == Review.PENDING
    article.refresh_from_db()
    assert not article.header_image
    assert len(awaiting) == 1


def test_rejecting_an_image_still_being_made_keeps_it_off_the_article(approval, awaiting):
    from nanobanana_django.pipeline import run_generation

    article = Article.objects.create(title="Tides")
    row = queue_generation(article)

    reject_generation(row)
    run_generation(row.pk)

    row.refresh_from_db()
    article.refresh_from_db()
    assert row.status == Status.SUCCEEDED and row.review == Review.REJECTED
    assert not article.header_image
    assert awaiting == []  # it no longer waited when it was made


# The rules of approving -----------------------------------------------------------------------


def test_approving_twice_is_refused_the_second_time(approval):
    row = generate_for(Article.objects.create(title="Tides"))
    approve_generation(row)

    with pytest.raises(CannotReview, match="not awaiting review"):
        approve_generation(row)
    with pytest.raises(CannotReview, match="approved"):
        reject_generation(row)


def test_an_image_not_made_yet_cannot_be_approved(approval):
    row = queue_generation(Article.objects.create(title="Tides"))

    with pytest.raises(CannotReview, match="not made yet"):
        approve_generation(row)


def test_an_article_that_got_an_image_meanwhile_keeps_it_unless_replace_is_said(approval):
    article = Article.objects.create(title="Tides")
    row = generate_for(article)
    Article.objects.filter(pk=article.pk).update(header_image="headers/by-hand.jpg")

    with pytest.raises(AlreadyHasImage, match="replace"):
        approve_generation(row)
    row.refresh_from_db()
    assert row.review == Review.PENDING  # still waiting: nothing changed
    article.refresh_from_db()
    assert article.header_image.name == "headers/by-hand.jpg"

    approve_generation(row, replace=True)
    article.refresh_from_db()
    assert article.header_image.name == row.image.name


def test_a_generation_asked_to_replace_replaces_on_approval(approval):
    article = Article.objects.create(title="Tides", header_image="headers/old.jpg")
    row = generate_for(article, overwrite=True)

    approve_generation(row)

    article.refresh_from_db()
    assert article.header_image.name == row.image.name


def test_approval_must_be_true_or_false(settings):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "MODELS": {"testapp.Article": {**ARTICLE, "approval": "yes"}},
    }
    with pytest.raises(ImproperlyConfigured, match=r"\['approval'\] is 'yes'; use True"):
        get_config(Article)


# The review queue in the admin ------------------------------------------------------------------


def test_the_queue_shows_thumbnail_article_prompt_and_the_four_choices(approval, admin_client):
    article = Article.objects.create(title="Ten quiet cafés in Lisbon", topic="travel")
    row = generate_for(article)

    page = admin_client.get(queue_url()).content.decode()

    assert "1 image awaiting review." in page
    assert row.image.url in page
    assert "Ten quiet cafés in Lisbon" in page
    assert row.prompt[:60] in page
    for label in ("Approve", "Reject", "Regenerate", "Edit", "Approve selected"):
        assert f">{label}<" in page, label
    assert url("nanobanana_django_generatedimage_change", row.pk) in page


def test_the_generated_images_list_counts_the_waiting_images(approval, admin_client):
    for title in ("Tides", "Harbours"):
        generate_for(Article.objects.create(title=title))

    page = admin_client.get(images_url()).content.decode()

    assert "2 images awaiting review" in page
    assert "Review queue (2)" in page
    assert queue_url() in page


def test_without_waiting_images_the_list_shows_no_count(admin_client):
    generate_for(Article.objects.create(title="Tides"))

    page = admin_client.get(images_url()).content.decode()

    assert "nanobanana-review-count" not in page and "Review queue (" not in page


def test_bulk_approve_from_the_queue_attaches_each_image(approval, admin_client):
    articles = [Article.objects.create(title=title) for title in ("Tides", "Harbours")]
    rows = [generate_for(article) for article in articles]

    response = review(admin_client, "approve", *rows)

    assert texts(response) == ["Approved 2 images: each is now its object's image."]
    for article, row in zip(articles, rows, strict=True):
        article.refresh_from_db()
        assert article.header_image.name == row.image.name


def test_bulk_approve_as_an_action_of_the_generated_images_list(approval, admin_client):
    articles = [Article.objects.create(title=title) for title in ("Tides", "Harbours")]
    rows = [generate_for(article) for article in articles]
    plain = generate_for(Page.objects.create(headline="About us"))

    response = run_action(admin_client, images_url(), "approve_generations", [*rows, plain])

    messages = texts(response)
    assert messages[0] == "Approved 2 images: each is now its object's image."
    assert messages[1] == f"Image #{plain.pk} is not awaiting review (not in approval mode)."
    assert all(Article.objects.get(pk=a.pk).header_image for a in articles)


def test_approve_is_refused_with_a_reason_when_the_article_got_an_image(approval, admin_client):
    article = Article.objects.create(title="Tides")
    row = generate_for(article)
    Article.objects.filter(pk=article.pk).update(header_image="headers/by-hand.jpg")

    page = admin_client.get(queue_url()).content.decode()
    assert "Approve and replace" in page
    response = review(admin_client, "approve", row)

    (message,) = texts(response)
    assert message.startswith(f"Article “Tides” got an image since image #{row.pk} was made")
    assert "Approve and replace" in message
    article.refresh_from_db()
    assert article.header_image.name == "headers/by-hand.jpg"

    review(admin_client, "replace", row)
    article.refresh_from_db()
    assert article.header_image.name == row.image.name


def test_regenerate_rejects_the_image_and_queues_a_new_one_that_waits_too(
    approval, awaiting, admin_client, django_capture_on_commit_callbacks
):
    article = Article.objects.create(title="Tides")
    row = generate_for(article)

    with django_capture_on_commit_callbacks(execute=True):
        response = review(admin_client, "regenerate", row)

    assert texts(response) == ["Queued 1 new image in place of the rejected one."]
    row.refresh_from_db()
    new = GeneratedImage.objects.exclude(pk=row.pk).get()
    assert row.review == Review.REJECTED
    assert new.status == Status.SUCCEEDED and new.review == Review.PENDING
    assert new.prompt == row.prompt
    article.refresh_from_db()
    assert not article.header_image
    assert [pk for _sender, _obj, pk in awaiting] == [row.pk, new.pk]


def test_an_editor_who_may_only_view_sees_the_queue_but_cannot_act(approval, editor):
    article = Article.objects.create(title="Tides")
    row = generate_for(article)
    client = editor("view_generatedimage", "view_article")

    page = client.get(queue_url()).content.decode()
    assert "Tides" in page and "Approve" not in page

    assert review(client, "approve", row).status_code == 403
    article.refresh_from_db()
    assert not article.header_image


def test_an_editor_of_articles_can_approve(approval, editor):
    article = Article.objects.create(title="Tides")
    row = generate_for(article)
    client = editor("view_generatedimage", "view_article", "change_article")

    review(client, "approve", row)

    article.refresh_from_db()
    assert article.header_image.name == row.image.name


def test_the_generation_page_links_to_the_queue_while_it_waits(approval, admin_client):
    row = generate_for(Article.objects.create(title="Tides"))

    page = admin_client.get(url("nanobanana_django_generatedimage_change", row.pk)).content
    assert queue_url().encode() in page


# Variants in approval mode --------------------------------------------------------------------


def test_with_approval_on_variants_wait_and_the_pick_is_the_approval(
    approval, awaiting, admin_client
):
    article = Article.objects.create(title="Tides")
    rows = generate_variants(article, 3)
    assert {row.review for row in rows} == {Review.PENDING}
    assert len(awaiting) == 3

    page = admin_client.get(queue_url()).content.decode()
    assert page.count(">Choose this one<") == 3 and "Compare 3 candidates" in page

    review(admin_client, "approve", rows[2])

    article.refresh_from_db()
    assert article.header_image.name == rows[2].image.name
    assert [GeneratedImage.objects.get(pk=row.pk).review for row in rows] == [
        Review.REJECTED,
        Review.REJECTED,
        Review.APPROVED,
    ]
    assert "Review queue (" not in admin_client.get(images_url()).content.decode()


def test_a_bad_approval_value_is_reported_by_the_checks(settings):
    from django.core import checks

    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "MODELS": {"testapp.Article": {**ARTICLE, "approval": 1}},
    }

    errors = [m for m in checks.run_checks(tags=["nanobanana"]) if m.id == "nanobanana.E006"]

    assert len(errors) == 1 and "['approval'] is 1; use True" in errors[0].msg


def test_use_this_image_on_an_image_awaiting_review_approves_it(approval, admin_client):
    article = Article.objects.create(title="Tides")
    row = generate_for(article)

    admin_client.post(url("nanobanana_django_generatedimage_use", row.pk))

    row.refresh_from_db()
    article.refresh_from_db()
    assert article.header_image.name == row.image.name
    assert row.review == Review.APPROVED
    assert "Review queue (" not in admin_client.get(images_url()).content.decode()


def test_the_list_and_the_history_mark_images_awaiting_review(approval, admin_client):
    article = Article.objects.create(title="Tides")
    generate_for(article)

    listing = admin_client.get(images_url()).content.decode()
    history = admin_client.get(url("testapp_article_change", article.pk)).content.decode()

    assert "nanobanana-review-pending" in listing and ">Awaiting review<" in listing
    assert ">Awaiting review<" in history


def test_a_failed_generation_in_approval_mode_is_not_shown_as_awaiting_review(
    approval, admin_client
):
    from nanobanana_django.exceptions import NanoBananaError
    from nanobanana_django.lifecycle import fail

    row = queue_generation(Article.objects.create(title="Tides"))
    fail(row, NanoBananaError("The model could not make this image.", code="prediction_failed"))

    listing = admin_client.get(images_url()).content.decode()
    assert "nanobanana-review-pending" not in listing and "Review queue (" not in listing
    assert "No image is awaiting review." in admin_client.get(queue_url()).content.decode()


def test_an_image_whose_article_was_deleted_says_so_and_stays_out_of_the_way(
    approval, admin_client
):
    article = Article.objects.create(title="Tides")
    row = generate_for(article)
    article.delete()

    page = admin_client.get(queue_url()).content.decode()
    assert "(deleted)" in page
    (message,) = texts(review(admin_client, "approve", row))

    assert (
        message == f"The object of image #{row.pk} was deleted; there is nothing to attach it to."
    )
    row.refresh_from_db()
    assert row.review == Review.PENDING
    review(admin_client, "reject", row)
    row.refresh_from_db()
    assert row.review == Review.REJECTED


def test_an_edit_asked_to_attach_waits_for_review_in_approval_mode(approval, awaiting):
    from nanobanana_django.services import edit_generation

    article = Article.objects.create(title="Night ferries", status="draft")
    first = generate_for(article)
    approve_generation(first)
    article.refresh_from_db()
    before = article.header_image.name

    edit = edit_generation(first, "make it rain", attach=True)

    article.refresh_from_db()
    assert edit.status == Status.SUCCEEDED
    assert edit.review == Review.PENDING
    assert article.header_image.name == before
    approve_generation(edit, replace=True)
    article.refresh_from_db()
    assert article.header_image.name != before


def test_the_awaiting_review_filter_lists_only_images_an_editor_can_review(approval, admin_client):
    import re

    waiting = generate_for(Article.objects.create(title="Harbour lights", status="draft"))
    failed = GeneratedImage.objects.create(
        prompt="a failed one",
        provider="placeholder",
        model_name="placeholder",
        status=Status.FAILED,
        review=Review.PENDING,
        error_code="timeout",
        error_message="No result.",
    )
    page = admin_client.get(images_url()).content.decode()
    (link,) = re.findall(r'href="([^"]+)"[^>]*>\s*Awaiting review\s*<', page)

    shown = admin_client.get(images_url() + link.replace("&amp;", "&")).context["cl"].result_list

    assert [row.pk for row in shown] == [waiting.pk]
    assert failed.pk not in [row.pk for row in shown]


def test_in_approval_mode_only_the_last_image_of_a_chain_awaits_review(
    approval, replicate, awaiting
):
    from nanobanana_django.review import awaiting_review

    article = Article.objects.create(title="Night ferries", status="draft")
    last = generate_for(article, steps=["upscale"])

    assert last.kind == GeneratedImage.Kind.STEP and last.status == Status.SUCCEEDED
    assert [row.pk for row in awaiting_review()] == [last.pk]
    assert [pk for _sender, _instance, pk in awaiting] == [last.pk]
    article.refresh_from_db()
    assert not article.header_image
