"""Hourly rollups of the request logs: exact, idempotent, and no write on the proxy's path.

The logs are summed by id, not by time: `usage_rollup_state.last_log_id` (W) says every log row with
`id <= W` is in the rollups exactly once, and a pass adds the rows with `id` in (W, W'] and moves W to
W' in one transaction (a pass that fails adds nothing; two instances cannot both add a range: the state
row is compare-and-set). Reading the rows after W is a primary-key range scan, so the logs need no index
on `created_at` and the hot path writes nothing more.

W' must be a prefix of the logs that no later insert can join:
- SQLite has one writer: W' = max(id) read inside the pass's write transaction. A new row gets
  max(id) + 1, so the purge keeps max(id) ≥ W (lowering W with it when it deletes the newest rows).
- PostgreSQL takes ids from a sequence, but a row with a smaller id may commit after a larger one. W' is
  read under `LOCK TABLE request_logs IN SHARE MODE`, held only for that read: it waits for the
  transactions inserting at that moment, so every id ≤ W' is committed.

One change can hit a row already summed: a late settlement (an outbox replay) deletes the `unsettled`
row the hold sweeper wrote and writes its own. The summed `unsettled` rows are remembered
(`usage_rollup_unsettled`); once such a row is gone its contribution is taken back. Readers apply the
same correction live (`log_changes`), so the metrics equal the logs at every moment.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    SQLColumnExpression,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.sql import Executable, Subquery

from trollllm.db import write_connection
from trollllm.usage.rollup_tables import (
    HourlyLatency,
    HourlyModelUsage,
    HourlyUserUsage,
    RolledUpUnsettled,
    RollupState,
    SixHourlyUserUsage,
    UserUsageTotal,
)
from trollllm.usage.tables import RequestLog

logger = logging.getLogger("trollllm.usage.rollup")

ROLLUP_BATCH_SIZE = 20_000
"""Log ids per rollup transaction (about 0.1 s on SQLite, whose writers wait meanwhile): a first pass over
millions of old rows goes in short steps, with the proxy's settlements in between."""

UNSETTLED = "unsettled"  # the error type of a row written by the hold sweeper (trollllm.billing.records)

# Latency histogram: a request of `latency_ms` counts in the first bucket with latency_ms < bound. Ten
# bounds a decade, neighbours at most 4/3 apart: a percentile read as its bucket's upper bound is at most
# a third above the true value. Changing these bounds changes the meaning of stored rows: never edit them.
_DECADE_STEPS = (10, 12, 15, 20, 25, 30, 40, 50, 60, 80)
LATENCY_BOUNDS_MS: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 8,
    *(step * decade for decade in (1, 10, 100, 1000, 10_000) for step in _DECADE_STEPS),
    1_000_000, 1_200_000, 1_500_000, 2_000_000,
)  # fmt: skip
LATENCY_OVERFLOW_MS = 2**62
"""The `under_ms` of the last bucket: 2,000,000 ms (33 minutes) or more."""

SUM_COLUMNS = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_write_tokens",
    "cache_hit_tokens",
    "cost_nanos",
)
_SECONDS_PER_HOUR = 3600


def epoch_seconds(column: SQLColumnExpression[datetime], dialect: str) -> ColumnElement[int]:
    """Whole seconds since 1970-01-01 UTC of a (naive UTC) timestamp column, on either database."""
    if dialect == "sqlite":
        # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff'; without the fraction, which SQLite rounds to milliseconds
        # (23:59:59.9999 would become the next day).
        return cast(func.strftime("%s", func.substr(column, 1, 19)), BigInteger)
    return cast(func.floor(func.extract("epoch", column)), BigInteger)


def latency_bucket(latency_ms: ColumnElement[int]) -> ColumnElement[int]:
    """The `under_ms` of the histogram bucket of a latency."""
    return case(
        *((latency_ms < bound, literal(bound, BigInteger)) for bound in LATENCY_BOUNDS_MS),
        else_=literal(LATENCY_OVERFLOW_MS, BigInteger),
    )


def _rolled_up_through() -> ColumnElement[int]:
    """W, read in the statement that uses it (one snapshot)."""
    return select(RollupState.last_log_id).where(RollupState.id == 1).scalar_subquery()


def _unsettled_row_still_there() -> ColumnElement[bool]:
    """For a `usage_rollup_unsettled` row: its log row is still there, still `unsettled`."""
    log = RequestLog
    return (
        select(log.id)
        .where(
            log.id == RolledUpUnsettled.log_id,
            log.request_id == RolledUpUnsettled.request_id,
            log.error_type == UNSETTLED,
        )
        .correlate(RolledUpUnsettled)
        .exists()
    )


def _any_unsettled_gone() -> ColumnElement[bool]:
    return exists(select(RolledUpUnsettled.log_id).where(not_(_unsettled_row_still_there())))


