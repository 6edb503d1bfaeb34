"""The background tasks: what the task runner calls (:mod:`nanobanana_django.runners`
queues them by dotted path; nothing in the package imports this module).

Only a ``GeneratedImage`` primary key (or a provider alias) travels through the queue.
Every task is idempotent (see :func:`nanobanana_django.pipeline.run_generation`), so a
broker that delivers one twice costs nothing and bills nothing twice.
"""

from __future__ import annotations

from .conf import app_settings
from .dispatcher import dispatch_waiting, ensure_dispatcher, run_dispatcher, uses_dispatcher
from .models import GeneratedImage
from .pipeline import complete_generation, run_generation
from .poller import ensure_poller, run_poller, watchdog
from .runners import IMMEDIATE, TASK_PATH
from .schedule import sweep

__all__ = [
    "TASK_PATH",
    "complete_generation_task",
    "dispatch_task",
    "poll_task",
    "run_generation_task",
    "sweep_task",
    "watchdog_task",
]


def run_generation_task(image_id: int) -> str:
    """Submit generation ``image_id`` and return; the webhook or the poller finishes it.

    A provider whose calls are long (Gemini) is left to its dispatcher, which runs many
    calls at once. With the ``immediate`` runner (nobody else would finish it) the
    generation is carried out here, waiting for the result.
    """
    image_id = int(image_id)
    immediate = app_settings.TASK_RUNNER == IMMEDIATE
    if not immediate:
        status, alias = GeneratedImage.objects.filter(pk=image_id).values_list(
            "status", "provider"
        ).first() or (None, "")
        if status == GeneratedImage.Status.QUEUED and _dispatched(alias):
            ensure_dispatcher(alias)
            return status
    row = run_generation(image_id, wait=immediate)
    if row.status == row.Status.RUNNING and row.prediction_id:
        ensure_poller()
    return row.status


def _dispatched(alias: str) -> bool:
    try:
        return uses_dispatcher(alias)
    except Exception:
        return False  # run_generation fails the row with the configuration error


def complete_generation_task(image_id: int) -> str:
    """Finish generation ``image_id`` if its prediction is done (after a webhook)."""
    return complete_generation(int(image_id)).status


def watchdog_task() -> None:
    """Every minute (django-q2 schedule): restart what a dead cluster left behind."""
    watchdog()
    dispatch_waiting()


def sweep_task() -> int:
    """Every ``SWEEP_INTERVAL`` (django-q2 schedule): queue images for scheduled posts that
    became due; returns how many were queued."""
    return len(sweep().queued)


def poll_task() -> int:
    """Follow every in-flight prediction until none is left (or the time is up)."""
    return run_poller()


def dispatch_task(alias: str) -> int:
    """Run provider ``alias``'s queued generations, many calls at once."""
    return run_dispatcher(str(alias))


try:  # Django 6.0+
    from django.tasks import task as _django_task
except ImportError:  # pragma: no cover - depends on the Django version
    generate_header_image = complete_header_image = follow_predictions = dispatch_calls = None
else:

    @_django_task
    def generate_header_image(image_id: int) -> str:
        """``run_generation_task`` as a Django task (``django.tasks``, Django 6.0+).

        Defined under its own name: Django's workers import a task by its path.
        """
        return run_generation_task(image_id)

    @_django_task
    def complete_header_image(image_id: int) -> str:
        return complete_generation_task(image_id)

    @_django_task
    def follow_predictions() -> int:
        return poll_task()

    @_django_task
    def dispatch_calls(alias: str) -> int:
        return dispatch_task(alias)
