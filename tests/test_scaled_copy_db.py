"""Moving from embedded SQLite to PostgreSQL (issue 17): `trollllm export FILE` on a populated SQLite
database, `trollllm import FILE` into a fresh PostgreSQL one, and the gateway works there: the user logs in,
the key works, balance and ledger are equal, every table arrived, and new rows get new ids (sequences)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from conftest import TEST_SECRET, pg_execute, pg_url, require_service
from helpers import PASSWORD
from instances import instance_env, start_instance, wait_ready
from plan_helpers import set_user
from proxy_world import OPENAI_MODEL, World
from services import postgres_available
from sqlalchemy import func, select

from trollllm.accounts.tables import User
from trollllm.billing.tables import LedgerEntry
from trollllm.db import create_sessionmaker, create_test_engine
from trollllm.tables import Base


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database with nothing in it (not even the schema); dropped after the test."""
    require_service("postgres", postgres_available())
    name = f"trollllm_import_{uuid.uuid4().hex[:12]}"
    asyncio.run(pg_execute(f'CREATE DATABASE "{name}"'))
    try:
        yield pg_url(name)
    finally:
        asyncio.run(pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def trollllm(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a `trollllm` command on `database_url`, as an operator would."""
    env = {**os.environ, "DATABASE_URL": database_url, "TROLLLLM_DATA_DIR": str(tmp_path),
           "TROLLLLM_SECRET": TEST_SECRET, "TROLLLLM_LOG_LEVEL": "WARNING"}  # fmt: skip
    env.pop("REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "trollllm", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def snapshot(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary key order."""
    engine = create_test_engine(database_url)
    try:
        async with engine.connect() as connection:
            return {
                table.name: [
                    tuple(row)
                    for row in (
                        await connection.execute(select(table).order_by(*table.primary_key.columns))
                    ).all()
                ]
                for table in Base.metadata.sorted_tables
            }
    finally:
        await engine.dispose()


async def populate(world: World) -> None:
    """Requests charged and logged, a Friend Key with a limit, a provider key, an admin credit grant."""
    client = world.openai()
    async with client:
        for _ in range(3):
            await client.chat.completions.create(
                model=OPENAI_MODEL, messages=[{"role": "user", "content": "hello there"}], max_tokens=20
            )
    gateway = world.gateway.client
    assert (await gateway.post("/api/user/friend-key", headers=world.user.auth)).status_code == 201
    limits = {"modelLimits": [{"modelId": OPENAI_MODEL, "limitUsd": 1.5}]}
    assert (
        await gateway.put("/api/user/friend-key/limits", headers=world.user.auth, json=limits)
    ).status_code == 200
    key = {"apiKey": "gsk_" + "Zq7" * 12 + "wxyz"}
    assert (
        await gateway.put("/api/user/provider-keys/groq", headers=world.user.auth, json=key)
    ).status_code == 200
    # The world's clock is in January 2026; the served copy runs on the real one: keep the plan current there.
    await set_user(world, plan_expires_at=datetime(2099, 1, 1, tzinfo=UTC))
    await world.admin_call(
        "POST", "/api/admin/users/alice/credits",
        json={"amountUsd": 0.000000007, "balance": "refCredits", "reason": "a few nano-dollars"},
    )  # fmt: skip
    # A factory key's spend and request count are written off the request path: on disk before the snapshot.
    await world.state.upstream.flush()


async def test_a_populated_sqlite_database_moves_to_a_fresh_postgresql_one_and_the_gateway_works_on_it(
    world: World, embedded_database_url: str, empty_postgres_url: str, tmp_path: Path
) -> None:
    await populate(world)
    before = await snapshot(embedded_database_url)
    dump = tmp_path / "trollllm-export.jsonl"

    exported = await asyncio.to_thread(trollllm, tmp_path, embedded_database_url, "export", str(dump))
    assert exported.returncode == 0, exported.stderr
    imported = await asyncio.to_thread(trollllm, tmp_path, empty_postgres_url, "import", str(dump))
    assert imported.returncode == 0, imported.stderr
    assert "counts and money totals match" in imported.stdout

    after = await snapshot(empty_postgres_url)
    assert after == before, "every table, every row, every nano-dollar"
    assert all(
        before[name] for name in ("users", "ledger_entries", "request_logs", "friend_keys", "provider_keys")
    )

    served = start_instance(
        tmp_path / "pg", instance_env(tmp_path / "pg", empty_postgres_url, None, "unused:")
    )
    try:
        await asyncio.to_thread(wait_ready, [served])
        async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as client:
            login = await client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
            assert login.status_code == 200, login.text
            me = (
                await client.get("/api/user/me", headers={"Authorization": f"Bearer {login.json()['token']}"})
            ).json()
            old = (await world.gateway.client.get("/api/user/me", headers=world.user.auth)).json()
            assert (me["credits"], me["refCredits"]) == (old["credits"], old["refCredits"])
            registered = await client.post(
                "/api/auth/register", json={"username": "newcomer", "password": PASSWORD}
            )
            assert registered.status_code == 201, "a new user gets a new id: the sequences were moved"
        sdk = openai.AsyncOpenAI(base_url=served.base_url + "/v1", api_key=world.user.api_key, max_retries=0)
        async with sdk:
            reply = await sdk.chat.completions.with_raw_response.create(
                model=OPENAI_MODEL, messages=[{"role": "user", "content": "hello there"}], max_tokens=20
            )
        assert reply.status_code == 200, "the key works on PostgreSQL"
    finally:
        served.stop()
    engine = create_test_engine(empty_postgres_url)
    try:
        async with create_sessionmaker(engine)() as session:
            user = await session.scalar(select(User).where(User.username == "alice"))
            assert user is not None
            ids = (await session.scalars(select(LedgerEntry.id).order_by(LedgerEntry.id))).all()
            total = await session.scalar(
                select(func.sum(LedgerEntry.credits_delta_nanos + LedgerEntry.ref_credits_delta_nanos)).where(
                    LedgerEntry.user_id == user.id
                )
            )
    finally:
        await engine.dispose()
    assert ids == [row[0] for row in before["ledger_entries"]] + [len(ids)], "the new charge, next in line"
    assert total == user.credits_nanos + user.ref_credits_nanos, "Σ ledger = balance on PostgreSQL"


async def test_import_refuses_a_database_that_already_has_users(
    world: World, embedded_database_url: str, tmp_path: Path
) -> None:
    dump = tmp_path / "trollllm-export.jsonl"
    assert (
        await asyncio.to_thread(trollllm, tmp_path, embedded_database_url, "export", str(dump))
    ).returncode == 0

    result = await asyncio.to_thread(trollllm, tmp_path, embedded_database_url, "import", str(dump))

    assert result.returncode == 2
    assert "already has" in result.stderr and "Traceback" not in result.stderr


async def test_import_refuses_a_file_cut_short_and_imports_nothing(
    world: World, embedded_database_url: str, empty_postgres_url: str, tmp_path: Path
) -> None:
    dump = tmp_path / "trollllm-export.jsonl"
    assert (
        await asyncio.to_thread(trollllm, tmp_path, embedded_database_url, "export", str(dump))
    ).returncode == 0
    lines = dump.read_bytes().splitlines(keepends=True)
    dump.write_bytes(b"".join(lines[:-1]))  # no footer

    result = await asyncio.to_thread(trollllm, tmp_path, empty_postgres_url, "import", str(dump))

    assert result.returncode == 2 and "cut short" in result.stderr
    assert not (await snapshot(empty_postgres_url))["users"]