def log_changes(
    dialect: str,
    *,
    after: int | ColumnElement[int] | None = None,
    through: int | None = None,
    since: datetime | None = None,
    corrections: bool = True,
) -> Select[*tuple[Any, ...]]:
    """Signed log rows not yet in the rollups, one row each: `log_id, at, model, user_id, latency_ms` and
    the sums of `SUM_COLUMNS` (1 request, its error, tokens and cost; negative for a correction).

    The logs with `after < id <= through` (W and the newest row when not given); minus each summed
    `unsettled` row that is gone; plus, on SQLite, a row that replaced one and took its id ≤ W (never
    summed). `since` keeps the rows at or after that time; without `corrections`, the logs alone.
    """
    log, gone = RequestLog, RolledUpUnsettled
    watermark = _rolled_up_through() if after is None else after
    failed = case((log.is_success, 0), else_=1)
    log_sums: tuple[SQLColumnExpression[int], ...] = (
        literal(1, BigInteger),
        failed,
        log.input_tokens,
        log.output_tokens,
        log.cache_write_tokens,
        log.cache_hit_tokens,
        log.credits_cost_nanos,
    )
    at = epoch_seconds(log.created_at, dialect)
    new_rows = select(log.id, at, log.model, log.user_id, log.latency_ms, *log_sums).where(log.id > watermark)
    if through is not None:
        new_rows = new_rows.where(log.id <= through)
    taken_back = select(
        gone.log_id,
        gone.at,
        gone.model,
        gone.user_id,
        gone.latency_ms,
        *(-getattr(gone, name) for name in SUM_COLUMNS),
    ).where(not_(_unsettled_row_still_there()))
    replaced = (
        select(log.id, at, log.model, log.user_id, log.latency_ms, *log_sums)
        .join(gone, gone.request_id == log.request_id)
        .where(
            log.id <= watermark,
            or_(log.id != gone.log_id, func.coalesce(log.error_type, "") != UNSETTLED),
        )
    )
    if since is not None:
        new_rows = new_rows.where(log.created_at >= since)
        since_s = int(since.timestamp())
        taken_back = taken_back.where(gone.at >= since_s)
        replaced = replaced.where(log.created_at >= since)
    names = ("log_id", "at", "model", "user_id", "latency_ms", *SUM_COLUMNS)
    parts = (union_all(new_rows, taken_back, replaced) if corrections else new_rows).subquery("changes")
    return select(*(parts.c[index].label(name) for index, name in enumerate(names)))


async def roll_up_request_logs(
    sessions: async_sessionmaker[AsyncSession],
    *,
    batch_size: int = ROLLUP_BATCH_SIZE,
    stop: asyncio.Event | None = None,
) -> int:
    """Add every committed log row not yet in the rollups, `batch_size` ids per transaction; returns how
    many ids the watermark moved. Safe to run concurrently with itself, the proxy and the purge."""
    engine: AsyncEngine = sessions.kw["bind"]
    dialect = engine.dialect.name
    ceiling = await _committed_max_id(engine) if dialect == "postgresql" else None
    if dialect == "postgresql" and ceiling is None:
        return 0
    moved = 0
    while stop is None or not stop.is_set():
        try:
            if dialect == "sqlite":
                async with write_connection(sessions) as connection:
                    step, more = await _roll_up_batch(connection, dialect, None, batch_size)
            else:
                async with engine.connect() as connection:
                    snapshot = await connection.execution_options(isolation_level="REPEATABLE READ")
                    async with snapshot.begin():
                        step, more = await _roll_up_batch(snapshot, dialect, ceiling, batch_size)
        except _RolledUpElsewhere:
            logger.info("request logs rolled up by another instance meanwhile")
            break
        except DBAPIError as exc:
            if _sqlstate(exc) != "40001":
                raise
            logger.info("request logs rolled up by another instance meanwhile")
            break
        moved += step
        if not more:
            break
        await asyncio.sleep(0)  # queued writers (settlements) go before the next batch
    return moved


class _RolledUpElsewhere(Exception):
    """The watermark moved under this pass: another instance rolled the same rows up."""


async def _committed_max_id(engine: AsyncEngine) -> int | None:
    """PostgreSQL: the highest log id such that every smaller id is committed (None: not now)."""
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
            await connection.exec_driver_sql("LOCK TABLE request_logs IN SHARE MODE")
            return int(await connection.scalar(select(func.coalesce(func.max(RequestLog.id), 0))) or 0)
    except DBAPIError as exc:
        if _sqlstate(exc) != "55P03":  # lock_not_available
            raise
        logger.warning("request log rollup skipped: the log table stayed busy for 2 s")
        return None


def _sqlstate(exc: DBAPIError) -> str | None:
    """The SQLSTATE of a PostgreSQL error (asyncpg names it `sqlstate`), else None."""
    origin = exc.orig
    code = getattr(origin, "sqlstate", None) or getattr(origin, "pgcode", None)
    cause = getattr(origin, "__cause__", None)
    return code or getattr(cause, "sqlstate", None)


