"""Running generations in the background: django-q2, Django's tasks, or immediately.

Only the ``GeneratedImage`` primary key travels through the queue. The task is
idempotent (see :func:`nanobanana_django.services.run_generation`), so a broker that
delivers it twice costs nothing and bills nothing twice.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .conf import app_settings

logger = logging.getLogger(__name__)

DJANGO_Q = "django_q"
DJANGO_TASKS = "django_tasks"
IMMEDIATE = "immediate"
RUNNERS = (DJANGO_Q, DJANGO_TASKS, IMMEDIATE)

TASK_PATH = "nanobanana_django.tasks.run_generation_task"


def run_generation_task(image_id: int) -> str:
    """Submit generation ``image_id`` and return; the webhook or the poller finishes it.

    With the ``immediate`` runner (nobody else would finish it) it waits for the result.
    """
    from .poller import ensure_poller
    from .services import run_generation

    wait = app_settings.TASK_RUNNER == IMMEDIATE
    row = run_generation(int(image_id), wait=wait)
    if row.status == row.Status.RUNNING and row.prediction_id:
        ensure_poller()
    return row.status


def complete_generation_task(image_id: int) -> str:
    """Finish generation ``image_id`` if its prediction is done (after a webhook)."""
    from .services import complete_generation

    return complete_generation(int(image_id)).status


def watchdog_task() -> None:
    """Every minute (django-q2 schedule): restart polling a dead poller left behind."""
    from .poller import watchdog

    watchdog()


def poll_task() -> int:
    """Follow every in-flight prediction until none is left (or the time is up)."""
    from .poller import run_poller

    return run_poller()


try:  # Django 6.0+
    from django.tasks import task as _django_task
except ImportError:  # pragma: no cover - depends on the Django version
    generate_header_image = complete_header_image = follow_predictions = None
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


def enqueue(image_id: int) -> None:
    """Hand generation ``image_id`` to the configured runner."""
    _dispatch(run_generation_task, generate_header_image, image_id, f"nanobanana-{image_id}")


def enqueue_completion(image_id: int) -> None:
    """Hand the completion of generation ``image_id`` to the runner (webhooks do this)."""
    _dispatch(
        complete_generation_task, complete_header_image, image_id, f"nanobanana-done-{image_id}"
    )


def enqueue_poller() -> None:
    """Start a poller task (``poller.ensure_poller`` decides whether one is needed)."""
    _dispatch(poll_task, follow_predictions, None, "nanobanana-poller")


def _dispatch(function: Any, django_task: Any, argument: int | None, name: str) -> None:
    runner = app_settings.TASK_RUNNER
    args = () if argument is None else (argument,)
    if runner == IMMEDIATE:
        if function is not poll_task:  # immediate generations wait for their own result
            function(*args)
    elif runner == DJANGO_Q:
        from django_q.tasks import async_task

        path = f"{__name__}.{function.__name__}"
        # save=False: a task that succeeded leaves no result row. The GeneratedImage row
        # is the record; saving one per image cost a write transaction each (with
        # django-q2's pruning of old results), and pushed the site's own task results
        # out of Q_CLUSTER["save_limit"]. A task that raised is still saved.
        async_task(path, *args, task_name=name, group="nanobanana", save=False)
    elif runner == DJANGO_TASKS:
        if django_task is None:
            raise ImproperlyConfigured(
                "NANOBANANA['TASK_RUNNER'] is 'django_tasks', which needs Django 6.0 or later. "
                "Use 'django_q' or 'immediate'."
            )
        django_task.enqueue(*args)
    else:  # pragma: no cover - TASK_RUNNER validates its value
        raise ImproperlyConfigured(f"Unknown task runner {runner!r}.")
    logger.debug("%s handed to %s", name, runner)


WATCHDOG_SCHEDULE = "nanobanana-watchdog"


def install_watchdog_schedule(using: str = "default", **kwargs: Any) -> None:
    """After ``migrate``: a django-q2 schedule that runs :func:`watchdog_task` each minute.

    It is what restarts polling after a whole cluster died with predictions in flight
    (the poller's own task only comes back after Q_CLUSTER['retry']).
    """
    from django.apps import apps

    if app_settings.TASK_RUNNER != DJANGO_Q or not apps.is_installed("django_q"):
        return
    from django_q.models import Schedule

    Schedule.objects.using(using).get_or_create(
        name=WATCHDOG_SCHEDULE,
        defaults={
            "func": f"{__name__}.watchdog_task",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )
