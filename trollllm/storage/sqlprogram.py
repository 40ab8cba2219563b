"""Hot-path SQL, written once and run on either database at the lowest cost each allows.

A *program* is a generator that yields `Query`s and receives each query's rows; its return value is the
result. The same program runs:

- on SQLite, on one plain `sqlite3` connection on the event loop thread — no thread hop, no SQL
  compilation — inside `BEGIN IMMEDIATE … COMMIT` while holding this process's SQLite write lock (so it
  never waits in SQLite's busy handler behind one of our own transactions);
- on PostgreSQL, straight on the asyncpg connections of the engine's pool, in one short transaction
  (no SQL compilation or result wrapping per statement; any other database through SQLAlchemy's async
  connection): `trollllm.storage.pgrunner`. `trollllm.storage.runners.build_runner` picks the runner.

SQL is plain, portable text with `:name` parameters. Timestamps are passed as aware UTC datetimes.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import Callable, Generator, Mapping
from datetime import UTC, datetime
from functools import cache, lru_cache
from operator import itemgetter
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

from trollllm.storage.walcheckpoint import CHECKPOINT_INTERVAL_S, WAL_SIZE_LIMIT_BYTES, WalCheckpointer

T = TypeVar("T")
_BUSY_WAIT_S = 30.0
logger = logging.getLogger("trollllm.db")
Rows = list[tuple[Any, ...]]


class Query(NamedTuple):
    """One SQL statement with named parameters (a tuple: a program builds several per request).

    `alone`: the program's only statement, atomic on its own; a runner may then run it without a
    transaction around it (on PostgreSQL that saves the `BEGIN` and `COMMIT` round trips).

    `answer`: what the program receives — `"rows"`, the statement's rows (a `SELECT`'s or a `RETURNING`
    clause's); `"count"`, `[(n,)]` with the number of rows it changed; `"new_id"`, `[(id,)]` with the `id`
    of the row an `INSERT` (written without `RETURNING`) added. SQLite runs a `RETURNING` clause through a
    temporary table: a hold and its settlement cost an eighth fewer instructions asking for these instead.
    """

    sql: str
    params: Mapping[str, Any]
    alone: bool = False
    answer: Literal["rows", "count", "new_id"] = "rows"


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
        self._last_timestamp: tuple[datetime | None, str] = (None, "")

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
                self._cursor.execute("BEGIN IMMEDIATE")  # (the cursor: `Connection.execute` makes one)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    self._fail(self._take(), exc)
                    return
            else:
                batch = self._take()
                outcomes = self._run(batch)
                try:
                    self._cursor.execute("COMMIT")
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
        execute = self._cursor.execute  # the reused cursor (`Connection.execute` makes one per call)
        for program, future in batch:
            execute("SAVEPOINT program")
            try:
                outcomes.append((future, _drive(program, self._fetch), None))
            except Exception as exc:
                execute("ROLLBACK TO program")
                outcomes.append((future, None, exc))
            execute("RELEASE program")
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
            # Converted only in the statements that carry one: a timestamp as text, a bool as 0 or 1
            # (`sqlite3` binds a bool through its adaptation protocol, a failed attribute lookup each).
            if value.__class__ is datetime or value.__class__ is bool:
                timestamp = self._timestamp
                values = tuple(
                    [
                        timestamp(v)
                        if v.__class__ is datetime
                        else (1 if v else 0)
                        if v.__class__ is bool
                        else v
                        for v in values
                    ]
                )
                break
        cursor = self._cursor.execute(sql, values)
        if query.answer == "rows":
            return cursor.fetchall()
        return [(cursor.rowcount if query.answer == "count" else cursor.lastrowid,)]

    def _timestamp(self, value: datetime) -> str:
        # The last one converted is kept: a settlement passes the same `now` to its ledger entry and its log.
        last, text = self._last_timestamp
        if value is not last:
            text = _sqlite_timestamp(value)
            self._last_timestamp = (value, text)
        return text


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


NAMED_PARAMETER = re.compile(r"(?<![:\w]):(\w+)")
"""A `:name` parameter of a program's SQL (not a `::type` cast)."""


@cache
def _positional(sql: str) -> tuple[str, Callable[[Mapping[str, Any]], tuple[Any, ...]]]:
    """`sql` with `?` for each `:name`, and what picks a program's parameters in that order."""
    names = NAMED_PARAMETER.findall(sql)
    if not names:
        return sql, lambda _params: ()
    if len(names) == 1:
        (name,) = names
        return NAMED_PARAMETER.sub("?", sql), lambda params: (params[name],)
    return NAMED_PARAMETER.sub("?", sql), itemgetter(*names)


def as_utc(value: Any) -> datetime | None:
    """A timestamp column read by a program (text on SQLite, naive UTC on PostgreSQL) as aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        return _utc_from_text(value)
    if not isinstance(value, datetime):
        raise TypeError(f"not a timestamp: {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@lru_cache(maxsize=4096)
def _utc_from_text(text: str) -> datetime:
    # Cached: a key lookup reads its owner's plan expiry and monthly reset date on every request, and
    # they rarely change.
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sqlite_timestamp(value: datetime) -> str:
    """A timestamp parameter as SQLite text, in the format SQLAlchemy's SQLite DateTime writes (so ORM reads
    of these rows agree): naive UTC with microseconds."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # What `isoformat(" ", "microseconds")` writes, without its "+00:00", at half its cost.
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031 (an f-string costs as much as isoformat)
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )
