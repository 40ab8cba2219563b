"""Requests whose hold is placed and not yet settled, counted so that shutdown can wait for them."""

from __future__ import annotations

import asyncio
import contextlib


class InFlight:
    """A count of admitted requests not yet settled (one integer step each way on the hot path)."""

    def __init__(self) -> None:
        self.count = 0
        self._idle: asyncio.Event | None = None  # made only while shutdown waits

    def enter(self) -> None:
        """A hold was placed."""
        self.count += 1

    def leave(self) -> None:
        """Its request settled (or went to the outbox)."""
        self.count -= 1
        if self.count <= 0 and self._idle is not None:
            self._idle.set()

    async def drained(self, timeout_s: float) -> bool:
        """Wait until every request has settled, at most `timeout_s`; True if none is left.

        On shutdown, requests cancelled past the graceful timeout settle in their `finally`; the database
        must stay open until they have.
        """
        if self.count <= 0:
            return True
        self._idle = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        return self.count <= 0
