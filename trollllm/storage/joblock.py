"""Background jobs run once across instances: a PostgreSQL advisory lock per job, a no-op on SQLite.

Every instance schedules the same jobs (maintenance every 5 minutes, plan expiry daily) at the same wall-clock
boundaries. At a boundary each tries `pg_try_advisory_lock` on the job's key: one gets it and runs the job,
the others skip that run. The winner keeps the lock a little after the run (`hold_at_least_s`), so an
instance waking a moment later (its clock a little behind, its event loop busy) still finds it taken instead
of running the job a second time. Embedded SQLite is one process: the lock is always granted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import AsyncIterator

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

logger = logging.getLogger("trollllm.storage.joblock")


def job_lock_key(name: str) -> int:
    """The advisory lock key of the job called `name` (a stable 32-bit hash; fits PostgreSQL's bigint)."""
    return zlib.crc32(name.encode())


@contextlib.asynccontextmanager
async def job_lock(
    engine: AsyncEngine,
    name: str,
    *,
    hold_at_least_s: float = 0.0,
    stop: asyncio.Event | None = None,
) -> AsyncIterator[bool]:
    """Yields True when this process may run the job `name` now, False while another instance runs it.

    PostgreSQL: a session-level `pg_try_advisory_lock` on a connection of its own, held for the whole run
    (which may be many short transactions) and at least `hold_at_least_s` seconds from when it was taken
    (cut short once `stop` is set), then released. SQLite (one process): always True, nothing held.
    """
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = job_lock_key(name)
    async with engine.connect() as connection:
        acquired = bool(await connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
        await connection.commit()
        taken_at = time.monotonic()
        try:
            yield acquired
            if acquired:
                await _linger(taken_at + hold_at_least_s - time.monotonic(), stop)
        finally:
            if acquired:
                await _unlock(connection, key)


async def _linger(seconds: float, stop: asyncio.Event | None) -> None:
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for((stop or asyncio.Event()).wait(), timeout=seconds)


async def _unlock(connection: AsyncConnection, key: int) -> None:
    """Release the lock; if that fails (or is cancelled), drop the connection so that the pool never hands
    out a connection still holding it."""
    try:
        await asyncio.shield(_release(connection, key))
    except BaseException:
        logger.warning("could not release a job lock; closing its connection instead", exc_info=True)
        await connection.invalidate()
        raise


async def _release(connection: AsyncConnection, key: int) -> None:
    await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    await connection.commit()
