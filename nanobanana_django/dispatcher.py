"""Long provider calls, many at once in one worker: the dispatcher.

Some providers have no predictions to follow: Google's Gemini API holds each call open
until the image is made (seconds at 1K, tens of seconds at 4K). Running one such call
per task would make the number of images in flight the number of django-q2 workers,
and keep the site's workers busy waiting. Instead, the task of a queued generation for
such a provider only makes sure a dispatcher runs for its alias (:func:`ensure_dispatcher`),
and the dispatcher, one task holding a lease in the shared cache, takes that alias's
queued generations oldest first and runs up to the provider's ``concurrency`` calls at
once in threads. Each call is the ordinary pipeline (claim, submit, store, attach), so
exactly-once holds as everywhere: a row is claimed before its call is sent, and a
worker killed mid-call leaves it ``running`` without an answer, which the poller later
fails as ``interrupted`` with a message saying the provider may have billed it. It is
never sent again by itself.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from django.core.cache import caches
from django.db import close_old_connections, connections

from .conf import app_settings
from .leases import Lease
from .models import GeneratedImage
from .pipeline import run_generation
from .providers import Provider, get_provider, get_provider_config
from .runners import enqueue_dispatcher

logger = logging.getLogger(__name__)

Status = GeneratedImage.Status

LEASE_KEY = "nanobanana:dispatcher:{}"
QUEUED_KEY = "nanobanana:dispatcher:{}:queued"
LEASE_SECONDS = 15.0
"""A dispatcher renews its lease several times a second; a dead one's runs out in this."""
ACCEPT_SECONDS = 60.0
"""A dispatcher task takes new generations for this long, finishes its calls, and hands
over to a fresh task if more are queued (so that a cluster asked to stop stops)."""
IDLE_SECONDS = 2.0
"""With nothing queued, it waits this long for more (a backfill queues over time)."""
TICK = 0.2


def uses_dispatcher(alias: str) -> bool:
    """Whether background generations of provider ``alias`` go through a dispatcher."""
    return get_provider_config(alias).backend.capabilities.long_calls


def ensure_dispatcher(alias: str, *, force: bool = False) -> None:
    """Start a dispatcher task for ``alias`` unless one is alive or was queued lately."""
    cache = caches[app_settings.CACHE]
    if cache.get(LEASE_KEY.format(alias)) is not None:
        return
    if cache.add(QUEUED_KEY.format(alias), 1, timeout=LEASE_SECONDS) or force:
        enqueue_dispatcher(alias)


def dispatch_waiting(older_than: float = 30.0) -> None:
    """The watchdog's part: a dispatcher for every alias whose generations wait for one."""
    from datetime import timedelta

    from django.utils import timezone

    waiting = (
        GeneratedImage.objects.filter(
            status=Status.QUEUED,
            created_at__lt=timezone.now() - timedelta(seconds=older_than),
        )
        .values_list("provider", flat=True)
        .distinct()
    )
    for alias in waiting:
        try:
            if uses_dispatcher(alias):
                ensure_dispatcher(alias, force=True)
        except Exception:  # a misconfigured alias: its rows fail when they run
            logger.warning("Dispatcher for %r not started", alias, exc_info=True)


def run_dispatcher(alias: str, *, accept_seconds: float = ACCEPT_SECONDS) -> int:
    """Run ``alias``'s queued generations, ``concurrency`` at a time; returns how many.

    Leaves at once when a live dispatcher holds the lease for ``alias``.
    """
    cache = caches[app_settings.CACHE]
    lease = Lease(cache, LEASE_KEY.format(alias), LEASE_SECONDS)
    if not lease.take():
        return 0
    cache.delete(QUEUED_KEY.format(alias))
    done = 0
    try:
        provider = get_provider(alias, sync=False)
    except Exception:
        lease.release()
        raise
    concurrency = max(1, int(getattr(provider, "concurrency", 1)))
    pool = ThreadPoolExecutor(concurrency, thread_name_prefix=f"nanobanana-{alias}")
    in_flight: dict[Future[None], int] = {}
    started = time.monotonic()
    idle_since: float | None = None
    try:
        while lease.renew():
            accepting = time.monotonic() - started < accept_seconds
            if accepting and len(in_flight) < concurrency:
                for pk in _next_queued(alias, concurrency - len(in_flight), in_flight.values()):
                    in_flight[pool.submit(_run_one, pk, provider)] = pk
            if not in_flight:
                if not accepting:
                    break
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > IDLE_SECONDS:
                    break
                time.sleep(TICK)
                continue
            idle_since = None
            finished, _ = wait(list(in_flight), timeout=TICK, return_when=FIRST_COMPLETED)
            for future in finished:
                in_flight.pop(future)
                done += 1
        else:
            logger.warning("Dispatcher %r lost its lease; it takes no more calls", alias)
    finally:
        pool.shutdown(wait=True)  # a call that was sent is always seen to its end
        provider.close()
        lease.release()
        close_old_connections()
    if _next_queued(alias, 1, ()):
        ensure_dispatcher(alias)
    return done


def _next_queued(alias: str, limit: int, taken: object) -> list[int]:
    if limit <= 0:
        return []
    return list(
        GeneratedImage.objects.filter(provider=alias, status=Status.QUEUED)
        .exclude(pk__in=list(taken))  # type: ignore[call-overload]
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def _run_one(image_id: int, provider: Provider) -> None:
    """One generation, in a thread of the dispatcher: the whole pipeline, as any task."""
    try:
        run_generation(image_id, provider=provider, wait=True)
    except Exception:
        logger.exception("Dispatcher: generation %s failed unexpectedly", image_id)
    finally:
        connections.close_all()  # this thread's connections
