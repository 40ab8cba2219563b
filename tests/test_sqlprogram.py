"""The SQLite program runner: group commit, rollback of one program alone, waiting for other writers."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from trollllm.storage.sqlprogram import Program, Query, SqliteRunner


class Refused(Exception):
    """A program's own refusal (like a hold that is not covered)."""


def insert(value: int, *, then_fail: bool = False) -> Program[int]:
    yield Query("INSERT INTO t (v) VALUES (:v)", {"v": value})
    if then_fail:
        raise Refused
    rows = yield Query("SELECT count(*) FROM t", {})
    return int(rows[0][0])


def stored(path: Path) -> list[int]:
    with sqlite3.connect(path) as connection:
        return [v for (v,) in connection.execute("SELECT v FROM t ORDER BY v")]


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "runner.db"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t (v INTEGER)")
    yield path


@pytest.fixture
def runner(database: Path) -> Iterator[SqliteRunner]:
    runner = SqliteRunner(str(database), asyncio.Lock())
    yield runner
    runner.close()


async def test_a_write_is_committed_when_it_returns(runner: SqliteRunner, database: Path) -> None:
    assert await runner.write(insert(1)) == 1
    assert stored(database) == [1]


async def test_a_failing_program_rolls_back_alone_inside_a_batch(
    runner: SqliteRunner, database: Path
) -> None:
    results = await asyncio.gather(
        runner.write(insert(1)),
        runner.write(insert(2, then_fail=True)),
        runner.write(insert(3)),
        return_exceptions=True,
    )
    assert isinstance(results[1], Refused)
    assert stored(database) == [1, 3]


async def test_a_lone_failing_program_leaves_nothing(runner: SqliteRunner, database: Path) -> None:
    with pytest.raises(Refused):
        await runner.write(insert(1, then_fail=True))
    assert await runner.write(insert(2)) == 1
    assert stored(database) == [2]


async def test_a_write_waits_for_another_process_holding_the_write_lock(
    runner: SqliteRunner, database: Path
) -> None:
    other = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t (v) VALUES (1)")
    asyncio.get_running_loop().call_later(0.1, other.execute, "COMMIT")
    assert await asyncio.wait_for(runner.write(insert(2)), timeout=5) == 2
    other.close()
    assert stored(database) == [1, 2]


async def test_a_write_waits_for_the_apps_own_orm_writer(database: Path) -> None:
    lock = asyncio.Lock()
    runner = SqliteRunner(str(database), lock)
    try:
        async with lock:
            pending = asyncio.ensure_future(runner.write(insert(1)))
            await asyncio.sleep(0.05)
            assert not pending.done()
        assert await asyncio.wait_for(pending, timeout=5) == 1
        assert await runner.write(insert(2)) == 2  # and the fast path is taken again afterwards
    finally:
        runner.close()


async def test_a_cancelled_caller_does_not_undo_its_write(runner: SqliteRunner, database: Path) -> None:
    pending = asyncio.ensure_future(runner.write(insert(1)))
    await asyncio.sleep(0)
    pending.cancel()
    await asyncio.gather(pending, return_exceptions=True)
    await runner.write(insert(2))
    assert stored(database) == [1, 2]


def insert_blob(value: int) -> Program[None]:
    yield Query("INSERT INTO t (v, blob) VALUES (:v, zeroblob(2000))", {"v": value})


async def test_the_wal_starts_over_under_writes_that_never_pause(database: Path) -> None:
    with sqlite3.connect(database) as connection:
        connection.execute("ALTER TABLE t ADD COLUMN blob BLOB")
    wal = database.with_name(database.name + "-wal")
    largest_wal = 0
    runner = SqliteRunner(str(database), asyncio.Lock(), checkpoint_interval_s=0.01)
    try:
        for value in range(8000):  # about 8,000 WAL frames (32 MB) if the WAL never started over
            await runner.write(insert_blob(value))
            if value % 100 == 0:
                largest_wal = max(largest_wal, wal.stat().st_size)
                await asyncio.sleep(0)
    finally:
        runner.close()
    # Never starting over reaches 32 MB or more; a restart that a busy machine delays (the checkpoint thread
    # gets less CPU) was seen at 15 MB, so the bound sits between the two.
    assert 0 < largest_wal < 24 * 1024 * 1024
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM t").fetchone() == (8000,)


async def test_a_counted_statement_answers_how_many_rows_it_changed(runner: SqliteRunner) -> None:
    def add_then_bump() -> Program[tuple[int, int]]:
        yield Query("INSERT INTO t (v) VALUES (1), (2), (3)", {})
        (bumped,), *_ = yield Query("UPDATE t SET v = v + 10 WHERE v >= :floor", {"floor": 2}, answer="count")
        (none,), *_ = yield Query("DELETE FROM t WHERE v = :v", {"v": 99}, answer="count")
        return int(bumped), int(none)

    assert await runner.write(add_then_bump()) == (2, 0)


async def test_an_insert_asking_for_its_new_id_gets_the_rows_id(runner: SqliteRunner, database: Path) -> None:
    def add(value: int) -> Program[int]:
        (new_id,), *_ = yield Query("INSERT INTO t (v) VALUES (:v)", {"v": value}, answer="new_id")
        return int(new_id)

    first, second = await runner.write(add(7)), await runner.write(add(8))
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT rowid FROM t WHERE v = 8").fetchone() == (second,)
    assert second == first + 1


async def test_bools_and_timestamps_are_stored_as_the_orm_stores_them(
    runner: SqliteRunner, database: Path
) -> None:
    from datetime import UTC, datetime, timedelta, timezone

    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE stamped (flag, at)")
    moments = [
        datetime(2026, 12, 7, 9, 5, 3, 42, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),  # no microseconds: still written with six digits
        datetime(2026, 6, 30, 23, 30, tzinfo=timezone(timedelta(hours=-2))),  # converted to UTC first
    ]

    def stamp(flag: bool, at: datetime) -> Program[None]:
        yield Query("INSERT INTO stamped (flag, at) VALUES (:flag, :at)", {"flag": flag, "at": at})

    for flag, at in zip([True, False, True], moments, strict=True):
        await runner.write(stamp(flag, at))
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT flag, typeof(flag), at FROM stamped ORDER BY rowid").fetchall()
    expected = [at.astimezone(UTC).isoformat(" ", "microseconds")[:26] for at in moments]
    assert rows == [(1, "integer", expected[0]), (0, "integer", expected[1]), (1, "integer", expected[2])]
    assert expected[2] == "2026-07-01 01:30:00.000000"
