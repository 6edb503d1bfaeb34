"""Task functions the benchmarks enqueue to the django-q2 cluster (by dotted path)."""

from __future__ import annotations


def ping() -> str:
    """A no-op: its result tells that the cluster is up and taking tasks."""
    return "pong"


def blocking_generation(image_id: int) -> str:
    """The baseline: the worker holds its prediction until the image is stored.

    This is what the app's task did before workers learned to submit and return
    (``run_generation(pk)`` waits by default), so a worker is busy for as long as the
    model runs.
    """
    from nanobanana_django.services import run_generation

    return run_generation(int(image_id), wait=True).status
