"""Running generations in the background: django-q2, Django's tasks, or immediately.

Only the ``GeneratedImage`` primary key travels through the queue. The task is
idempotent (see :func:`nanobanana_django.services.run_generation`), so a broker that
delivers it twice costs nothing and bills nothing twice.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ImproperlyConfigured

from .conf import app_settings

logger = logging.getLogger(__name__)

DJANGO_Q = "django_q"
DJANGO_TASKS = "django_tasks"
IMMEDIATE = "immediate"
RUNNERS = (DJANGO_Q, DJANGO_TASKS, IMMEDIATE)

TASK_PATH = "nanobanana_django.tasks.run_generation_task"


def run_generation_task(image_id: int) -> str:
    """The task body: carry out generation ``image_id``; return its final status."""
    from .services import run_generation

    return run_generation(int(image_id)).status


try:  # Django 6.0+
    from django.tasks import task as _django_task
except ImportError:  # pragma: no cover - depends on the Django version
    generate_header_image = None
else:

    @_django_task
    def generate_header_image(image_id: int) -> str:
        """``run_generation_task`` as a Django task (``django.tasks``, Django 6.0+).

        Defined under its own name: Django's workers import a task by its path.
        """
        return run_generation_task(image_id)


def enqueue(image_id: int) -> None:
    """Hand generation ``image_id`` to the configured runner."""
    runner = app_settings.TASK_RUNNER
    if runner == IMMEDIATE:
        run_generation_task(image_id)
    elif runner == DJANGO_Q:
        from django_q.tasks import async_task

        async_task(TASK_PATH, image_id, task_name=f"nanobanana-{image_id}", group="nanobanana")
    elif runner == DJANGO_TASKS:
        if generate_header_image is None:
            raise ImproperlyConfigured(
                "NANOBANANA['TASK_RUNNER'] is 'django_tasks', which needs Django 6.0 or later. "
                "Use 'django_q' or 'immediate'."
            )
        generate_header_image.enqueue(image_id)
    else:  # pragma: no cover - TASK_RUNNER validates its value
        raise ImproperlyConfigured(f"Unknown task runner {runner!r}.")
    logger.debug("Generation %s handed to %s", image_id, runner)
