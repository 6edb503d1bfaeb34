"""One loop that follows every in-flight prediction, so workers never wait on the model.

Background workers submit a prediction and return. What finishes it is, first, the
provider's webhook (when ``PUBLIC_URL`` is set) and, always, this poller: it asks the
provider about all running generations at once (Replicate: its list endpoint, 100
predictions a request), finishes those that are done, cancels those that are overdue,
and recovers rows left without a prediction id by a worker that died while submitting.
With webhooks on it only looks every ``WEBHOOK_POLL_INTERVAL`` seconds, for webhooks
that never arrived.

One poller runs at a time, holding a lease in the shared cache. It is started as a
task when a prediction is submitted and none is running (``ensure_poller``), and ends
when nothing is in flight; ``manage.py nanobanana_poll`` runs one in the foreground.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, Any

from django.conf import settings
from django.core.cache import caches
from django.db.models import Count, Min, Q
from django.utils import timezone

from .conf import app_settings
from .exceptions import NanoBananaError
from .leases import Lease
from .lifecycle import submit_window
from .models import GeneratedImage
from .pipeline import complete_row, run_generation
from .providers import GenerationRequest, Prediction, Provider, get_provider, get_provider_config
from .providers.base import SUCCEEDED
from .runners import enqueue_generation, enqueue_poller

logger = logging.getLogger(__name__)

LEASE_KEY = "nanobanana:poller"
QUEUED_KEY = "nanobanana:poller:queued"
LOST_AFTER = 60.0
"""Seconds a generation may wait in the queue before the watchdog hands it out again."""
REQUEUE_BATCH = 100
Status = GeneratedImage.Status


@dataclass
class Sweep:
    """What one pass of the poller saw and did."""

    in_flight: int = 0
    finished: int = 0
    recovered: int = 0
    lease_lost: bool = False


def interval() -> float:
    if app_settings.PUBLIC_URL:
        return app_settings.WEBHOOK_POLL_INTERVAL
    return app_settings.POLL_INTERVAL


def lease_seconds() -> float:
    """How long a poller's lease lasts unless renewed (it renews it every sweep)."""
    return max(10.0, 3 * interval() + 5)


def ensure_poller(*, force: bool = False) -> None:
    """Start a poller task unless one holds the lease or one was queued lately.

    Without the second condition, every submission made before the first poller task
    starts (a backfill queues hundreds) queues a poller task of its own. A queued task
    that was lost stops blocking others after a lease's time; ``force`` (the watchdog)
    does not wait for that.
    """
    cache = caches[app_settings.CACHE]
    if cache.get(LEASE_KEY) is not None:
        return
    if cache.add(QUEUED_KEY, 1, timeout=lease_seconds()) or force:
        enqueue_poller()


def has_work() -> bool:
    """Whether the poller has something to do: a prediction to follow, or an orphan to recover.

    A row still ``running`` without a prediction id within its submit window is not
    such work: its submitter (a worker, a foreground ``generate_for``, a create held
    by throttling) is still inside its create request, and starts a poller itself once
    it has a prediction. Counting it made each poller task end at once and queue the
    next, several a second. Once the window has passed, the row counts: it was
    orphaned, and the watchdog's poller recovers it.
    """
    now = timezone.now()
    running = GeneratedImage.objects.filter(status=Status.RUNNING).values_list("provider")
    per_alias = running.annotate(
        with_id=Count("pk", filter=~Q(prediction_id="")), oldest=Min("started_at")
    ).order_by()
    return any(
        (with_id and _follows(alias))
        or (oldest is not None and now - oldest > submit_window(alias))
        for alias, with_id, oldest in per_alias
    )


def _follows(alias: str) -> bool:
    """Whether the poller follows ``alias``'s predictions. A provider without predictions
    (Gemini) answers with the image: its row's id is only a receipt while the caller stores
    it, and only a row left behind past its window is the poller's (to fail)."""
    try:
        return get_provider_config(alias).backend.capabilities.predictions
    except Exception:
        return True  # misconfigured: complete_generation fails its rows with the reason


def watchdog() -> None:
    """Start a poller if work is in flight and none is alive (run every minute), and hand
    out again the generations whose task was lost."""
    requeue_lost()
    if has_work():
        ensure_poller(force=True)


