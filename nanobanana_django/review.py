"""Approval mode: images of a model registered with ``"approval": True`` wait for an editor.

Such rows are created with ``review=pending``; the pipeline stores their image without
attaching it (``GeneratedImage.attaches_when_done``) and sends
:data:`~nanobanana_django.signals.image_awaiting_review` once. An editor then approves
one (it is attached, replacing only what the row was allowed to replace) or rejects it
(the object is left as it is). For candidates (variants), the pick is the approval.
The public functions are in :mod:`nanobanana_django.services` (``approve_generation``,
``reject_generation``); the admin's review queue is :mod:`nanobanana_django.admin.review`.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import models, transaction
from django.utils.text import capfirst

from .attach import attach
from .exceptions import AlreadyHasImage, NanoBananaError
from .lifecycle import sender_of
from .models import GeneratedImage
from .registry import ContentConfig, config_for_stored
from .signals import image_awaiting_review
from .variants import choose_variant, mark_chosen

Review = GeneratedImage.Review
Status = GeneratedImage.Status


class CannotReview(NanoBananaError):
    """The image is not one an editor can approve or reject now; nothing was changed."""

    code = "cannot_review"


def initial_review(config: ContentConfig | None, row: GeneratedImage) -> str:
    """The review state a new row starts in: pending in approval mode for a row that would
    be attached when done, or for a candidate (its pick is the approval)."""
    if config is not None and config.approval and (row.auto_attach or row.batch):
        return str(Review.PENDING)
    return str(Review.NONE)


def awaiting_review() -> models.QuerySet[GeneratedImage]:
    """Made images waiting for an editor, oldest first (the review queue).

    An image a step is still working on, or has replaced, is not one: the chain's last
    image is reviewed (a failed step puts the image before it back in the queue)."""
    return (
        GeneratedImage.objects.filter(review=Review.PENDING, status=Status.SUCCEEDED)
        .exclude(models.Exists(_steps_on(models.OuterRef("pk"))))
        .order_by("created_at", "pk")
    )


def _steps_on(parent: Any) -> models.QuerySet[GeneratedImage]:
    """Steps running or done on ``parent``'s image."""
    return GeneratedImage.objects.filter(
        parent=parent,
        kind=GeneratedImage.Kind.STEP,
        status__in=(Status.QUEUED, Status.RUNNING, Status.SUCCEEDED),
    )


def announce(row: GeneratedImage) -> None:
    """Send ``image_awaiting_review`` for a row that has just succeeded, if it still waits
    (an editor may have rejected it, or picked a sibling candidate, while it was made)."""
    if row.review != Review.PENDING:
        return
    if not GeneratedImage.objects.filter(pk=row.pk, review=Review.PENDING).exists():
        return
    if _steps_on(row.pk).exists():
        return  # the chain's last image will be the one to review
    sender, instance = sender_of(row)
    image_awaiting_review.send(sender=sender, instance=instance, generated_image=row)


def approve_generation(row: GeneratedImage, *, replace: bool = False) -> GeneratedImage:
    """Attach an image awaiting review and mark it approved.

    The image replaces one the object has only if its generation was asked to
    (``overwrite``, e.g. ``regenerate`` on publish) or ``replace`` is given: otherwise
    :class:`AlreadyHasImage` says so and nothing changes. A candidate is chosen (its
    siblings marked not chosen). Raises :class:`CannotReview` for an image that does not
    wait for review, is not made yet, or whose object was deleted.
    """
    _refuse_unless_waiting(row, "approved")
    if row.batch:
        if not choose_variant(row):
            raise CannotReview(_deleted(row))
        return row
    overwrite = row.overwrite or replace
    with transaction.atomic():
        taken = GeneratedImage.objects.filter(
            pk=row.pk, review=Review.PENDING, status=Status.SUCCEEDED
        ).update(review=Review.APPROVED)
        if not taken:
            row.refresh_from_db()
            _refuse_unless_waiting(row, "approved")  # someone else reviewed it just now
        if not attach(row, overwrite=overwrite):
            _refuse_unattached(row)  # rolls the approval back
    row.review = str(Review.APPROVED)
    return row


def record_use(row: GeneratedImage) -> None:
    """An editor has put ``row`` on its object by hand ("Use this image"): that approves
    an image awaiting review, and picks a candidate."""
    if row.batch:
        mark_chosen(row)
    elif row.review == Review.PENDING:
        GeneratedImage.objects.filter(pk=row.pk, review=Review.PENDING).update(
            review=Review.APPROVED
        )
        row.review = str(Review.APPROVED)


def reject_generation(row: GeneratedImage) -> GeneratedImage:
    """Mark an image awaiting review as rejected; its object is left untouched.

    Its generation may still be running: it then finishes, but is never attached.
    """
    if row.review != Review.PENDING:
        raise CannotReview(_not_waiting(row))
    rejected = GeneratedImage.objects.filter(pk=row.pk, review=Review.PENDING).update(
        review=Review.REJECTED
    )
    if not rejected:
        row.refresh_from_db()
        raise CannotReview(_not_waiting(row))
    row.review = str(Review.REJECTED)
    return row


def _refuse_unless_waiting(row: GeneratedImage, verb: str) -> None:
    if row.review != Review.PENDING:
        raise CannotReview(_not_waiting(row))
    if row.status != Status.SUCCEEDED or not row.image:
        raise CannotReview(
            f"Image #{row.pk} is {row.get_status_display().lower()}, not made yet: it can be "
            f"{verb} once it has succeeded."
        )
    if not row.content_type_id:
        raise CannotReview(f"Image #{row.pk} is not for an object; there is nothing to attach.")


def _refuse_unattached(row: GeneratedImage) -> None:
    model = row.content_type.model_class() if row.content_type is not None else None
    obj = model._base_manager.filter(pk=row.object_id).first() if model is not None else None
    if obj is None:
        raise CannotReview(_deleted(row))
    raise AlreadyHasImage(
        f"{capfirst(obj._meta.verbose_name)} “{obj}” got an image since image #{row.pk} was "
        "made, and this generation was not asked to replace one, so it was not approved. "
        "Approve it with replace=True (in the admin: “Approve and replace”) to use it "
        "anyway, or reject it."
    )


def _not_waiting(row: GeneratedImage) -> str:
    state = row.get_review_display().lower() if row.review else "not in approval mode"
    return f"Image #{row.pk} is not awaiting review ({state})."


def _deleted(row: GeneratedImage) -> str:
    return f"The object of image #{row.pk} was deleted; there is nothing to attach it to."


def config_of(row: GeneratedImage) -> ContentConfig | None:
    """The registration ``row``'s object is under, or ``None`` (a bare prompt, or a model
    no longer installed or registered)."""
    model = row.content_type.model_class() if row.content_type is not None else None
    if model is None:
        return None
    try:
        return config_for_stored(model)
    except ImproperlyConfigured:
        return None
