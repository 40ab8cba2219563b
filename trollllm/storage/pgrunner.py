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
