"""When an in-memory snapshot of database rows is reloaded: after its TTL or an invalidation, once at a time.

Without it, every request that finds a snapshot stale reloads it: at 32 concurrent requests that is 32 copies
of the same query at once, more ORM sessions than the pool keeps, so SQLite connections are opened (and the
schema parsed) for one read each and closed again. With it, the first request reloads while the others wait
for that one reload. An invalidation that arrives while a reload is running makes the next request reload
again: the running one may have read the rows before the change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from trollllm.clock import Clock


class SnapshotAge:
    """Whether a snapshot is due for a reload, and the one reload at a time that makes it fresh."""

    def __init__(self, clock: Clock, ttl_s: float) -> None:
        self._clock = clock
        self._ttl_s = ttl_s
        self._loaded_at = float("-inf")
        self._invalidations = 0
        self._lock = asyncio.Lock()

    @property
    def stale(self) -> bool:
        """Past its TTL, invalidated, or never loaded."""
        return self._clock.monotonic() - self._loaded_at > self._ttl_s

    def invalidate(self) -> None:
        """The rows changed: the next request reloads (even if a reload is running now)."""
        self._invalidations += 1
        self._loaded_at = float("-inf")

    async def refresh(self, reload: Callable[[], Awaitable[None]]) -> None:
        """Run `reload` unless another caller made the snapshot fresh while this one waited for its turn."""
        async with self._lock:
            if not self.stale:
                return
            invalidations, started = self._invalidations, self._clock.monotonic()
            await reload()
            if invalidations == self._invalidations:
                self._loaded_at = started