def requeue_lost() -> int:
    """Queue a new task for generations still queued ``LOST_AFTER`` seconds after they were
    created, the oldest ``REQUEUE_BATCH`` a run; returns how many.

    A broker without acknowledgements (django-q2's Redis broker) loses the tasks a cluster
    had taken when it is killed, and their rows stayed queued for good. A row whose task is
    only late (a backlog at the rate limit) gets a second one, which finds the row claimed
    and submits nothing (claims are conditional: docs/exactly-once.md).
    """
    cutoff = timezone.now() - timedelta(seconds=LOST_AFTER)
    lost = list(
        GeneratedImage.objects.filter(status=Status.QUEUED, created_at__lt=cutoff)
        .order_by("created_at")
        .values_list("pk", flat=True)[:REQUEUE_BATCH]
    )
    for pk in lost:
        enqueue_generation(pk)
    if lost:
        logger.warning(
            "%d generations queued over %.0f s ago handed out again", len(lost), LOST_AFTER
        )
    return len(lost)


def run_poller(*, forever: bool = False, max_seconds: float | None = None) -> int:
    """Poll until nothing is in flight (or forever); returns how many it finished.

    When another poller holds the lease, waits until the lease has had time to expire:
    a live poller renews it and this one leaves; a dead one's lease runs out and this
    one takes over. As a task it stops before the task runner's timeout and hands over
    to a fresh poller task if work remains.
    """
    lease = Lease(caches[app_settings.CACHE], LEASE_KEY, lease_seconds())
    if not _take_lease(lease):
        return 0
    if max_seconds is None and not forever:
        max_seconds = _task_time_budget()
    started = time.monotonic()
    finished = 0
    try:
        while True:
            sweep_started = time.monotonic()
            sweep = poll_once(lease=lease)
            finished += sweep.finished
            if sweep.lease_lost or not lease.renew():
                return finished  # the lease expired and another poller took over
            if not (sweep.in_flight or sweep.recovered) and not forever:
                break
            if max_seconds is not None and time.monotonic() - started > max_seconds:
                break
            # Sweeps start every interval: a long sweep (many images to store) is
            # followed at once by the next, as predictions finished meanwhile.
            time.sleep(max(0.0, interval() - (time.monotonic() - sweep_started)))
    finally:
        lease.release()
    if has_work():
        # Time is up, or a prediction was submitted after the last sweep, while our
        # lease kept its submitter from starting a poller: a fresh task carries on.
        ensure_poller()
    return finished


RENEW_DURING_SWEEP = 1.0
"""Seconds between renewals of the lease while one sweep goes on."""


def _take_lease(lease: Lease) -> bool:
    """Take the lease; wait for it only if its holder looks dead (not renewed lately).

    A live poller renews its lease every sweep, and every second during a long one (a
    sweep storing hundreds of images would outlast it), so a task that finds a fresh
    lease leaves at once instead of holding a worker for a whole lease.
    """
    deadline = time.monotonic() + lease.seconds + 1
    while True:
        if lease.take():
            lease.cache.delete(QUEUED_KEY)
            return True
        if lease.held_by_other(interval() + RENEW_GRACE):
            return False  # a live poller is on the job
        if time.monotonic() > deadline:
            return False  # someone kept renewing it: a live poller is on the job
        time.sleep(min(1.0, interval()))


RENEW_GRACE = 5.0
"""Seconds a sweep may take beyond the interval before its poller counts as stale."""


def poll_once(*, lease: Lease | None = None) -> Sweep:
    """Look at every running generation once; finish, give up on or recover each.

    One provider (one HTTP client, its connections kept alive) serves the whole sweep.
    With ``lease``, it is renewed as the sweep goes, and the sweep stops if it was lost.
    """
    sweep = Sweep()
    running = list(
        GeneratedImage.objects.filter(status=Status.RUNNING).values_list(
            "pk", "provider", "prediction_id", "started_at"
        )
    )
    by_provider: dict[str, list[tuple[int, str, object]]] = defaultdict(list)
    now = timezone.now()
    follows: dict[str, bool] = {}
    for pk, provider_name, prediction_id, started_at in running:
        if provider_name not in follows:
            follows[provider_name] = _follows(provider_name)
        if prediction_id and follows[provider_name]:
            by_provider[provider_name].append((pk, prediction_id, started_at))
        elif started_at and now - started_at > submit_window(provider_name):
            run_generation(pk, wait=False)  # left behind by a worker that died: recover it
            sweep.recovered += 1
    for provider_name, rows in by_provider.items():
        try:
            provider = get_provider(provider_name)
        except Exception:
            provider = None  # each row then fails with the reason (complete_generation)
        try:
            _follow(provider_name, provider, rows, sweep, lease)
        finally:
            if provider is not None:
                provider.close()
        if sweep.lease_lost:
            break
    return sweep


