"""The real services the suite runs against: PostgreSQL and Redis on this machine.

Where one is missing, its tests skip with one loud line — except under CI (`CI=true`), where a missing
service fails the run.
"""

from __future__ import annotations

import asyncio
import os
import socket
from functools import cache

POSTGRES_HOST = os.environ.get("TROLLLLM_TEST_PG_HOST", "127.0.0.1")
POSTGRES_PORT = int(os.environ.get("TROLLLLM_TEST_PG_PORT", "5432"))
POSTGRES_ADMIN_URL = f"postgresql+asyncpg://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/test"
REDIS_URL = os.environ.get("TROLLLLM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
HOW_TO_PROVIDE = {
    "postgres": f"PostgreSQL at {POSTGRES_HOST}:{POSTGRES_PORT} (trust auth, database 'test')",
    "redis": "Redis at 127.0.0.1:6379",
}
# The services whose tests skipped in this process: the run's summary names each in one loud line.
SKIPPED_SERVICES: set[str] = set()


def under_ci() -> bool:
    """True when running in CI, where every service must be there."""
    return os.environ.get("CI", "").lower() == "true"


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@cache
def postgres_available() -> bool:
    """PostgreSQL answers a query."""
    if not _port_open(POSTGRES_HOST, POSTGRES_PORT):
        return False

    async def probe() -> bool:
        import asyncpg

        try:
            connection = await asyncpg.connect(
                host=POSTGRES_HOST, port=POSTGRES_PORT, user="postgres", database="test", timeout=3
            )
        except (OSError, asyncpg.PostgresError):
            return False
        await connection.close()
        return True

    return asyncio.run(probe())


@cache
def redis_available() -> bool:
    """Redis answers PING."""
    return _port_open("127.0.0.1", 6379)
