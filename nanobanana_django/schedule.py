"""Scheduled posts: the sweep that gives an image to an object whose publish date came.

The publish hook (:mod:`nanobanana_django.publishing`) sees saves. An article saved with a
``published_at`` in the future is not published yet, and nothing saves it when that time
comes, so a periodic sweep (:func:`sweep`; a django-q2 schedule, or ``manage.py
nanobanana_sweep`` from cron) looks for it. Only rules that time alone can make true are
swept: a date or datetime field (``{"field": "published_at"}``). A status or boolean rule
becomes true by a save, which the hook sees; a callable rule cannot be a query.

Which objects are due: the rule is true now, it became true within ``SWEEP_WINDOW`` (older
ones are a backfill's business, so installing the app bills nothing for old posts), the
image field is empty, and no generation for the object's image field

- is queued or running (the one-unfinished-generation rule),
- ever succeeded (the image was made: it awaits review, was rejected, or an editor
  removed it; the sweep does not undo an editor's choice), variants and edits included
  (candidates waiting for an editor's pick),
- failed or was canceled within :data:`RETRY_AFTER`, or failed :data:`MAX_FAILURES` times
  (a prompt the model refuses is not billed again every minute; an editor retries it).

Each object is queued through :func:`nanobanana_django.services.queue_generation`, which
applies approval, budgets and the database's one-unfinished constraint: two sweeps at
once queue one generation, not two.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import models, transaction
from django.utils import timezone

from .adapter import get_adapter
from .conf import app_settings
from .models import GeneratedImage
from .registry import ContentConfig, registered_configs
from .services import AlreadyHasImage, GenerationInProgress, queue_generation

logger = logging.getLogger(__name__)

Status = GeneratedImage.Status

RETRY_AFTER = timedelta(hours=1)
"""A failed or canceled generation keeps the sweep away from its object this long."""

MAX_FAILURES = 3
"""After this many failed generations the sweep leaves the object to an editor."""


@dataclass
class SweepResult:
    """What one sweep did: the rows it queued (or would, in a dry run) and why it
    skipped the others."""

    queued: list[GeneratedImage] = field(default_factory=list)
    due: list[models.Model] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


def swept_configs() -> list[ContentConfig]:
    """The registrations whose publish rule time alone can make true."""
    try:
        configs = registered_configs()
    except ImproperlyConfigured:
        return []  # the system checks explain what is wrong
    return [c for c in configs if c.publish is not None and c.publish.date_field]


def due_objects(config: ContentConfig) -> list[models.Model]:
    """The objects of ``config`` that are due for an image now (see the module docstring)."""
    rule = config.publish
    if rule is None or rule.date_field is None or rule.query is None:
        return []
    since: Any = timezone.now() - timedelta(seconds=app_settings.SWEEP_WINDOW)
    model_field = config.model._meta.get_field(rule.date_field)
    if not isinstance(model_field, models.DateTimeField):
        since = timezone.localtime(since).date() if timezone.is_aware(since) else since.date()
    candidates = config.without_image(
        config.model._default_manager.filter(rule.query(), **{f"{rule.date_field}__gte": since})
    ).order_by(rule.date_field, "pk")
    objects = list(candidates)
    if not objects:
        return []
    handled = _handled(config, [str(obj.pk) for obj in objects])
    return [obj for obj in objects if str(obj.pk) not in handled]


def _handled(config: ContentConfig, object_ids: list[str]) -> set[str]:
    """The ids among ``object_ids`` whose generations keep the sweep away."""
    content_type = ContentType.objects.get_for_model(config.model)
    rows = GeneratedImage.objects.filter(
        content_type=content_type,
        object_id__in=object_ids,
        target_field=config.image_field,
    ).values_list("object_id", "status", "finished_at")
    recent = timezone.now() - RETRY_AFTER
    handled: set[str] = set()
    failures: Counter[str] = Counter()
    for object_id, status, finished_at in rows:
        settled = status in (Status.QUEUED, Status.RUNNING, Status.SUCCEEDED)
        if settled or finished_at is None or finished_at >= recent:
            handled.add(object_id)
        if status == Status.FAILED:
            failures[object_id] += 1
    handled.update(pk for pk, count in failures.items() if count >= MAX_FAILURES)
    return handled


def sweep(*, dry_run: bool = False) -> SweepResult:
    """Queue a generation for every due object; with ``dry_run``, only list them.

    Each object is queued in its own transaction, so its task starts when it commits and
    one bad object never stops the others.
    """
    result = SweepResult()
    adapter = get_adapter()
    for config in swept_configs():
        for obj in due_objects(config):
            if not adapter.is_published(obj, config) or not adapter.wants_image(obj, config):
                result.skipped["not_wanted"] += 1
                continue
            if dry_run:
                result.due.append(obj)
                continue
            try:
                with transaction.atomic():
                    row = queue_generation(obj)
            except (AlreadyHasImage, GenerationInProgress) as exc:
                result.skipped[exc.code] += 1
                continue
            except ValidationError as exc:
                result.skipped["invalid"] += 1
                logger.error(
                    "Sweep: no image queued for %s %s: invalid input: %s",
                    config.label,
                    obj.pk,
                    "; ".join(exc.messages),
                )
                continue
            except Exception:
                result.skipped["error"] += 1
                logger.exception("Sweep: could not queue an image for %s %s", config.label, obj.pk)
                continue
            result.due.append(obj)
            result.queued.append(row)
            logger.info("Sweep: header image %s queued for %s %s", row.pk, config.label, obj.pk)
    return result
