"""SPEC §6: request logs are kept 30 days, then purged automatically in bounded batches; the ledger stays."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import AppHarness, make_settings
from sqlalchemy import event, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trollllm.accounts.tables import User
from trollllm.app import create_app
from trollllm.billing.ledger import ADMIN_ADJUSTMENT, apply_adjustment
from trollllm.billing.tables import Hold, LedgerEntry
from trollllm.cli import build_parser
from trollllm.cli.running import running_app
from trollllm.clock import ManualClock
from trollllm.db import create_sessionmaker, create_test_engine, transaction
from trollllm.money import Money
from trollllm.usage.retention import (
    LOG_RETENTION,
    purge_request_logs,
    retention_cutoff,
    run_periodically,
)
from trollllm.usage.tables import RequestLog


async def add_user(sessions: async_sessionmaker[AsyncSession], username: str) -> int:
    async with transaction(sessions) as session:
        user = User(username=username, password_hash="not-a-hash", plan="free")
        session.add(user)
        await session.flush()
        return user.id


async def insert_logs(
    sessions: async_sessionmaker[AsyncSession], user_id: int, times: list[datetime]
) -> None:
    async with transaction(sessions) as session:
        session.add_all(
            RequestLog(
                request_id=uuid.uuid4().hex, user_id=user_id, model="m", status_code=200, created_at=when
            )
            for when in times
        )


async def log_times(sessions: async_sessionmaker[AsyncSession]) -> list[datetime]:
    async with sessions() as session:
        return list(
            (await session.scalars(select(RequestLog.created_at).order_by(RequestLog.created_at))).all()
        )


async def test_purge_deletes_only_logs_older_than_30_days_in_batches(
    any_gateway: AppHarness, clock: ManualClock
) -> None:
    sessions = any_gateway.state.sessions
    user_id = await add_user(sessions, "alice")
    cutoff = retention_cutoff(clock.now())
    tick = timedelta(microseconds=1)
    old = [cutoff - tick - timedelta(hours=i) for i in range(11)]
    kept = [cutoff, cutoff + tick, clock.now()]
    await insert_logs(sessions, user_id, old + kept)
    deletes: list[str] = []

    def count_deletes(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            deletes.append(statement)

    event.listen(any_gateway.state.engine.sync_engine, "before_cursor_execute", count_deletes)
    try:
        purged = await purge_request_logs(sessions, older_than=cutoff, batch_size=4)
    finally:
        event.remove(any_gateway.state.engine.sync_engine, "before_cursor_execute", count_deletes)

    assert purged == 11
    assert len(deletes) == 3  # 4 + 4 + 3: a short batch ends the purge
    assert await log_times(sessions) == kept
    assert retention_cutoff(clock.now()) == clock.now() - timedelta(days=30) == clock.now() - LOG_RETENTION


async def test_purge_stops_after_the_current_batch_when_asked(
    gateway: AppHarness, clock: ManualClock
) -> None:
    sessions = gateway.state.sessions
    await insert_logs(sessions, await add_user(sessions, "alice"), [clock.now() - timedelta(days=31)] * 5)
    stop = asyncio.Event()

    def stop_at_first_delete(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            stop.set()

    event.listen(gateway.state.engine.sync_engine, "before_cursor_execute", stop_at_first_delete)
    try:
        purged = await purge_request_logs(
            sessions, older_than=retention_cutoff(clock.now()), batch_size=2, stop=stop
        )
    finally:
        event.remove(gateway.state.engine.sync_engine, "before_cursor_execute", stop_at_first_delete)

    assert purged == 2
    assert len(await log_times(sessions)) == 3


async def test_purge_with_nothing_old_deletes_nothing(any_gateway: AppHarness, clock: ManualClock) -> None:
    sessions = any_gateway.state.sessions
    await insert_logs(sessions, await add_user(sessions, "alice"), [clock.now()])

    assert await purge_request_logs(sessions, older_than=retention_cutoff(clock.now()), batch_size=1) == 0
    assert await log_times(sessions) == [clock.now()]


async def test_purge_leaves_ledger_entries_alone(any_gateway: AppHarness, clock: ManualClock) -> None:
    sessions = any_gateway.state.sessions
    user_id = await add_user(sessions, "alice")
    long_ago = clock.now() - timedelta(days=400)
    async with transaction(sessions) as session:
        await apply_adjustment(
            session,
            user_id=user_id,
            credits_delta=Money.from_usd(5),
            ref_credits_delta=Money.ZERO,
            kind=ADMIN_ADJUSTMENT,
            reason="grant",
            actor="test",
            when=long_ago,
            request_id="req_old",
        )
    await insert_logs(sessions, user_id, [long_ago])

    assert await purge_request_logs(sessions, older_than=retention_cutoff(clock.now())) == 1
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(LedgerEntry)) == 1


async def test_purge_rejects_an_empty_batch(gateway: AppHarness, clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        await purge_request_logs(gateway.state.sessions, older_than=clock.now(), batch_size=0)


async def test_periodic_maintenance_purges_logs_and_releases_expired_holds(
    gateway: AppHarness, clock: ManualClock
) -> None:
    sessions = gateway.state.sessions
    user_id = await add_user(sessions, "alice")
    async with transaction(sessions) as session:
        await apply_adjustment(
            session,
            user_id=user_id,
            credits_delta=Money.from_usd(1),
            ref_credits_delta=Money.ZERO,
            kind=ADMIN_ADJUSTMENT,
            reason="grant",
            actor="test",
            when=clock.now(),
        )
        session.add(Hold(request_id="req_crashed", user_id=user_id, amount_nanos=100, expires_at=clock.now()))
        await session.execute(update(User).where(User.id == user_id).values(held_nanos=100))
    await insert_logs(sessions, user_id, [clock.now() - timedelta(days=31), clock.now()])
    clock.advance(1)

    task = asyncio.create_task(
        run_periodically(sessions, clock, interval=timedelta(seconds=0.01), first_delay=timedelta(0))
    )
    try:
        for _ in range(500):
            async with sessions() as session:
                held = await session.scalar(select(User.held_nanos).where(User.id == user_id))
            if held == 0 and len(await log_times(sessions)) == 2:  # one purged, one `unsettled` added
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    assert held == 0
    # The 31-day-old row is purged; the released hold is logged as unsettled, at the sweep's time.
    assert await log_times(sessions) == [clock.now() - timedelta(seconds=1), clock.now()]


async def test_periodic_maintenance_logs_failures_and_keeps_running(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_test_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")  # no tables: every pass fails
    sessions = create_sessionmaker(engine)
    task = asyncio.create_task(
        run_periodically(sessions, clock, interval=timedelta(seconds=0.01), first_delay=timedelta(0))
    )
    try:
        with caplog.at_level(logging.ERROR, logger="trollllm"):
            for _ in range(500):
                if sum(r.getMessage() == "request log purge failed" for r in caplog.records) >= 2:
                    break
                await asyncio.sleep(0.01)
        assert not task.done()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await engine.dispose()

    messages = [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR]
    assert messages.count("request log purge failed") >= 2
    assert "expired hold sweep failed" in messages
    assert all(record.exc_info for record in caplog.records if record.levelno == logging.ERROR)


def test_purge_logs_command_purges_old_logs_once(
    embedded_database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path, embedded_database_url)
    now = datetime.now(UTC)

    async def seed() -> None:
        async with running_app(create_app(settings)) as state:
            user_id = await add_user(state.sessions, "alice")
            await insert_logs(
                state.sessions, user_id, [now - timedelta(days=31), now - timedelta(days=40), now]
            )

    async def remaining() -> int:
        async with running_app(create_app(settings)) as state:
            return len(await log_times(state.sessions))

    asyncio.run(seed())
    args = build_parser().parse_args(["purge-logs", "--batch-size", "1"])
    assert args.handler(settings, args) == 0
    assert "purged 2 request logs" in capsys.readouterr().out
    assert asyncio.run(remaining()) == 1
