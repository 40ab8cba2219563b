"""The PostgreSQL engine's pool: a connection the server has closed is never handed to a request."""

from __future__ import annotations

import asyncio

from conftest import pg_execute
from sqlalchemy import text

from trollllm.db import create_engine


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
