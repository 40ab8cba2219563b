"""Request log retention (SPEC §6: kept 30 days) and the periodic maintenance loop.

The purge deletes in bounded batches, user by user, each `DELETE FROM request_logs WHERE id IN (SELECT
id … WHERE user_id = u AND created_at < cutoff LIMIT n)` in its own short transaction, so it never holds a
long lock (SQLite has one writer) and runs the same on SQLite and PostgreSQL. Only `request_logs` is
touched: the ledger is kept forever (and the database refuses deletes on it anyway). The logs are rolled
up first (`trollllm.usage.rollup`) and only rolled-up rows are deleted, so the admin metrics outlive them.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, delete, exists, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from trollllm.accounts.tables import User
from trollllm.billing.outbox import SettlementOutbox
from trollllm.billing.sweeper import release_expired_holds, release_expired_leases
from trollllm.clock import Clock
from trollllm.db import UtcDateTime, transaction
from trollllm.storage.joblock import job_lock
from trollllm.storage.sqlprogram import ProgramRunner
from trollllm.usage.rollup import (
    forget_unsettled_before,
    keep_watermark_below_newest_log,
    roll_up_request_logs,
    rolled_up_through,
)
from trollllm.usage.tables import RequestLog

logger = logging.getLogger("trollllm.usage.retention")

LOG_RETENTION = timedelta(days=30)
PURGE_BATCH_SIZE = 5000
MAINTENANCE_INTERVAL = timedelta(hours=1)
# The first run waits a little after startup: instances starting together do not all write at once, and
# short-lived apps (CLI commands, tests) exit before it.
MAINTENANCE_FIRST_DELAY = timedelta(seconds=60)
MAINTENANCE_JOB = "trollllm:maintenance"  # its advisory lock (`trollllm.storage.joblock`)
MAINTENANCE_LOCK_HOLD = timedelta(seconds=30)


# Stored responses (`trollllm.responses`) go with the logs, in batches, by plain SQL: this layer does not
# import the feature that owns the table.
_PURGE_STORED_RESPONSES = text(
    "DELETE FROM stored_responses WHERE id IN "
    "(SELECT id FROM stored_responses WHERE created_at < :cutoff LIMIT :batch)"
).bindparams(bindparam("cutoff", type_=UtcDateTime()))


def retention_cutoff(now: datetime) -> datetime:
    """The oldest `created_at` still kept at `now`: rows strictly older are purged."""
    return now - LOG_RETENTION


async def purge_request_logs(
    sessions: async_sessionmaker[AsyncSession],
    *,
    older_than: datetime,
    batch_size: int = PURGE_BATCH_SIZE,
    stop: asyncio.Event | None = None,
    roll_up_first: bool = True,
) -> int:
    """Delete request logs with `created_at < older_than` in batches of `batch_size`; returns how many.

    Only rolled-up rows go (the logs are rolled up first, unless the caller just did). Each batch is its
    own transaction; a user's rows are done at their first batch smaller than `batch_size`; once `stop`
    is set the purge ends after its current batch (the rest is left to the next run).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if roll_up_first:
        await roll_up_request_logs(sessions, stop=stop)
    await forget_unsettled_before(sessions, older_than)
    keep_watermark = keep_watermark_below_newest_log(sessions.kw["bind"].dialect.name)
    # User by user through `ix_request_logs_user_time`: there is no index on `created_at` alone, which would
    # cost every proxied request one more B-tree write. Finding who has old rows is one read, an index
    # probe per user.
    has_old_logs = exists().where(RequestLog.user_id == User.id, RequestLog.created_at < older_than)
    async with sessions() as session:
        owners = (await session.scalars(select(User.id).where(has_old_logs).order_by(User.id))).all()
    purged = 0
    for owner in owners:
        oldest_ids = (
            select(RequestLog.id)
            .where(
                RequestLog.user_id == owner,
                RequestLog.created_at < older_than,
                RequestLog.id <= rolled_up_through(),
            )
            .limit(batch_size)
        )
        statement = delete(RequestLog).where(RequestLog.id.in_(oldest_ids))
        deleted = batch_size
        while deleted == batch_size and (stop is None or not stop.is_set()):
            async with transaction(sessions) as session:
                connection = await session.connection()
                deleted = (await connection.execute(statement)).rowcount
                if keep_watermark is not None and deleted:
                    await connection.execute(keep_watermark)
            purged += deleted
        if stop is not None and stop.is_set():
            break
    if purged:
        logger.info("purged request logs", extra={"rows": purged, "cutoff": older_than.isoformat()})
    return purged


async def purge_stored_responses(
    sessions: async_sessionmaker[AsyncSession], *, older_than: datetime, batch_size: int = PURGE_BATCH_SIZE
) -> int:
    """Delete the stored responses made before `older_than` (SPEC §6: kept 30 days), in batches."""
    purged, deleted = 0, batch_size
    while deleted == batch_size:
        async with transaction(sessions) as session:
            connection = await session.connection()
            result = await connection.execute(
                _PURGE_STORED_RESPONSES, {"cutoff": older_than, "batch": batch_size}
            )
            deleted = result.rowcount
        purged += deleted
    return purged


