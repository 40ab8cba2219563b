"""PostgreSQL: a pooled connection the server has closed is never handed to a request; the hot path's
program runner commits a program whole or not at all."""

from __future__ import annotations

import asyncio

import pytest
from conftest import pg_execute
from sqlalchemy import text

from trollllm.db import create_engine
from trollllm.storage.runners import build_runner
from trollllm.storage.sqlprogram import Program, Query


async def test_a_pooled_connection_the_server_closed_is_replaced_at_checkout(
    postgres_database_url: str,
) -> None:
    engine = create_engine(postgres_database_url)
    try:
        async with engine.connect() as connection:
            first_pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await pg_execute(f"SELECT pg_terminate_backend({int(first_pid)})")  # e.g. a server restart
        await asyncio.sleep(0.2)  # the closing reaches the pooled connection's socket
        async with engine.connect() as connection:
            pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert pid != first_pid
    finally:
        await engine.dispose()


class Refused(Exception):
    """A program's own refusal (like a hold that is not covered)."""


def add_twice(value: int, *, then_fail: bool = False) -> Program[int]:
    yield Query("INSERT INTO runner_t (v) VALUES (:v), (:v + 1)", {"v": value})
    if then_fail:
        raise Refused
    rows = yield Query("SELECT count(*) FROM runner_t WHERE v >= :v", {"v": value})
    return int(rows[0][0])


async def test_a_postgres_program_commits_whole_or_not_at_all(postgres_database_url: str) -> None:
    engine = create_engine(postgres_database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE runner_t (v BIGINT)"))
        runner = build_runner(engine, None)
        try:
            assert await runner.write(add_twice(10)) == 2
            with pytest.raises(Refused):
                await runner.write(add_twice(20, then_fail=True))
            rows = await runner.read(add_twice_read())
            assert rows == [10, 11]
        finally:
            runner.close()
    finally:
        await engine.dispose()


def add_twice_read() -> Program[list[int]]:
    rows = yield Query("SELECT v FROM runner_t ORDER BY v", {})
    return [int(v) for (v,) in rows]


def backend_pid() -> Program[int]:
    rows = yield Query("SELECT pg_backend_pid()", {})
    return int(rows[0][0])


async def test_a_connection_the_server_closed_while_the_runner_kept_it_is_replaced(
    postgres_database_url: str,
) -> None:
    engine = create_engine(postgres_database_url)
    runner = build_runner(engine, None)
    try:
        first_pid = await runner.read(backend_pid())
        await pg_execute(f"SELECT pg_terminate_backend({first_pid})")
        await asyncio.sleep(0.2)  # the closing reaches the kept connection's socket
        assert await runner.read(backend_pid()) != first_pid
    finally:
        runner.close()
        await engine.dispose()


async def test_closing_the_runner_and_the_engine_leaves_no_server_connection(
    postgres_database_url: str,
) -> None:
    engine = create_engine(postgres_database_url)
    runner = build_runner(engine, None)
    database = engine.url.database
    await asyncio.gather(*(runner.read(backend_pid()) for _ in range(5)))
    runner.close()
    await engine.dispose()
    await asyncio.sleep(0.2)
    watcher = create_engine(postgres_database_url.rsplit("/", 1)[0] + "/test")
    try:
        async with watcher.connect() as connection:
            count = await connection.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE datname = :name"), {"name": database}
            )
        assert count == 0
    finally:
        await watcher.dispose()