async def _roll_up_batch(
    connection: AsyncConnection, dialect: str, ceiling: int | None, batch_size: int
) -> tuple[int, bool]:
    """One transaction: add the logs in (W, min(ceiling, W + batch_size)] and the corrections; returns how
    far W moved and whether rows remain past it."""
    state = RollupState
    if dialect == "sqlite":
        # A write first: the transaction takes the one write lock before reading W and max(id).
        await connection.execute(update(state).where(state.id == 1).values(last_log_id=state.last_log_id))
        ceiling = int(await connection.scalar(select(func.coalesce(func.max(RequestLog.id), 0))) or 0)
    assert ceiling is not None
    watermark = int(await connection.scalar(select(state.last_log_id).where(state.id == 1)) or 0)
    through = max(min(ceiling, watermark + batch_size), watermark)
    gone = await connection.scalar(select(_any_unsettled_gone()))
    if through == watermark and not gone:
        return 0, False
    changes = log_changes(dialect, after=watermark, through=through).subquery()
    for statement in _upserts(changes, dialect):
        await connection.execute(statement)
    if gone:
        await connection.execute(delete(RolledUpUnsettled).where(not_(_unsettled_row_still_there())))
    await connection.execute(_remember_unsettled(dialect, watermark, through))
    moved = await connection.execute(
        update(state).where(state.id == 1, state.last_log_id == watermark).values(last_log_id=through)
    )
    if moved.rowcount != 1:
        raise _RolledUpElsewhere()
    return through - watermark, through < ceiling


def _upserts(changes: Subquery, dialect: str) -> list[Executable]:
    """INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE (add) for each rollup table."""
    hour = (changes.c.at // _SECONDS_PER_HOUR).label("epoch_hour")
    block = (changes.c.at // (6 * _SECONDS_PER_HOUR) * 6).label("epoch_hour")
    sums = [func.sum(changes.c[name]).label(name) for name in SUM_COLUMNS]
    first_log_id = func.min(changes.c.log_id).label("first_log_id")
    sources = (
        (HourlyModelUsage, [hour, changes.c.model.label("model"), first_log_id, *sums], 2),
        (HourlyUserUsage, [hour, changes.c.user_id.label("user_id"), *sums], 2),
        (SixHourlyUserUsage, [block, changes.c.user_id.label("user_id"), *sums], 2),
        (UserUsageTotal, [changes.c.user_id.label("user_id"), *sums], 1),
        (
            HourlyLatency,
            [
                hour,
                latency_bucket(changes.c.latency_ms).label("under_ms"),
                func.sum(changes.c.requests).label("requests"),
            ],
            2,
        ),
    )
    statements: list[Executable] = []
    make_insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    smaller = func.min if dialect == "sqlite" else func.least
    for table, columns, keys in sources:
        rows = select(*columns).where(literal(True)).group_by(*columns[:keys])
        statement = make_insert(table).from_select([column.name for column in columns], rows)
        target = table.__table__.c
        added = {
            column.name: target[column.name] + statement.excluded[column.name]
            for column in columns[keys:]
            if column.name != "first_log_id"
        }
        if "first_log_id" in target:
            added["first_log_id"] = smaller(target.first_log_id, statement.excluded.first_log_id)
        statements.append(
            statement.on_conflict_do_update(index_elements=[c.name for c in columns[:keys]], set_=added)
        )
    return statements


def _remember_unsettled(dialect: str, after: int, through: int) -> Executable:
    """Remember the `unsettled` rows of (after, through]: a late settlement may delete them."""
    log = RequestLog
    rows = select(
        log.id,
        log.request_id,
        log.model,
        log.user_id,
        epoch_seconds(log.created_at, dialect),
        log.latency_ms,
        literal(1, BigInteger),
        case((log.is_success, 0), else_=1),
        log.input_tokens,
        log.output_tokens,
        log.cache_write_tokens,
        log.cache_hit_tokens,
        log.credits_cost_nanos,
    ).where(log.id > after, log.id <= through, log.error_type == UNSETTLED)
    names = ["log_id", "request_id", "model", "user_id", "at", "latency_ms", *SUM_COLUMNS]
    return insert(RolledUpUnsettled).from_select(names, rows)


async def forget_unsettled_before(sessions: async_sessionmaker[AsyncSession], cutoff: datetime) -> None:
    """Before the purge deletes them: `unsettled` rows older than `cutoff` stay in the rollups for good."""
    cutoff_s = int(cutoff.timestamp())
    async with sessions() as session:
        old = await session.scalar(select(exists().where(RolledUpUnsettled.at < cutoff_s)))
    if old:
        async with write_connection(sessions) as connection:
            await connection.execute(delete(RolledUpUnsettled).where(RolledUpUnsettled.at < cutoff_s))


def keep_watermark_below_newest_log(dialect: str) -> Executable | None:
    """SQLite: after deleting logs, W = min(W, max(id)), so the next insert (max(id) + 1) is past W.

    None on PostgreSQL, whose sequence never gives an id twice.
    """
    if dialect != "sqlite":
        return None
    newest = select(func.coalesce(func.max(RequestLog.id), 0)).scalar_subquery()
    return (
        update(RollupState)
        .where(RollupState.id == 1, RollupState.last_log_id > newest)
        .values(last_log_id=newest)
    )


def rolled_up_through() -> ColumnElement[int]:
    """W as a scalar subquery (the purge deletes only `id <= W`)."""
    return _rolled_up_through()