async def run_maintenance(
    sessions: async_sessionmaker[AsyncSession],
    now: datetime,
    *,
    stop: asyncio.Event | None = None,
    outbox: tuple[SettlementOutbox, ProgramRunner] | None = None,
) -> None:
    """One maintenance pass: replay the settlement outbox, roll up the request logs for the metrics,
    purge logs past retention, then release expired holds (after the replay: a replayed settlement
    releases its own hold and charges it).

    Each step's failure is logged at error level with its traceback and does not stop the others;
    once `stop` is set each step ends after its current transaction.
    """
    if outbox is not None:
        await replay_outbox(outbox)
    try:
        await roll_up_request_logs(sessions, stop=stop)
    except Exception:
        logger.exception("request log rollup failed")
    try:
        cutoff = retention_cutoff(now)
        await purge_request_logs(sessions, older_than=cutoff, stop=stop, roll_up_first=False)
        await purge_stored_responses(sessions, older_than=cutoff)
    except Exception:
        logger.exception("request log purge failed")
    try:
        await release_expired_holds(sessions, now, stop=stop)
    except Exception:
        logger.exception("expired hold sweep failed")
    try:
        await release_expired_leases(sessions, now)
    except Exception:
        logger.exception("expired credit lease sweep failed")


async def replay_outbox(outbox: tuple[SettlementOutbox, ProgramRunner]) -> None:
    """Replay this instance's settlement outbox (its own files), logging a failure."""
    try:
        await outbox[0].replay(outbox[1])
    except Exception:
        logger.exception("settlement outbox replay failed")


def next_boundary(now: datetime, interval: timedelta) -> datetime:
    """The first multiple of `interval` since the epoch strictly after `now`: every instance wakes for the
    same pass at the same moment, so the job lock lets exactly one of them run it."""
    step = interval.total_seconds()
    slots = math.floor(now.timestamp() / step) + 1
    return datetime.fromtimestamp(slots * step, tz=UTC)


async def run_periodically(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    *,
    interval: timedelta = MAINTENANCE_INTERVAL,
    first_delay: timedelta = MAINTENANCE_FIRST_DELAY,
    outbox: tuple[SettlementOutbox, ProgramRunner] | None = None,
    engine: AsyncEngine | None = None,
) -> None:
    """Run a maintenance pass after `first_delay`, then at every multiple of `interval` (wall clock), until
    the task is cancelled.

    With `engine` the database steps of a pass run once across instances: only the holder of the
    `MAINTENANCE_JOB` advisory lock runs them (`trollllm.storage.joblock`), the others skip that pass; the
    settlement outbox is this instance's own files, so every instance replays its own at every pass.

    Meant for `asyncio.create_task` in the app's lifespan: on shutdown cancel it and await it before
    disposing of the engine. Cancelling it mid-pass lets the pass finish its current transaction (never
    abandoning a database call half-way), then re-raises. A failing pass is logged and the loop goes on.
    """
    stop = asyncio.Event()
    await asyncio.sleep(first_delay.total_seconds())
    while True:
        current = asyncio.create_task(
            maintenance_pass(sessions, clock, stop=stop, interval=interval, outbox=outbox, engine=engine)
        )
        try:
            await asyncio.shield(current)
        except asyncio.CancelledError:
            stop.set()
            await current
            raise
        now = clock.now()
        await asyncio.sleep(max((next_boundary(now, interval) - now).total_seconds(), 0.0))


async def maintenance_pass(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    *,
    stop: asyncio.Event,
    interval: timedelta = MAINTENANCE_INTERVAL,
    outbox: tuple[SettlementOutbox, ProgramRunner] | None = None,
    engine: AsyncEngine | None = None,
) -> bool:
    """One scheduled pass of this instance: its own outbox, then the database steps if it holds the
    `MAINTENANCE_JOB` lock (kept min(interval / 2, 30 s), so an instance waking late for the same pass
    skips it). True when this instance ran the database steps."""
    if engine is None:
        await run_maintenance(sessions, clock.now(), stop=stop, outbox=outbox)
        return True
    if outbox is not None:
        await replay_outbox(outbox)
    hold = min(interval / 2, MAINTENANCE_LOCK_HOLD).total_seconds()
    try:
        async with job_lock(engine, MAINTENANCE_JOB, hold_at_least_s=hold, stop=stop) as acquired:
            if not acquired:
                logger.debug("maintenance pass skipped: another instance runs it")
                return False
            await run_maintenance(sessions, clock.now(), stop=stop)
            return True
    except Exception:
        logger.exception("maintenance pass failed")
        return False
