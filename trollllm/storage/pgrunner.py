"""Programs (`trollllm.storage.sqlprogram`) on PostgreSQL, straight on the asyncpg connections of the engine's
pool, or on any other database through SQLAlchemy's async connections."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from trollllm.storage.sqlprogram import NAMED_PARAMETER, Program, Query, Rows

T = TypeVar("T")


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

    A connection that ran a program cleanly is kept for the next one rather than checked in (up to the
    pool's size): a checkout through SQLAlchemy's pool (greenlet, events, reset on return) cost more CPU
    than the query it served. A program that fails gives its connection back to the pool, as before.
    """

    data_modifying_ctes = True

    def __init__(self, engine: AsyncEngine) -> None:
        self._pool = engine.sync_engine.pool
        size = getattr(self._pool, "size", None)
        self._keep = size() if callable(size) else 0  # a pool without a size (NullPool) keeps nothing
        self._idle: list[tuple[Any, Any]] = []  # (the pool's checked-out connection, its asyncpg one)

    async def write(self, program: Program[T]) -> T:
        """Run `program` in one transaction, shielded from the caller's cancellation."""
        return await asyncio.shield(self._run(program, transaction=True))

    async def read(self, program: Program[T]) -> T:
        """Run `program` as autocommit statements on a pooled connection."""
        return await self._run(program, transaction=False)

    async def _run(self, program: Program[T], *, transaction: bool) -> T:
        pooled, connection = await self._checkout()
        try:
            if not transaction:
                value = await _drive_asyncpg(program, connection)
            else:
                first = next(program)  # a program runs up to its first statement without I/O
                if first.alone:
                    value = await _drive_asyncpg(program, connection, first)
                else:
                    async with connection.transaction():
                        value = await _drive_asyncpg(program, connection, first)
        except BaseException:
            try:
                if connection.is_closed():  # the server went away: never pool it again
                    await greenlet_spawn(pooled.invalidate)
            finally:
                await greenlet_spawn(pooled.close)
            raise
        if len(self._idle) < self._keep and not connection.is_closed() and not connection.is_in_transaction():
            self._idle.append((pooled, connection))
        else:
            await greenlet_spawn(pooled.close)
        return value

    async def _checkout(self) -> tuple[Any, Any]:
        while self._idle:
            pooled, connection = self._idle.pop()
            if not connection.is_closed():
                return pooled, connection
            await greenlet_spawn(pooled.invalidate)  # the server ended it while it was kept
        pooled = await greenlet_spawn(self._pool.connect)
        return pooled, pooled.driver_connection

    def close(self) -> None:
        """Close the kept connections (the engine's disposal closes only those checked in)."""
        idle, self._idle = self._idle, []
        for pooled, connection in idle:
            pooled.detach()
            connection.terminate()


async def _drive_asyncpg(program: Program[T], connection: Any, first: Query | None = None) -> T:
    try:
        query = next(program) if first is None else first
        while True:
            sql, values_of = _numbered(_returning_id(query.sql) if query.answer == "new_id" else query.sql)
            values = [_engine_value(value) for value in values_of(query.params)]
            rows: Rows
            if query.answer == "count":  # asyncpg's status, e.g. "UPDATE 1"
                rows = [(int((await connection.execute(sql, *values)).rpartition(" ")[2]),)]
            else:
                rows = [tuple(record) for record in await connection.fetch(sql, *values)]
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
    names = list(dict.fromkeys(NAMED_PARAMETER.findall(sql)))
    numbered = NAMED_PARAMETER.sub(lambda match: f"${names.index(match.group(1)) + 1}", sql)
    return numbered, lambda params: tuple(params[name] for name in names)


async def _drive_async(program: Program[T], connection: Any) -> T:
    try:
        query = next(program)
        while True:
            params = {name: _engine_value(value) for name, value in query.params.items()}
            sql = _returning_id(query.sql) if query.answer == "new_id" else query.sql
            result = await connection.execute(_text(sql), params)
            rows: Rows
            if query.answer == "count":
                rows = [(result.rowcount,)]
            else:
                rows = [tuple(row) for row in result.fetchall()] if result.returns_rows else []
            query = program.send(rows)
    except StopIteration as stop:
        value: T = stop.value
        return value


@cache
def _returning_id(sql: str) -> str:
    """An `INSERT` whose program asks for the new row's id (`Query.answer == "new_id"`), asking for it."""
    return f"{sql} RETURNING id"


@cache
def _text(sql: str) -> TextClause:
    return text(sql)


def _engine_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    return value
