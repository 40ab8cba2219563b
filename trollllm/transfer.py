"""`trollllm export FILE` / `trollllm import FILE`: the whole database in one file, e.g. from embedded
SQLite to PostgreSQL.

The file is JSON lines: a header (format, schema revision), then for each table in foreign-key order a line
naming it and its columns followed by one JSON array per row, then a footer with each table's row count and
the sum of each of its integer columns (money is integer nano-dollars: the sums prove it arrived exact).
Timestamps are ISO 8601 UTC, binary columns (encrypted keys) base64.

Import migrates the target to the latest schema, refuses a database that already has users, replaces the
rows the migrations seeded (plans, providers) by the exported ones, inserts everything in one transaction,
moves PostgreSQL's id sequences past the imported ids, and checks the counts and sums against the footer.
Both ends must be at the same schema revision: run `trollllm migrate` on the source first.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from sqlalchemy import Integer, LargeBinary, Table, delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from trollllm.db import UtcDateTime
from trollllm.errors import CommandError
from trollllm.migrate import head_revision, upgrade_to_head
from trollllm.tables import Base

FORMAT = "trollllm-export"
VERSION = 1
INSERT_BATCH = 1000


class TransferError(CommandError):
    """The export file or the target database cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class Summary:
    """Per table: rows, and the sum of each integer column (money included)."""

    tables: dict[str, dict[str, int]]

    @property
    def rows(self) -> int:
        """Rows over every table."""
        return sum(table["rows"] for table in self.tables.values())


def _tables() -> list[Table]:
    return list(Base.metadata.sorted_tables)


def _summed_columns(table: Table) -> list[str]:
    return [column.name for column in table.columns if isinstance(column.type, Integer)]


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _decoders(table: Table) -> list[Any]:
    decoders: list[Any] = []
    for column in table.columns:
        if isinstance(column.type, UtcDateTime):
            decoders.append(lambda v: None if v is None else datetime.fromisoformat(v))
        elif isinstance(column.type, LargeBinary):
            decoders.append(lambda v: None if v is None else base64.b64decode(v))
        else:
            decoders.append(None)
    return decoders


async def _revision(connection: AsyncConnection) -> str | None:
    revision: str | None = await connection.scalar(text("SELECT version_num FROM alembic_version"))
    return revision


async def summarize(connection: AsyncConnection) -> Summary:
    """Row counts and integer column sums of every table, as the database has them."""
    tables: dict[str, dict[str, int]] = {}
    for table in _tables():
        columns = _summed_columns(table)
        sums = (
            await connection.execute(
                select(func.count(), *(func.coalesce(func.sum(table.c[name]), 0) for name in columns))
            )
        ).one()
        totals = {str(name): int(total) for name, total in zip(columns, sums[1:], strict=True)}
        tables[str(table.name)] = {"rows": int(sums[0]), **totals}
    return Summary(tables)


async def export_database(engine: AsyncEngine, out: BinaryIO) -> Summary:
    """Write every table of the database behind `engine` to `out`; the summary written in the footer.

    On PostgreSQL the tables are read in one REPEATABLE READ transaction (one snapshot while the gateway
    runs); on SQLite stop the gateway, or export an online backup of it (docs/deploy.md).
    """
    options = {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}
    async with engine.connect() as connection:
        await connection.execution_options(**options)
        async with connection.begin():
            revision = await _revision(connection)
            if revision != head_revision():
                raise TransferError(
                    f"the database is at schema revision {revision}, this trollllm at {head_revision()}: "
                    "run `trollllm migrate` on it first"
                )
            out.write(orjson.dumps({"format": FORMAT, "version": VERSION, "revision": revision}) + b"\n")
            for table in _tables():
                names = [str(column.name) for column in table.columns]
                out.write(orjson.dumps({"table": str(table.name), "columns": names}) + b"\n")
                result = await connection.stream(select(table).order_by(*table.primary_key.columns))
                async for row in result:
                    out.write(orjson.dumps([_encode(value) for value in row]) + b"\n")
            summary = await summarize(connection)
    out.write(orjson.dumps({"end": True, "tables": summary.tables}) + b"\n")
    return summary


