"""Variants: several candidate images for one object, of which an editor picks one.

Each candidate is a generation of its own (a row of kind ``variant``): one prediction,
billed on its own, and passing the budgets on its own, so a budget may stop some of a
batch and not the others. The rows of one request share a ``batch`` UUID and are never
attached when done (``auto_attach`` off). Choosing one attaches it, replacing the
object's image, and marks it approved and the others not chosen (``review`` rejected);
all stay in the history. The public functions are in :mod:`nanobanana_django.services`
(``queue_variants``, ``generate_variants``, ``choose_variant``).

The database's one-unfinished-generation rule covers only rows that attach by themselves;
a second batch for an object while one is unfinished is refused here instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models, transaction

from .attach import attach
from .conf import app_settings
from .costs import price_of
from .exceptions import GenerationInProgress
from .models import GeneratedImage

Kind = GeneratedImage.Kind
Review = GeneratedImage.Review


def check_count(n: object) -> int:
    """``n`` as a number of candidates, else a ``ValidationError`` on ``candidates``."""
    limit = app_settings.MAX_VARIANTS
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= limit:
        raise ValidationError(
            {
                "candidates": [
                    f"Ask for between 1 and {limit} candidate images "
                    f"(NANOBANANA['MAX_VARIANTS']); {n!r} is not."
                ]
            }
        )
    return n


def create_batch(
    obj: models.Model, n: int, create: Callable[[uuid.UUID], GeneratedImage]
) -> list[GeneratedImage]:
    """Record ``n`` candidate rows for ``obj`` with ``create(batch)``, or none at all.

    The object's row is locked meanwhile, so that two requests cannot both find no
    unfinished batch and each add one.
    """
    count = check_count(n)
    if obj.pk is None:
        raise ValueError("Save the object before asking for candidate images for it.")
    batch = uuid.uuid4()
    with transaction.atomic():
        list(type(obj)._base_manager.select_for_update().filter(pk=obj.pk).values_list("pk"))
        refuse_if_unfinished(obj)
        return [create(batch) for _ in range(count)]


def refuse_if_unfinished(obj: models.Model) -> None:
    """Raise :class:`GenerationInProgress` while a batch of ``obj`` is being made."""
    running = (
        GeneratedImage.objects.for_object(obj)
        .unfinished()
        .filter(kind=Kind.VARIANT)
        .order_by("pk")
        .first()
    )
    if running is not None:
        raise GenerationInProgress(
            f"{str(obj._meta.verbose_name).capitalize()} {obj.pk} already has candidate images "
            f"being made (batch {running.batch}, from #{running.pk}); wait for them to "
            "finish or cancel them."
        )


def choose_variant(row: GeneratedImage) -> bool:
    """Attach candidate ``row`` to its object, replacing its image, and mark the others of
    its batch as not chosen. Returns False, changing nothing, when the object is gone.

    Raises ``ValueError`` for a row that is not a succeeded candidate for an object.
    """
    if row.kind != Kind.VARIANT or not row.batch:
        raise ValueError(f"Generation {row.pk} is not a candidate image (a variant).")
    with transaction.atomic():
        if not attach(row, overwrite=True):
            return False
        mark_chosen(row)
    return True


def mark_chosen(row: GeneratedImage) -> None:
    """Record that ``row`` is the pick of its batch, and the others are not."""
    GeneratedImage.objects.filter(batch=row.batch).exclude(pk=row.pk).update(review=Review.REJECTED)
    GeneratedImage.objects.filter(pk=row.pk).update(review=Review.APPROVED)
    row.review = str(Review.APPROVED)


def is_chosen(row: GeneratedImage) -> bool | None:
    """Whether an editor picked this candidate (``None``: no pick yet)."""
    if row.review == Review.APPROVED:
        return True
    if row.review == Review.REJECTED:
        return False
    return None


def estimated_cost(alias: str, model: str, resolution: str | None, n: int) -> Decimal | None:
    """What ``n`` candidates would cost, from the price table, or ``None`` if unknown."""
    price = price_of(alias, model, resolution)
    return None if price is None else price * n
