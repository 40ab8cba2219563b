"""Writes the pool's findings about factory keys to the database, off the request path.

One background worker runs every write in order (a key cooled down, then recovered, stays recovered),
each in its own short transaction. Request counters and spend are kept in memory and added to the rows
every few seconds and on close. A failed write is logged as an error and never reaches a request; failed
counter increments are kept and retried at the next flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from datetime import datetime
from typing import cast

from sqlalchemy import Table, Update, bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trollllm.db import transaction
from trollllm.upstream.tables import FactoryKey, Proxy

logger = logging.getLogger("trollllm.upstream")

COUNTER_FLUSH_INTERVAL_S = 5.0
_factory_keys = cast(Table, FactoryKey.__table__)
_add_requests = (
    update(_factory_keys)
    .where(_factory_keys.c.id == bindparam("key_id"))
    .values(
        requests_count=_factory_keys.c.requests_count + bindparam("added"),
        spend_nanos=_factory_keys.c.spend_nanos + bindparam("spent"),
    )
)


class KeyStatusWriter:
    """Queues status writes and request counts for factory keys; `start()`/`close()` own its tasks."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._queue: asyncio.Queue[Update | None] = asyncio.Queue()
        self._counts: Counter[int] = Counter()
        self._spend: Counter[int] = Counter()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the writer and the periodic counter flush (inside a running loop)."""
        self._tasks = [
            asyncio.create_task(self._write_forever(), name="trollllm-upstream-writer"),
            asyncio.create_task(self._tick_forever(), name="trollllm-upstream-counters"),
        ]

    async def close(self) -> None:
        """Write everything pending, then stop."""
        if self._tasks:
            await self.flush()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def flush(self) -> None:
        """Add the pending request counts and wait until every queued write has run."""
        if not self._tasks:
            raise RuntimeError("the key status writer is not running")
        self._queue.put_nowait(None)
        await self._queue.join()

    def count(self, key_id: int) -> None:
        """One more request sent with this key."""
        self._counts[key_id] += 1

    def add_spend(self, key_id: int, nanos: int) -> None:
        """A settled request's charge on this key (the admin page's Spend), added at the next flush."""
        if nanos > 0:
            self._spend[key_id] += nanos

    def cool_down(self, key_id: int, until: datetime, error: str) -> None:
        """Persist `cooling_down` until `until` with `error` (a disabled key stays disabled)."""
        self._queue.put_nowait(
            update(FactoryKey)
            .where(FactoryKey.id == key_id, FactoryKey.status != "disabled")
            .values(status="cooling_down", cooldown_until=until, last_error=error)
        )

    def disable(self, key_id: int, error: str) -> None:
        """Persist `disabled` with `error`: the key leaves rotation until an admin re-enables it."""
        self._queue.put_nowait(
            update(FactoryKey)
            .where(FactoryKey.id == key_id)
            .values(status="disabled", cooldown_until=None, last_error=error)
        )

    def recover(self, key_id: int, now: datetime) -> None:
        """Persist `healthy` for a key whose cooldown is over and that answered again."""
        self._queue.put_nowait(
            update(FactoryKey)
            .where(
                FactoryKey.id == key_id,
                FactoryKey.status == "cooling_down",
                (FactoryKey.cooldown_until.is_(None)) | (FactoryKey.cooldown_until <= now),
            )
            .values(status="healthy", cooldown_until=None)
        )

    def flag(self, key_id: int, error: str) -> None:
        """Persist only a `last_error` (a key the pool cannot use, e.g. bound to a socks5 proxy)."""
        self._queue.put_nowait(update(FactoryKey).where(FactoryKey.id == key_id).values(last_error=error))

    def proxy_failed(self, proxy_id: int, error: str, at: datetime) -> None:
        """Persist the proxy's `last_error`: it refused a request itself (shown by the admin proxies API)."""
        self._queue.put_nowait(
            update(Proxy).where(Proxy.id == proxy_id).values(last_error=error, last_error_at=at)
        )

    def proxy_passed(self, proxy_id: int) -> None:
        """Clear the proxy's `last_error`: a request went through it again."""
        self._queue.put_nowait(
            update(Proxy)
            .where(Proxy.id == proxy_id, Proxy.last_error.is_not(None))
            .values(last_error=None, last_error_at=None)
        )

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(COUNTER_FLUSH_INTERVAL_S)
            if self._counts or self._spend:
                self._queue.put_nowait(None)

    async def _write_forever(self) -> None:
        while True:
            statement = await self._queue.get()
            try:
                if statement is None:
                    await self._write_counts()
                else:
                    await self._write(statement)
            finally:
                self._queue.task_done()

    async def _write(self, statement: Update) -> None:
        try:
            async with transaction(self._sessions) as session:
                await session.execute(statement)
        except Exception:  # the top of a background task: log loudly, keep writing
            logger.exception("could not record a factory key's status")

    async def _write_counts(self) -> None:
        counts, self._counts = self._counts, Counter()
        spend, self._spend = self._spend, Counter()
        if not counts and not spend:
            return
        rows = [
            {"key_id": key_id, "added": counts[key_id], "spent": spend[key_id]}
            for key_id in sorted(set(counts) | set(spend))
        ]
        try:
            async with transaction(self._sessions) as session:
                await session.execute(_add_requests, rows)
        except Exception:  # the top of a background task: keep the counts for the next flush
            self._counts.update(counts)
            self._spend.update(spend)
            logger.exception("could not record factory key request counts; retrying at the next flush")