def _read(path: Path) -> Iterator[Any]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise TransferError(f"{path}: line {number} is not JSON") from exc


async def import_database(engine: AsyncEngine, path: Path) -> Summary:
    """Load the export at `path` into the (fresh) database behind `engine`; its summary, checked."""
    lines = _read(path)
    header = next(lines, None)
    if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("version") != VERSION:
        raise TransferError(f"{path} is not a {FORMAT} file (version {VERSION})")
    if header.get("revision") != head_revision():
        raise TransferError(
            f"{path} was exported at schema revision {header.get('revision')}, this trollllm is at "
            f"{head_revision()}: export and import with the same version"
        )
    await upgrade_to_head(engine)
    tables = {table.name: table for table in _tables()}
    async with engine.begin() as connection:
        users = await connection.scalar(select(func.count()).select_from(tables["users"]))
        if users:
            raise TransferError(f"the target database already has {users} users: import into a fresh one")
        for table in reversed(_tables()):  # only what the migrations seeded (plans, providers) is there
            await connection.execute(delete(table))
        footer = await _insert_all(connection, tables, lines, path)
        if engine.dialect.name == "postgresql":
            await _move_sequences(connection, list(tables.values()))
        summary = await summarize(connection)
        if summary.tables != footer:
            raise TransferError(
                f"{path}: the imported rows differ from the export's totals; nothing imported"
            )
    return summary


async def _insert_all(
    connection: AsyncConnection, tables: dict[str, Table], lines: Iterator[Any], path: Path
) -> dict[str, dict[str, int]]:
    table: Table | None = None
    columns: list[str] = []
    decoders: list[Any] = []
    batch: list[dict[str, Any]] = []

    async def flush() -> None:
        if batch and table is not None:
            await connection.execute(insert(table), batch)
            batch.clear()

    for line in lines:
        if isinstance(line, list):
            if table is None or len(line) != len(columns):
                raise TransferError(f"{path}: a row outside a table, or of the wrong width")
            batch.append(
                {
                    name: decode(value) if decode else value
                    for name, value, decode in zip(columns, line, decoders, strict=True)
                }
            )
            if len(batch) >= INSERT_BATCH:
                await flush()
        elif isinstance(line, dict) and "table" in line:
            await flush()
            if line["table"] not in tables:
                raise TransferError(f"{path}: unknown table {line['table']!r}")
            table = tables[line["table"]]
            columns = list(line["columns"])
            if set(columns) != {column.name for column in table.columns}:
                raise TransferError(f"{path}: the columns of {table.name} differ from this schema")
            by_name = dict(zip([column.name for column in table.columns], _decoders(table), strict=True))
            decoders = [by_name[name] for name in columns]
        elif isinstance(line, dict) and line.get("end"):
            await flush()
            footer: dict[str, dict[str, int]] = line["tables"]
            return footer
    raise TransferError(f"{path} ends before its footer: the export was cut short")


async def _move_sequences(connection: AsyncConnection, tables: list[Table]) -> None:
    """Set each serial id's sequence to the largest imported id, so new rows never collide."""
    for table in tables:
        for column in table.primary_key.columns:
            if isinstance(column.type, Integer) and column.autoincrement in (True, "auto"):
                sequence = await connection.scalar(
                    text("SELECT pg_get_serial_sequence(:table, :column)"),
                    {"table": table.name, "column": column.name},
                )
                if sequence is None:
                    continue
                largest = await connection.scalar(select(func.max(column)))
                await connection.execute(
                    text("SELECT setval(:sequence, :value, :called)"),
                    {"sequence": sequence, "value": largest or 1, "called": largest is not None},
                )
