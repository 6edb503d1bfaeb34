"""Handing work to the task runner: django-q2, Django's tasks (6.0+), or immediately.

A leaf of the package: it knows the tasks of :mod:`nanobanana_django.tasks` only by
their dotted paths and never imports them, so the pipeline can queue work without an
import circle. Only primary keys (or a provider alias) travel through the queue; every
task is idempotent, so a broker that delivers one twice costs nothing and bills nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .conf import app_settings

logger = logging.getLogger(__name__)

DJANGO_Q = "django_q"
DJANGO_TASKS = "django_tasks"
IMMEDIATE = "immediate"
RUNNERS = (DJANGO_Q, DJANGO_TASKS, IMMEDIATE)

TASKS_MODULE = "nanobanana_django.tasks"
#: kind -> (the function django-q2 and the immediate runner call, the ``django.tasks`` task)
TASKS = {
    "generate": ("run_generation_task", "generate_header_image"),
    "complete": ("complete_generation_task", "complete_header_image"),
    "poll": ("poll_task", "follow_predictions"),
    "dispatch": ("dispatch_task", "dispatch_calls"),
}
#: Long-running loops that the immediate runner does not start: with it, every
#: generation waits for its own result in the process that asked for it.
LOOPS = ("poll", "dispatch")
TASK_PATH = f"{TASKS_MODULE}.{TASKS['generate'][0]}"


def enqueue_generation(image_id: int) -> None:
    """Hand generation ``image_id`` to the configured runner."""
    _dispatch("generate", image_id, name=f"nanobanana-{image_id}")


def enqueue_completion(image_id: int) -> None:
    """Hand the completion of generation ``image_id`` to the runner (webhooks do this)."""
    _dispatch("complete", image_id, name=f"nanobanana-done-{image_id}")


def enqueue_poller() -> None:
    """Start a poller task (``poller.ensure_poller`` decides whether one is needed)."""
    _dispatch("poll", name="nanobanana-poller")


def enqueue_dispatcher(alias: str) -> None:
    """Start a dispatcher task for provider ``alias`` (``dispatcher.ensure_dispatcher``
    decides whether one is needed)."""
    _dispatch("dispatch", alias, name=f"nanobanana-dispatch-{alias}")


def django_tasks_available() -> bool:
    """Whether this Django has ``django.tasks`` (6.0+)."""
    try:
        import django.tasks  # noqa: F401
    except ImportError:
        return False
    return True


def _dispatch(kind: str, *args: Any, name: str) -> None:
    runner = app_settings.TASK_RUNNER
    function_name, task_name = TASKS[kind]
    if runner == IMMEDIATE:
        if kind not in LOOPS:
            import_string(f"{TASKS_MODULE}.{function_name}")(*args)
    elif runner == DJANGO_Q:
        from django_q.tasks import async_task

        # save=False: a task that succeeded leaves no result row. The GeneratedImage row
        # is the record; saving one per image cost a write transaction each (with
        # django-q2's pruning of old results), and pushed the site's own task results
        # out of Q_CLUSTER["save_limit"]. A task that raised is still saved.
        async_task(
            f"{TASKS_MODULE}.{function_name}",
            *args,
            task_name=name,
            group="nanobanana",
            save=False,
        )
    elif runner == DJANGO_TASKS:
        if not django_tasks_available():
            raise ImproperlyConfigured(
                "NANOBANANA['TASK_RUNNER'] is 'django_tasks', which needs Django 6.0 or later. "
                "Use 'django_q' or 'immediate'."
            )
        import_string(f"{TASKS_MODULE}.{task_name}").enqueue(*args)
    else:  # pragma: no cover - TASK_RUNNER validates its value
        raise ImproperlyConfigured(f"Unknown task runner {runner!r}.")
    logger.debug("%s handed to %s", name, runner)


WATCHDOG_SCHEDULE = "nanobanana-watchdog"


def install_watchdog_schedule(using: str = "default", **kwargs: Any) -> None:
    """After ``migrate``: a django-q2 schedule that runs the watchdog each minute.

    It is what restarts polling (and dispatching) after a whole cluster died with work in
    flight (a loop's own task only comes back after Q_CLUSTER['retry']).
    """
    from django.apps import apps

    if app_settings.TASK_RUNNER != DJANGO_Q or not apps.is_installed("django_q"):
        return
    from django_q.models import Schedule

    Schedule.objects.using(using).get_or_create(
        name=WATCHDOG_SCHEDULE,
        defaults={
            "func": f"{TASKS_MODULE}.watchdog_task",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )


SWEEP_SCHEDULE = "nanobanana-sweep"


def install_sweep_schedule(using: str = "default", **kwargs: Any) -> None:
    """After ``migrate``: a django-q2 schedule that sweeps for scheduled posts that became
    due (:mod:`nanobanana_django.schedule`) every ``SWEEP_INTERVAL`` seconds, rounded up to
    whole minutes; ``SWEEP_INTERVAL = 0`` removes it."""
    from django.apps import apps

    if app_settings.TASK_RUNNER != DJANGO_Q or not apps.is_installed("django_q"):
        return
    from django_q.models import Schedule

    interval = app_settings.SWEEP_INTERVAL
    schedules = Schedule.objects.using(using)
    if not interval:
        schedules.filter(name=SWEEP_SCHEDULE).delete()
        return
    schedules.update_or_create(
        name=SWEEP_SCHEDULE,
        defaults={
            "func": f"{TASKS_MODULE}.sweep_task",
            "schedule_type": Schedule.MINUTES,
            "minutes": -(-interval // 60),
            "repeats": -1,
        },
    )
