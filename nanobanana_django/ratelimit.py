"""A rate limit on prediction creates shared by every process, through Django's cache.

Time is cut into slots of ``60 / RATE_LIMIT`` seconds (a little longer, to stay under
the limit despite scheduling jitter). A create may go only in a slot it has reserved
with ``cache.add``, which is atomic on every shared backend (Redis, Memcached, the
database cache), so no two creates share a slot and no 60 seconds ever hold more than
``RATE_LIMIT`` of them, however many workers or machines there are. After a 429, every
process waits until the time the provider named (``Retry-After``) before its next slot.

The cache must be shared: with ``LocMemCache`` each process counts on its own (the
system check ``nanobanana.W003`` says so).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

from django.core.cache import caches
from django.core.cache.backends.db import BaseDatabaseCache
from django.db import router, transaction

from .conf import app_settings
from .exceptions import CacheUnavailable

SLOT_KEY = "nanobanana:create-slot:{scope}{slot}"
HINT_KEY = "nanobanana:create-slot:{scope}next"
PAUSE_KEY = "nanobanana:create-pause-until{scope}"
MARGIN = 1.02
"""Slots are 2% longer than the limit strictly needs: jitter never pushes us over it."""
MAX_SLOT_SEARCH = 100_000


class CreateRateLimiter:
    def __init__(
        self,
        per_minute: int,
        cache_alias: str = "default",
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        scope: str = "",
    ) -> None:
        self.slot_seconds = 60.0 / per_minute * MARGIN
        # One limit per provider account and route: Replicate's keys are the original ones.
        prefix = f"{scope}:" if scope else ""
        self._slot_key = SLOT_KEY.replace("{scope}", prefix)
        self._hint_key = HINT_KEY.format(scope=prefix)
        self._pause_key = PAUSE_KEY.format(scope=f":{scope}" if scope else "")
        self.cache_alias = cache_alias
        self.cache = caches[cache_alias]
        self._clock = clock
        self._sleep = sleep

    @classmethod
    def from_settings(cls) -> CreateRateLimiter | None:
        if not app_settings.RATE_LIMIT:
            return None
        return cls(app_settings.RATE_LIMIT, app_settings.CACHE)

    @classmethod
    def shared(cls, per_minute: int, *, scope: str = "") -> CreateRateLimiter:
        """A limiter on the shared cache (``NANOBANANA["CACHE"]``) for one ``scope``."""
        return cls(per_minute, app_settings.CACHE, scope=scope)

    def acquire(self) -> float:
        """Reserve the next free slot and sleep until it starts; returns the wait.

        Raises :class:`CacheUnavailable` (before anything is sent) when the cache fails.
        """
        with self._cache_errors():
            slot = self._reserve()
        wait = max(0.0, slot * self.slot_seconds - self._clock())
        if wait:
            self._sleep(wait)
        return wait

    def _reserve(self) -> int:
        now = self._clock()
        paused_until = self.cache.get(self._pause_key) or 0.0
        first = math.ceil(max(now, paused_until) / self.slot_seconds)
        if paused_until <= now and self.cache.get(self._slot_key.format(slot=first - 2)) is None:
            # Nobody created in the previous slot: take the one under way instead of
            # waiting for the next (creates still stay a slot apart), so that a single
            # create, as on publishing, goes at once.
            first -= 1
        slot = max(first, self.cache.get(self._hint_key) or 0)
        for _ in range(MAX_SLOT_SEARCH):
            if self.cache.add(
                self._slot_key.format(slot=slot), 1, timeout=self._keep_for(slot, now)
            ):
                break
            slot += 1
        else:  # pragma: no cover - a hundred thousand creates queued ahead of us
            raise RuntimeError("no free create slot found")
        self.cache.set(self._hint_key, slot + 1, timeout=120)
        return slot

    def pause(self, seconds: float) -> None:
        """The provider said 429: nobody creates for ``seconds``."""
        until = self._clock() + seconds
        with self._cache_errors():
            if until > (self.cache.get(self._pause_key) or 0.0):
                self.cache.set(self._pause_key, until, timeout=max(1, math.ceil(seconds) + 1))

    @contextmanager
    def _cache_errors(self) -> Iterator[None]:
        """A broken cache (a DatabaseCache never created, Redis down) ends the generation
        with a message that says which cache and what to do, not a raw database error.

        A database cache's failed query aborts the caller's transaction on PostgreSQL, and
        the row could not be failed after it: inside one, the cache works in a savepoint."""
        try:
            with self._savepoint():
                yield
        except Exception as exc:
            backend = type(self.cache).__name__
            fix = (
                "Run: python manage.py createcachetable"
                if backend == "DatabaseCache"
                else "Check that the cache server is running and reachable"
            )
            raise CacheUnavailable(
                f"The shared cache {self.cache_alias!r} (NANOBANANA['CACHE'], {backend}) failed "
                f"while reserving a slot under the create rate limit ({type(exc).__name__}), so "
                f"nothing was sent to the provider. {fix}, then retry."
            ) from None

    def _savepoint(self):
        if not isinstance(self.cache, BaseDatabaseCache):
            return nullcontext()
        using = router.db_for_write(self.cache.cache_model_class)
        if not transaction.get_connection(using).in_atomic_block:
            return nullcontext()
        return transaction.atomic(using=using)

    def _keep_for(self, slot: int, now: float) -> int:
        """Keep a reservation until its slot is well past."""
        return max(60, math.ceil(slot * self.slot_seconds - now) + 60)