def _follow(
    provider_name: str,
    provider: Provider | None,
    rows: list[tuple[int, str, object]],
    sweep: Sweep,
    lease: Lease | None,
) -> None:
    """Finish the rows of one provider whose predictions are done (or overdue)."""
    states = _states(provider_name, provider, rows) if provider is not None else {}
    due = []
    for pk, prediction_id, started in rows:
        prediction = states.get(prediction_id)
        if prediction is not None and not prediction.is_terminal and not _overdue(started):
            sweep.in_flight += 1
        else:
            due.append((pk, prediction))
    loaded = GeneratedImage.objects.in_bulk([pk for pk, _prediction in due])
    due = [(pk, prediction) for pk, prediction in due if pk in loaded]  # not deleted since
    downloads = Downloads(provider) if provider is not None else None
    try:
        for position, (pk, prediction) in enumerate(due):
            if downloads is not None:
                for _pk, ahead in due[position : position + DOWNLOADS_AHEAD]:
                    downloads.start(ahead)
            if lease is not None and not lease.renew_if_due(RENEW_DURING_SWEEP):
                sweep.lease_lost = True
                return
            row = complete_row(loaded[pk], prediction, downloads or provider)
            if row.is_finished:
                sweep.finished += 1
            else:
                sweep.in_flight += 1
    finally:
        if downloads is not None:
            downloads.close()


DOWNLOADS_AHEAD = 4
"""Images a sweep downloads at once, ahead of storing them one by one."""


class Downloads(Provider):
    """A sweep's provider, with its next few images downloaded ahead in threads.

    The files come from another host (Replicate's CDN), and a sweep waiting for each
    download in turn stored at most one image per round trip. Only the download runs
    in a thread (no database access); checking, storing and attaching stay in the
    sweep, in order, and a failed download is raised where the row would have
    downloaded it, so it ends on that row as before.
    """

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.is_placeholder = provider.is_placeholder  # type: ignore[misc]
        self._pool = ThreadPoolExecutor(DOWNLOADS_AHEAD, thread_name_prefix="nanobanana-download")
        self._started: dict[str, Future[IO[bytes]]] = {}

    def start(self, prediction: Prediction | None) -> None:
        if prediction is None or prediction.status != SUCCEEDED or prediction.id in self._started:
            return
        self._started[prediction.id] = self._pool.submit(
            self.provider.open_output, prediction, max_bytes=app_settings.MAX_IMAGE_BYTES
        )

    def open_output(self, prediction: Prediction, *, max_bytes: int) -> IO[bytes]:
        started = self._started.pop(prediction.id, None)
        if started is None or max_bytes != app_settings.MAX_IMAGE_BYTES:
            if started is not None:
                _discard(started)
            return self.provider.open_output(prediction, max_bytes=max_bytes)
        return started.result()

    def submit(self, request: GenerationRequest) -> Prediction:
        return self.provider.submit(request)

    def fetch(self, prediction_id: str) -> Prediction:
        return self.provider.fetch(prediction_id)

    def cancel(self, prediction_id: str) -> Prediction | None:
        return self.provider.cancel(prediction_id)

    def find(self, request: GenerationRequest, *, created_after: Any) -> Any:
        return self.provider.find(request, created_after=created_after)

    def close(self) -> None:
        """Wait for the downloads under way; remove what no row took (the provider stays open)."""
        self._pool.shutdown(wait=True)
        for started in self._started.values():
            _discard(started)
        self._started.clear()


def _discard(started: Future[IO[bytes]]) -> None:
    with contextlib.suppress(Exception):  # a download nobody needs may fail quietly
        started.result().close()


def _states(
    provider_name: str, provider: Provider, rows: list[tuple[int, str, Any]]
) -> dict[str, Prediction]:
    """The providers' view of many predictions in as few requests as it allows."""
    try:
        oldest = min(started for _pk, _id, started in rows if started is not None)
        return provider.states([prediction_id for _pk, prediction_id, _s in rows], oldest)
    except (NanoBananaError, ValueError) as exc:
        logger.warning("Poller: could not list %s predictions: %s", provider_name, exc)
        return {}
    except Exception:
        logger.exception("Poller: could not list %s predictions", provider_name)
        return {}


def _overdue(started_at: object) -> bool:
    if started_at is None:
        return False
    elapsed = (timezone.now() - started_at).total_seconds()  # type: ignore[operator]
    return elapsed > app_settings.GENERATION_TIMEOUT


TASK_SECONDS = 30.0
"""A poller task hands over to a fresh one after this long, so that a cluster asked to
stop (which waits for running tasks) stops promptly."""


def _task_time_budget() -> float:
    """Short, and under django-q2's timeout so a poller task is never killed mid-sweep."""
    cluster = getattr(settings, "Q_CLUSTER", None) or {}
    timeout = cluster.get("timeout")
    return min(TASK_SECONDS, max(1.0, float(timeout) - 5.0)) if timeout else TASK_SECONDS
