"""A lease in the shared cache: at most one live holder of a loop (poller, dispatcher).

Taken with ``cache.add`` (atomic on every shared backend), renewed by its holder while it
works, and released at the end; a holder that died stops renewing, and its lease runs
out so that another can take over. The value carries when it was last renewed, so a
newcomer can tell a live holder (leave at once) from a stale one (wait it out).
"""

from __future__ import annotations

import time
import uuid
from typing import Any


class Lease:
    def __init__(self, cache: Any, key: str, seconds: float) -> None:
        self.cache = cache
        self.key = key
        self.seconds = seconds
        self.token = uuid.uuid4().hex
        self.renewed = 0.0

    def take(self) -> bool:
        """Take the lease if nobody holds it."""
        if self.cache.add(self.key, lease_value(self.token), timeout=self.seconds):
            self.renewed = time.monotonic()
            return True
        return False

    def held_by_other(self, grace: float) -> bool:
        """Whether someone else holds it and renewed it within ``grace`` seconds."""
        held = self.cache.get(self.key)
        return (
            held is not None
            and token_of(held) != self.token
            and (time.time() - _renewed_at(held) < grace)
        )

    def renew(self) -> bool:
        """Extend it; False if it is no longer ours (it expired, another took it)."""
        if token_of(self.cache.get(self.key)) != self.token:
            return False
        self.cache.set(self.key, lease_value(self.token), timeout=self.seconds)
        self.renewed = time.monotonic()
        return True

    def renew_if_due(self, every: float) -> bool:
        if time.monotonic() - self.renewed < every:
            return True
        return self.renew()

    def release(self) -> None:
        if token_of(self.cache.get(self.key)) == self.token:
            self.cache.delete(self.key)


def lease_value(token: str) -> str:
    """What a lease holds: its holder's token and when it was renewed."""
    return f"{token} {time.time():.3f}"


def token_of(value: object) -> str:
    return str(value).partition(" ")[0]


def _renewed_at(value: object) -> float:
    try:
        return float(str(value).partition(" ")[2])
    except ValueError:
        return 0.0
