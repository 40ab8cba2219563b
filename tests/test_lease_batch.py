"""A batch of settlements on one lease, as one statement (`settle_one_lease`), books exactly what the
transaction of several statements (`settle_leased`) books: the same balances, ledger entries and logs; and
`settle_leased` on SQLite (plain statements, a row at a time) books what PostgreSQL books."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from trollllm.billing.holds import HeldRequest
from trollllm.billing.lease_programs import open_lease
from trollllm.billing.lease_settlement import LeasedSettlement, settle_leased, settle_one_lease
from trollllm.billing.records import RequestRecord
from trollllm.db import create_engine
from trollllm.money import Money, TokenUsage
from trollllm.storage.runners import build_runner
from trollllm.storage.sqlprogram import ProgramRunner

INSTANCE = "test-instance"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CHARGES = (3_000, 4_000, 0, 2_000)  # past the 5,000 of credits in the second: then refCredits


async def funded_user_with_lease(runner: ProgramRunner, connection_url: str, name: str) -> tuple[int, int]:
    engine = create_engine(connection_url)
    try:
        async with engine.begin() as connection:
            user_id = await connection.scalar(
                text(
                    "INSERT INTO users (username, password_hash, role, is_active, token_version, plan, "
                    "credits_nanos, ref_credits_nanos, held_nanos, tokens_used, total_input_tokens, "
                    "total_output_tokens, total_cache_write_tokens, total_cache_hit_tokens, "
                    "monthly_tokens_used, created_at) VALUES (:name, 'x', 'user', TRUE, 0, "
                    "(SELECT name FROM plans ORDER BY name LIMIT 1), 5000, 10000, 0, 0, 0, 0, 0, 0, 0, :now) "
                    "RETURNING id"
                ),
                {"name": name, "now": NOW.replace(tzinfo=None)},
            )
    finally:
        await engine.dispose()
    expires = NOW + timedelta(minutes=2)
    one = runner.data_modifying_ctes
    lease_id = await runner.write(open_lease(INSTANCE, int(user_id), 12_000, expires, one_statement=one))
    assert lease_id is not None
    return int(user_id), lease_id


def batch(user_id: int, lease_id: int) -> list[LeasedSettlement]:
    items = []
    for n, charge in enumerate(CHARGES):
        held = HeldRequest(f"req-{user_id}-{n}", user_id, Money(5_000), "m")
        record = RequestRecord("m", 200, 12, True, False, user_key_id=None, factory_key_id=None)
        usage = TokenUsage(
            input_tokens=10 + n, output_tokens=20 + n, cache_write_tokens=1, cache_hit_tokens=2
        )
        items.append(LeasedSettlement(lease_id, held, Money(charge), Money(charge), usage, record, NOW))
    return items


async def books(url: str, user_id: int) -> tuple[object, ...]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            user = (
                await connection.execute(
                    text(
                        "SELECT credits_nanos, ref_credits_nanos, held_nanos, tokens_used, "
                        "monthly_tokens_used, total_input_tokens, total_output_tokens, "
                        "total_cache_write_tokens, total_cache_hit_tokens FROM users WHERE id = :id"
                    ),
                    {"id": user_id},
                )
            ).one()
            lease = await connection.scalar(
                text("SELECT amount_nanos FROM credit_leases WHERE user_id = :id"), {"id": user_id}
            )
            ledger = (
                await connection.execute(
                    text(
                        "SELECT kind, credits_delta_nanos, ref_credits_delta_nanos, reason, actor, "
                        "request_id FROM ledger_entries WHERE user_id = :id ORDER BY id"
                    ),
                    {"id": user_id},
                )
            ).all()
            logs = (
                await connection.execute(
                    text(
                        "SELECT request_id, credits_cost_nanos, input_tokens, output_tokens, "
                        "status_code, is_success, is_stream, created_at FROM request_logs "
                        "WHERE user_id = :id ORDER BY id"
                    ),
                    {"id": user_id},
                )
            ).all()
    finally:
        await engine.dispose()
    # Request ids end in the item's number (their start names the user); a timestamp as SQLite's text or
    # PostgreSQL's datetime, to the second; booleans as 0/1 or False/True compare equal.
    ledger_rows = [(*row[:5], row[5][-2:]) for row in ledger]
    log_rows = [(row[0][-2:], *row[1:7], str(row[7])[:19]) for row in logs]
    return tuple(user), lease, ledger_rows, log_rows


@pytest.mark.postgres
async def test_a_batch_on_one_lease_books_what_the_statements_per_lease_book(
    postgres_database_url: str,
) -> None:
    engine = create_engine(postgres_database_url)
    runner = build_runner(engine, None)
    try:
        one_id, one_lease = await funded_user_with_lease(runner, postgres_database_url, "one")
        many_id, many_lease = await funded_user_with_lease(runner, postgres_database_url, "many")
        expires = NOW + timedelta(minutes=2)
        one = await runner.write(settle_one_lease(INSTANCE, batch(one_id, one_lease), expires))
        many_batch = batch(many_id, many_lease)
        many, gone = await runner.write(settle_leased(INSTANCE, many_batch, expires, one_statement=True))
        assert one == many and not gone
        assert [(c.from_credits.nanos, c.from_ref_credits.nanos) for c in one] == [
            (3_000, 0),
            (2_000, 2_000),
            (0, 0),
            (0, 2_000),
        ]
        assert await books(postgres_database_url, one_id) == await books(postgres_database_url, many_id)
        (credits, ref_credits, held, *_), lease, ledger, logs = await books(postgres_database_url, one_id)
        assert (credits, ref_credits, held, lease) == (0, 6_000, 3_000, 3_000)
        assert len(ledger) == 3 and len(logs) == 4
    finally:
        runner.close()
        await engine.dispose()


@pytest.mark.postgres
async def test_a_batch_on_a_gone_lease_writes_nothing_in_one_statement(postgres_database_url: str) -> None:
    engine = create_engine(postgres_database_url)
    runner = build_runner(engine, None)
    try:
        user_id, lease_id = await funded_user_with_lease(runner, postgres_database_url, "gone")
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE credit_leases SET instance_id = 'another' WHERE id = :id"), {"id": lease_id}
            )
        before = await books(postgres_database_url, user_id)
        assert await runner.write(settle_one_lease(INSTANCE, batch(user_id, lease_id), NOW)) is None
        assert await books(postgres_database_url, user_id) == before
    finally:
        runner.close()
        await engine.dispose()


@pytest.mark.postgres
async def test_a_batch_settled_on_sqlite_books_what_postgresql_books(
    postgres_database_url: str, embedded_database_url: str
) -> None:
    pg_engine, sqlite_engine = create_engine(postgres_database_url), create_engine(embedded_database_url)
    pg_runner = build_runner(pg_engine, None)
    sqlite_runner = build_runner(sqlite_engine, asyncio.Lock())
    assert not sqlite_runner.data_modifying_ctes
    try:
        pg_user, pg_lease = await funded_user_with_lease(pg_runner, postgres_database_url, "pg")
        sqlite_user, sqlite_lease = await funded_user_with_lease(sqlite_runner, embedded_database_url, "pg")
        expires = NOW + timedelta(minutes=2)
        on_pg = await pg_runner.write(settle_one_lease(INSTANCE, batch(pg_user, pg_lease), expires))
        on_sqlite, gone = await sqlite_runner.write(
            settle_leased(INSTANCE, batch(sqlite_user, sqlite_lease), expires, one_statement=False)
        )
        assert on_sqlite == on_pg and not gone
        assert await books(embedded_database_url, sqlite_user) == await books(postgres_database_url, pg_user)
    finally:
        pg_runner.close()
        sqlite_runner.close()
        await pg_engine.dispose()
        await sqlite_engine.dispose()
