"""Requests whose hold is placed and not yet settled: counted so that shutdown can wait for them, and
their holds listed so that they are renewed while the requests run (`trollllm.billing.renewal`)."""

from __future__ import annotations

import asyncio
import contextlib


class InFlight:
    """The admitted requests of this process not yet settled (a few steps each way on the hot path)."""

    def __init__(self) -> None:
        self.count = 0
        self._holds: dict[int, str] = {}  # hold id -> its request id
        self._idle: asyncio.Event | None = None  # made only while shutdown waits

    def enter(self, hold_id: int, request_id: str) -> None:
        """A hold was placed (hold id 0: a request on the user's own key, nothing held)."""
        self.count += 1
        if hold_id > 0:  # a row to renew (not a lease's hold: its lease is renewed)
            self._holds[hold_id] = request_id

    def leave(self, hold_id: int) -> None:
        """Its request settled (or went to the outbox)."""
        self.count -= 1
        self._holds.pop(hold_id, None)
        if self.count <= 0 and self._idle is not None:
            self._idle.set()

    def live_holds(self) -> dict[int, str]:
        """The holds of the requests in flight now: hold id -> request id (a copy)."""
        return dict(self._holds)

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
