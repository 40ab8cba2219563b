"""Background jobs run once across instances, not once per instance (issue 17): the maintenance pass (log
purge, hold sweeper and whatever else it runs) and the plan job each take a PostgreSQL advisory lock
(`trollllm.storage.joblock`); on SQLite (one process) the lock is always granted."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from conftest import AppFactory
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from trollllm.accounts.tables import User
from trollllm.clock import SystemClock
from trollllm.db import transaction
from trollllm.plans.expiry import run_plan_jobs
from trollllm.storage.joblock import job_lock
from trollllm.usage.retention import maintenance_pass, next_boundary


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


async def test_three_instances_waking_for_one_maintenance_pass_run_it_once(
    app_factory: AppFactory, postgres_database_url: str
) -> None:
    instances = [await app_factory(postgres_database_url) for _ in range(3)]
    clock = SystemClock()
    ran = await asyncio.gather(
        *(
            maintenance_pass(
                harness.state.sessions,
                clock,
                stop=asyncio.Event(),
                interval=timedelta(seconds=2),
                engine=harness.state.engine,
            )
            for harness in instances
        )
    )
    assert sorted(ran) == [False, False, True]
    assert await advisory_locks_held(instances[0].state.engine) == 0, "released after its hold"


def test_every_instance_wakes_for_a_pass_at_the_same_wall_clock_boundary() -> None:
    interval = timedelta(minutes=5)
    assert next_boundary(datetime(2026, 3, 1, 12, 3, 10, tzinfo=UTC), interval) == datetime(
        2026, 3, 1, 12, 5, tzinfo=UTC
    )
    assert next_boundary(datetime(2026, 3, 1, 12, 5, tzinfo=UTC), interval) == datetime(
        2026, 3, 1, 12, 10, tzinfo=UTC
    ), "strictly after: a pass that ran at the boundary waits for the next"


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
