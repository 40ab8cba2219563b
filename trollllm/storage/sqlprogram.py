"""Hot-path SQL, written once and run on either database at the lowest cost each allows.

A *program* is a generator that yields `Query`s and receives each query's rows; its return value is the
result. The same program runs:

- on SQLite, on one plain `sqlite3` connection on the event loop thread — no thread hop, no SQL
  compilation — inside `BEGIN IMMEDIATE … COMMIT` while holding this process's SQLite write lock (so it
  never waits in SQLite's busy handler behind one of our own transactions);
- on PostgreSQL, straight on the asyncpg connections of the engine's pool, in one short transaction
  (no SQL compilation or result wrapping per statement; any other database through SQLAlchemy's async
  connection).

SQL is plain, portable text with `:name` parameters. Timestamps are passed as aware UTC datetimes.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import Callable, Generator, Mapping
from datetime import UTC, datetime
from functools import cache
from operator import itemgetter
from typing import Any, NamedTuple, Protocol, TypeVar

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from trollllm.storage.walcheckpoint import CHECKPOINT_INTERVAL_S, WAL_SIZE_LIMIT_BYTES, WalCheckpointer

T = TypeVar("T")
_BUSY_WAIT_S = 30.0
logger = logging.getLogger("trollllm.db")
Rows = list[tuple[Any, ...]]


class Query(NamedTuple):
    """One SQL statement with named parameters (a tuple: a program builds several per request).

    `alone`: the program's only statement, atomic on its own; a runner may then run it without a
    transaction around it (on PostgreSQL that saves the `BEGIN` and `COMMIT` round trips).
    """

    sql: str
    params: Mapping[str, Any]
    alone: bool = False


Program = Generator[Query, Rows, T]


class ProgramRunner(Protocol):
    """Runs programs: `write` in one transaction, `read` without one."""

    # Whether programs may use PostgreSQL's data-modifying CTEs (`WITH … AS (UPDATE … RETURNING …)`).
    data_modifying_ctes: bool

    async def write(self, program: Program[T]) -> T:
        """Run `program` in one write transaction (committed on return, rolled back on error).

        A started write runs to its end even if its caller is cancelled (a client gone mid-request must
        not undo a charge).
        """
        ...

    async def read(self, program: Program[T]) -> T:
        """Run a read-only `program`."""
        ...

    def close(self) -> None:
        """Release the runner's connection, if it has one."""
        ...


