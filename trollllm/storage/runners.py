"""The cheapest program runner for an engine's database."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from trollllm.storage.pgrunner import AsyncpgRunner, EngineRunner
from trollllm.storage.sqlprogram import ProgramRunner, SqliteRunner


def build_runner(engine: AsyncEngine, write_lock: asyncio.Lock | None) -> ProgramRunner:
    """The cheapest runner for this engine's database."""
    if engine.dialect.name == "sqlite" and write_lock is not None:
        database = engine.url.database
        if database and database != ":memory:":
            return SqliteRunner(database, write_lock)
    if engine.dialect.driver == "asyncpg":
        return AsyncpgRunner(engine)
    return EngineRunner(engine)
