"""Database core: the declarative base, column types, engine and session factory.

Feature packages define their tables in their own `tables.py` on this one `Base`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import BigInteger, DateTime, MetaData, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """The one declarative base; relationships load eagerly or not at all (no lazy I/O in async)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and always returned timezone-aware.

    SQLite has no time zones; storing UTC everywhere keeps ordering and range queries identical on both
    databases.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use timezone-aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


# Money columns hold integer nano-dollars (see trollllm.money).
Nanos = BigInteger


def create_engine(database_url: str) -> AsyncEngine:
    """Build the async engine; SQLite gets WAL, foreign keys and a busy timeout on every connection."""
    if database_url.startswith("sqlite"):
        engine = create_async_engine(
            database_url,
            connect_args={"timeout": 30},
        )
        _configure_sqlite(engine)
        return engine
    engine = create_async_engine(database_url, pool_size=10, max_overflow=20)
    _drop_closed_on_checkout(engine)
    return engine


# SQLite's errors that say the file cannot be used now, not that a statement is wrong.
_SQLITE_UNAVAILABLE = ("locked", "unable to open", "disk i/o", "disk is full", "readonly")


@cache
def _postgres_unavailable() -> tuple[type[Exception], ...]:
    """asyncpg's errors that say the server cannot be used now."""
    import asyncpg.exceptions  # here, not at import: the embedded shape never needs asyncpg (~3 MB)

    return (
        asyncpg.exceptions.PostgresConnectionError,  # class 08: connection failures
        asyncpg.exceptions.OperatorInterventionError,  # class 57: shutting down, cannot connect now
        asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections, disk full
        asyncpg.exceptions.InterfaceError,  # the connection is closed
    )


def database_unreachable(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) says the database cannot be used now: down, cut, refusing
    connections, shutting down, out of connections or locked past the wait, rather than a bad statement."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionError | TimeoutError | DisconnectionError | PoolTimeout):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, _postgres_unavailable()):
            return True
        if isinstance(current, sqlite3.OperationalError) and any(
            part in str(current).lower() for part in _SQLITE_UNAVAILABLE
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def create_test_engine(database_url: str) -> AsyncEngine:
    """An engine without pooling, for short-lived tools (migrations, tests)."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    if database_url.startswith("sqlite"):
        _configure_sqlite(engine)
    return engine


def _drop_closed_on_checkout(engine: AsyncEngine) -> None:
    """Replace a pooled connection the server has closed, at checkout, without a round trip.

    `pool_pre_ping` on asyncpg costs three round trips per checkout (BEGIN, `;`, ROLLBACK), three checkouts
    per proxied request. asyncpg marks its connection closed as soon as the server ends it (a restart, an
    idle timeout), so checking that flag finds the same dead connections for free; an error on a
    connection that dies mid-use still invalidates it (SQLAlchemy's disconnect handling).
    """

    @event.listens_for(engine.sync_engine, "checkout")
    def _check(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if dbapi_connection.driver_connection.is_closed():
            raise DisconnectionError("connection closed by the server")


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


_WRITE_LOCK = "trollllm.write_lock"


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit, sharing this engine's write lock.

    SQLite has one writer at a time: writers that contend inside SQLite wait in its busy handler, which
    sleeps in growing steps (up to 100 ms) and can starve. Queueing writers of this process on an asyncio
    lock instead hands the file over in FIFO order at once. PostgreSQL needs no such lock.
    """
    lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None
    return async_sessionmaker(engine, expire_on_commit=False, info={_WRITE_LOCK: lock})


def write_lock_of(sessions: async_sessionmaker[AsyncSession]) -> asyncio.Lock | None:
    info: dict[str, asyncio.Lock | None] = sessions.kw.get("info", {})
    return info.get(_WRITE_LOCK)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One short ORM unit of work (a write): commits on success, rolls back on any error."""
    async with _maybe_locked(write_lock_of(sessions)), sessions() as session, session.begin():
        yield session


@asynccontextmanager
async def write_connection(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncConnection]:
    """One short Core write transaction on the sessions' engine (the proxy's hot path uses Core)."""
    engine: AsyncEngine = sessions.kw["bind"]
    async with _maybe_locked(write_lock_of(sessions)), engine.begin() as connection:
        yield connection


@asynccontextmanager
async def _maybe_locked(lock: asyncio.Lock | None) -> AsyncIterator[None]:
    if lock is None:
        yield
        return
    async with lock:
        yield


def utcnow() -> datetime:
    """Timezone-aware now, for column defaults (services use the injected clock instead)."""
    return datetime.now(UTC)
