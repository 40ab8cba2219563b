"""Background jobs run once across instances, not once per instance (issue 17): the maintenance pass (log
purge, hold sweeper and whatever else it runs) and the plan job each take a PostgreSQL advisory lock
(`trollllm.storage.joblock`); on SQLite (one process) the lock is always granted."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
from conftest import AppFactory
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from trollllm.accounts.tables import User
from trollllm.clock import SystemClock
from trollllm.db import transaction
from trollllm.plans.expiry import run_plan_jobs
from trollllm.storage.joblock import job_lock
from trollllm.usage.retention import next_boundary, run_periodically

PASS_INTERVAL = timedelta(seconds=0.6)


async def advisory_locks_held(engine: AsyncEngine) -> int:
    """Advisory locks held on the engine's database right now, by anyone."""
    async with engine.connect() as connection:
        held = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        )
    return int(held or 0)


async def test_three_instances_run_each_maintenance_pass_once_between_them(
    app_factory: AppFactory, postgres_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    instances = [await app_factory(postgres_database_url) for _ in range(3)]
    clock = SystemClock()
    # Start just after a boundary and stop between two: every instance then made the same number of passes.
    await asyncio.sleep((next_boundary(clock.now(), PASS_INTERVAL) - clock.now()).total_seconds() + 0.02)
    last_boundary = next_boundary(clock.now(), PASS_INTERVAL) + 3 * PASS_INTERVAL
    with caplog.at_level(logging.DEBUG, logger="trollllm.usage.retention"):
        tasks = [
            asyncio.create_task(
                run_periodically(
                    harness.state.sessions,
                    clock,
                    interval=PASS_INTERVAL,
                    first_delay=timedelta(0),
                    engine=harness.state.engine,
                )
            )
            for harness in instances
        ]
        await asyncio.sleep((last_boundary - clock.now()).total_seconds() + 0.25)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    messages = [record.getMessage() for record in caplog.records]
    ran = messages.count("maintenance pass done")
    skipped = messages.count("maintenance pass skipped: another instance runs it")
    assert ran == 5, "the pass at start, then one at each of 4 boundaries"
    assert skipped == 2 * ran, "the two other instances skipped every pass"
    assert await advisory_locks_held(instances[0].state.engine) == 0


async def test_three_instances_starting_the_plan_job_together_run_it_once(
    app_factory: AppFactory, postgres_database_url: str
) -> None:
    instances = [await app_factory(postgres_database_url) for _ in range(3)]
    async with transaction(instances[0].state.sessions) as session:
        await session.execute(
            update(User).values(plan="dev", plan_expires_at=datetime(2001, 1, 1, tzinfo=UTC))
        )
    reports = await asyncio.gather(
        *(run_plan_jobs(harness.state, hold_at_least=timedelta(seconds=0.5)) for harness in instances)
    )
    assert sorted(report.ran for report in reports) == [False, False, True]
    assert await advisory_locks_held(instances[0].state.engine) == 0
    assert (await run_plan_jobs(instances[1].state)).ran, "the next run, on any instance, runs"


async def test_a_job_lock_is_kept_its_minimum_time_unless_stopped(
    app_factory: AppFactory, postgres_database_url: str
) -> None:
    engine = (await app_factory(postgres_database_url)).state.engine
    other = (await app_factory(postgres_database_url)).state.engine
    stop = asyncio.Event()

    async def hold() -> None:
        async with job_lock(engine, "test-job", hold_at_least_s=30, stop=stop) as acquired:
            assert acquired

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0.2)
    async with job_lock(other, "test-job") as acquired:
        assert not acquired, "the run is over, but the lock is kept"
    async with job_lock(other, "another-job") as acquired:
        assert acquired, "each job has its own lock"
    stop.set()
    await asyncio.wait_for(holder, timeout=5)
    async with job_lock(other, "test-job") as acquired:
        assert acquired
    assert await advisory_locks_held(engine) == 0


async def test_on_sqlite_the_job_lock_is_always_granted(
    app_factory: AppFactory, embedded_database_url: str
) -> None:
    engine = (await app_factory(embedded_database_url)).state.engine
    async with (
        job_lock(engine, "test-job", hold_at_least_s=30) as first,
        job_lock(engine, "test-job") as second,
    ):
        assert first and second