class SqliteRunner:
    """Runs programs synchronously on one `sqlite3` connection (embedded mode's hot path)."""

    data_modifying_ctes = False

    def __init__(
        self, path: str, write_lock: asyncio.Lock, *, checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S
    ) -> None:
        self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # No busy timeout: this connection runs on the event loop, so it must never sleep inside SQLite
        # waiting for another writer (which may need this very loop to finish). It retries asynchronously.
        # Checkpoints copy the WAL into the database file, which can take milliseconds: they run on a
        # thread of their own (`trollllm.storage.walcheckpoint`), never inside a commit on the event loop.
        # Foreign keys are not enforced on this connection: its programs write rows of the user they have
        # just locked and read, and checking each insert's parents was 15 % of the hot path's SQLite time.
        # The ORM's connections and PostgreSQL (where the same programs run) still enforce them.
        pragmas = (
            "journal_mode=WAL",
            "foreign_keys=OFF",
            "synchronous=NORMAL",
            "busy_timeout=0",
            f"journal_size_limit={WAL_SIZE_LIMIT_BYTES}",
        )
        for pragma in (*pragmas, "wal_autocheckpoint=0"):
            self._connection.execute(f"PRAGMA {pragma}")
        self._cursor = self._connection.cursor()
        self._checkpointer = WalCheckpointer(path, checkpoint_interval_s)
        self._restarting: asyncio.Task[None] | None = None
        self._write_lock = write_lock
        self._pending: list[tuple[Program[Any], asyncio.Future[Any]]] = []
        self._scheduled = False
        self._waiting: asyncio.Task[None] | None = None  # a batch that has to wait for the write lock
        self._alone = True  # the last transaction held one program: writes are not arriving together
        self._ran_this_turn = False

    async def write(self, program: Program[T]) -> T:
        """Run `program` in a write transaction: group commit with every write queued meanwhile.

        The writes queued in one turn of the event loop are committed together (one `BEGIN IMMEDIATE …
        COMMIT`), each in its own savepoint, so one program's error rolls back only that program. Programs
        never await, so each runs whole inside the batch; exactness rests on their conditional
        statements. The batch runs in a plain loop callback, not a task: nothing to schedule but itself.
        While writes come one at a time (the last transaction held one program), a write runs at once in
        its caller's turn, the first of that turn only: there is nothing to wait for to batch with.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((program, future))
        if not self._scheduled and self._waiting is None:
            if self._alone and not self._ran_this_turn:
                self._ran_this_turn = True
                loop.call_soon(self._next_turn)
                self._flush_now()
                if future.done():
                    done: T = future.result()
                    return done
            else:
                self._scheduled = True
                loop.call_soon(self._flush_now)
        result: T = await future
        return result

    def _next_turn(self) -> None:
        self._ran_this_turn = False

    def _flush_now(self) -> None:
        self._scheduled = False
        if not self._pending or self._waiting is not None:
            return
        if not self._write_lock.locked():  # else one of our ORM sessions is writing: wait for it
            try:
                self._connection.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    self._fail(self._take(), exc)
                    return
            else:
                batch = self._take()
                outcomes = self._run(batch)
                try:
                    self._connection.execute("COMMIT")
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc):
                        self._rollback(batch, exc)
                        return
                    # The transaction stays open: committing it is retried once the lock frees.
                    self._waiting = asyncio.ensure_future(self._commit_later(batch, outcomes))
                    return
                self._committed(outcomes)
                return
        self._waiting = asyncio.ensure_future(self._flush_waiting())

    def _committed(self, outcomes: list[_Outcome]) -> None:
        _resolve(outcomes)
        if self._checkpointer.restart_wanted and self._restarting is None:
            self._restarting = asyncio.ensure_future(self._restart_wal())

    async def _restart_wal(self) -> None:
        try:
            await self._checkpointer.restart(self._write_lock)
        finally:
            self._restarting = None

    async def _flush_waiting(self) -> None:
        # The slow path: another writer (an ORM session of ours, a second worker, a CLI command) holds the
        # write lock. Wait for it without blocking the loop, for up to _BUSY_WAIT_S.
        batch: list[tuple[Program[Any], asyncio.Future[Any]]] = []
        try:
            async with self._write_lock:
                await self._retry_locked(lambda: self._connection.execute("BEGIN IMMEDIATE"))
                batch = self._take()
                outcomes = self._run(batch)
                await self._retry_locked(lambda: self._connection.execute("COMMIT"))
        except Exception as exc:
            self._rollback(batch or self._take(), exc)
            return
        finally:
            self._done_waiting()
        self._committed(outcomes)

    async def _commit_later(
        self, batch: list[tuple[Program[Any], asyncio.Future[Any]]], outcomes: list[_Outcome]
    ) -> None:
        try:
            async with self._write_lock:
                await self._retry_locked(lambda: self._connection.execute("COMMIT"))
        except Exception as exc:
            self._rollback(batch, exc)
            return
        finally:
            self._done_waiting()
        self._committed(outcomes)

    def _done_waiting(self) -> None:
        self._waiting = None
        if self._pending:  # queued meanwhile: their batch goes next
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_now)

    def _take(self) -> list[tuple[Program[Any], asyncio.Future[Any]]]:
        batch, self._pending = self._pending, []
        self._alone = len(batch) <= 1
        return batch

    def _run(self, batch: list[tuple[Program[Any], asyncio.Future[Any]]]) -> list[_Outcome]:
        connection = self._connection
        if len(batch) == 1:  # alone in its transaction: an error rolls it back whole just the same
            program, future = batch[0]
            try:
                return [(future, _drive(program, self._fetch), None)]
            except Exception as exc:
                connection.execute("ROLLBACK")
                connection.execute("BEGIN")  # an empty transaction for the caller's COMMIT (takes no lock)
                return [(future, None, exc)]
        outcomes: list[_Outcome] = []
        for program, future in batch:
            connection.execute("SAVEPOINT program")
            try:
                outcomes.append((future, _drive(program, self._fetch), None))
            except Exception as exc:
                connection.execute("ROLLBACK TO program")
                outcomes.append((future, None, exc))
            connection.execute("RELEASE program")
        return outcomes

    def _rollback(self, batch: list[tuple[Program[Any], asyncio.Future[Any]]], exc: BaseException) -> None:
        if self._connection.in_transaction:
            self._connection.execute("ROLLBACK")
        self._fail(batch, exc)

    @staticmethod
    def _fail(batch: list[tuple[Program[Any], asyncio.Future[Any]]], exc: BaseException) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("aborted"))

    @staticmethod
    async def _retry_locked(step: Callable[[], object]) -> None:
        delay, waited = 0.0005, 0.0
        while True:
            try:
                step()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or waited >= _BUSY_WAIT_S:
                    raise
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.05)

    async def read(self, program: Program[T]) -> T:
        """Run `program` as autocommit reads (WAL readers never wait for the writer)."""
        return _drive(program, self._fetch)

    def close(self) -> None:
        """Stop checkpointing and close the connection."""
        if self._restarting is not None:
            self._restarting.cancel()
        self._checkpointer.close()
        self._connection.close()

    def _fetch(self, query: Query) -> Rows:
        # Bound by position on one reused cursor: `sqlite3` binds a named parameter by building its name
        # as a string and looking it up, which was half the cost of the 19-column request-log insert.
        sql, values_of = _positional(query.sql)
        values = values_of(query.params)
        for value in values:
            if value.__class__ is datetime:  # rare: convert only the statements that carry a timestamp
                values = tuple(map(_sqlite_value, values))
                break
        return self._cursor.execute(sql, values).fetchall()


class EngineRunner:
    """Runs programs through a SQLAlchemy async engine (any database but the SQLite file runner's)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.data_modifying_ctes = engine.dialect.name == "postgresql"

    async def write(self, program: Program[T]) -> T:
        """Run `program` in one transaction, shielded from the caller's cancellation."""
        return await asyncio.shield(self._write(program))

    async def _write(self, program: Program[T]) -> T:
        async with self._engine.begin() as connection:
            return await _drive_async(program, connection)

    async def read(self, program: Program[T]) -> T:
        """Run `program` on a pooled connection."""
        async with self._engine.connect() as connection:
            return await _drive_async(program, connection)

    def close(self) -> None:
        """Nothing to close: the engine is disposed by its owner."""


class AsyncpgRunner:
    """Runs programs on PostgreSQL straight on the asyncpg connections of the engine's pool.

    No SQL compilation, result wrapping or implicit transaction per statement: a read is one round trip
    (asyncpg's own prepared statement cache), a write `BEGIN`, its statements and `COMMIT`. The
    connections are the engine's (one pool, one connection budget, disposed with the engine).
    """

    data_modifying_ctes = True

    def __init__(self, engine: AsyncEngine) -> None:
        self._pool = engine.sync_engine.pool

    async def write(self, program: Program[T]) -> T:
        """Run `program` in one transaction, shielded from the caller's cancellation."""
        return await asyncio.shield(self._run(program, transaction=True))

    async def read(self, program: Program[T]) -> T:
        """Run `program` as autocommit statements on a pooled connection."""
        return await self._run(program, transaction=False)

    async def _run(self, program: Program[T], *, transaction: bool) -> T:
        pooled = await greenlet_spawn(self._pool.connect)
        connection: Any = pooled.driver_connection
        try:
            if not transaction:
                return await _drive_asyncpg(program, connection)
            first = next(program)  # a program runs up to its first statement without I/O
            if first.alone:
                return await _drive_asyncpg(program, connection, first)
            async with connection.transaction():
                return await _drive_asyncpg(program, connection, first)
        except BaseException:
            if connection.is_closed():  # the server went away: never pool it again
                await greenlet_spawn(pooled.invalidate)
            raise
        finally:
            await greenlet_spawn(pooled.close)

    def close(self) -> None:
        """Nothing to close: the engine is disposed by its owner."""


async def _drive_asyncpg(program: Program[T], connection: Any, first: Query | None = None) -> T:
    try:
        query = next(program) if first is None else first
        while True:
            sql, values_of = _numbered(query.sql)
            values = [_engine_value(value) for value in values_of(query.params)]
            rows: Rows = [tuple(record) for record in await connection.fetch(sql, *values)]
            alone = query.alone
            query = program.send(rows)
            if alone:
                raise RuntimeError("a statement run alone must be its program's only one")
    except StopIteration as stop:
        value: T = stop.value
        return value


@cache
def _numbered(sql: str) -> tuple[str, Callable[[Mapping[str, Any]], tuple[Any, ...]]]:
    """`sql` with `$n` for each distinct `:name` (PostgreSQL's numbered parameters), and what picks a
    program's parameters in that order."""
    names = list(dict.fromkeys(_NAMED_PARAMETER.findall(sql)))
    numbered = _NAMED_PARAMETER.sub(lambda match: f"${names.index(match.group(1)) + 1}", sql)
    return numbered, lambda params: tuple(params[name] for name in names)


_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]


def _resolve(outcomes: list[_Outcome]) -> None:
    for future, value, error in outcomes:
        if future.done():  # its caller was cancelled; the program ran (and committed) all the same
            continue
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)


def _drive(program: Program[T], fetch: Callable[[Query], Rows]) -> T:
    try:
        query = next(program)
        while True:
            query = program.send(fetch(query))
    except StopIteration as stop:
        result: T = stop.value
        return result


async def _drive_async(program: Program[T], connection: Any) -> T:
    try:
        query = next(program)
        while True:
            params = {name: _engine_value(value) for name, value in query.params.items()}
            result = await connection.execute(_text(query.sql), params)
            rows: Rows = [tuple(row) for row in result.fetchall()] if result.returns_rows else []
            query = program.send(rows)
    except StopIteration as stop:
        value: T = stop.value
        return value


@cache
def _text(sql: str) -> TextClause:
    return text(sql)


_NAMED_PARAMETER = re.compile(r"(?<![:\w]):(\w+)")


@cache
def _positional(sql: str) -> tuple[str, Callable[[Mapping[str, Any]], tuple[Any, ...]]]:
    """`sql` with `?` for each `:name`, and what picks a program's parameters in that order."""
    names = _NAMED_PARAMETER.findall(sql)
    if not names:
        return sql, lambda _params: ()
    if len(names) == 1:
        (name,) = names
        return _NAMED_PARAMETER.sub("?", sql), lambda params: (params[name],)
    return _NAMED_PARAMETER.sub("?", sql), itemgetter(*names)


def as_utc(value: Any) -> datetime | None:
    """A timestamp column read by a program (text on SQLite, naive UTC on PostgreSQL) as aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"not a timestamp: {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sqlite_value(value: Any) -> Any:
    # The format SQLAlchemy's SQLite DateTime writes, so ORM reads of these rows agree.
    if isinstance(value, datetime):
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None).isoformat(" ", "microseconds")
    return value


def _engine_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def build_runner(engine: AsyncEngine, write_lock: asyncio.Lock | None) -> ProgramRunner:
    """The cheapest runner for this engine's database."""
    if engine.dialect.name == "sqlite" and write_lock is not None:
        database = engine.url.database
        if database and database != ":memory:":
            return SqliteRunner(database, write_lock)
    if engine.dialect.driver == "asyncpg":
        return AsyncpgRunner(engine)
    return EngineRunner(engine)
