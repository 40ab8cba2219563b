"""Credit leases on the embedded shape (SQLite, where they are on unless told): one gateway's holds are
served from a lease of the balance, settled one at a time or many to a batch, and the books stay exact while
the lease is out and after it returns; a lease left by a process that died goes back to the balance once
expired."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from conftest import make_settings
from helpers import register_user
from proxy_world import OPENAI_MODEL, World, build_world, serve
from sqlalchemy import text
from test_hold_bounds import overage_response

from trollllm.billing.lease_programs import LEASE_TTL, open_lease
from trollllm.billing.ledger import reconcile
from trollllm.billing.sweeper import release_expired_leases
from trollllm.clock import ManualClock
from trollllm.db import create_sessionmaker, create_test_engine
from trollllm.mockupstream import MockUpstream
from trollllm.money import Money

USER_BOOKS = (
    "SELECT u.credits_nanos + u.ref_credits_nanos, u.held_nanos, "
    "(SELECT COALESCE(-SUM(credits_delta_nanos + ref_credits_delta_nanos), 0) FROM ledger_entries "
    " WHERE user_id = u.id AND kind = 'charge'), "
    "(SELECT COALESCE(SUM(credits_cost_nanos), 0) FROM request_logs WHERE user_id = u.id), "
    "(SELECT COUNT(*) FROM request_logs WHERE user_id = u.id), "
    "(SELECT COUNT(*) FROM credit_leases WHERE user_id = u.id), "
    "(SELECT COUNT(*) FROM holds WHERE user_id = u.id) "
    "FROM users u WHERE u.username = 'alice'"
)


async def user_books(database_url: str) -> tuple[int, ...]:
    """alice's balance, held amount, Σ charges in the ledger, Σ logged costs, logs, lease rows, hold rows."""
    engine = create_test_engine(database_url)
    try:
        async with engine.connect() as connection:
            row = (await connection.execute(text(USER_BOOKS))).one()
    finally:
        await engine.dispose()
    return tuple(int(value) for value in row)


async def books_balance(database_url: str) -> bool:
    engine = create_test_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            return await reconcile(session) == []
    finally:
        await engine.dispose()


async def on_a_plan_of_money_alone(world: World) -> None:
    """alice on a plan with no monthly token limit and no window: her holds are money alone (leasable)."""
    plan = {"name": "leased", "apiAccess": True, "rpm": 100_000, "creditGrantUsd": 100,
            "monthlyTokenLimit": None, "byokRpm": 100_000}  # fmt: skip
    await world.admin_call("POST", "/api/admin/plans", json=plan)
    await world.admin_call("PATCH", "/api/admin/users/alice", json={"plan": "leased"})


async def chat_costs(world: World, requests: int) -> int:
    """Send `requests` chat completions at once; Σ of the costs the gateway reported (nano-USD)."""
    async with world.openai() as client:

        async def one() -> int:
            raw = await client.chat.completions.with_raw_response.create(
                model=OPENAI_MODEL, messages=[{"role": "user", "content": "hello"}], max_tokens=64
            )
            return Money.from_usd(Decimal(raw.headers["x-trollllm-cost-usd"])).nanos

        return sum(await asyncio.gather(*(one() for _ in range(requests))))


@pytest.fixture
async def leased_world(
    tmp_path: Path, clock: ManualClock, embedded_database_url: str
) -> AsyncIterator[World]:
    """The proxy world on SQLite with `credit_leases` on."""
    settings = make_settings(tmp_path, embedded_database_url, credit_leases=True)
    async with MockUpstream() as mock, serve(settings, clock) as (gateway, url):
        yield await build_world(gateway, url, mock)


@pytest.mark.parametrize("at_once", [1, 40])
async def test_requests_on_sqlite_are_charged_exactly_from_a_lease(
    leased_world: World, embedded_database_url: str, at_once: int
) -> None:
    await on_a_plan_of_money_alone(leased_world)
    balance, *_ = await user_books(embedded_database_url)
    charged = 0
    for _ in range(3):
        charged += await chat_costs(leased_world, at_once)
    during = await user_books(embedded_database_url)
    assert await books_balance(embedded_database_url)
    leases = leased_world.state.leases
    assert leases is not None and await leases.return_idle() == 1
    after = await user_books(embedded_database_url)
    assert charged > 0
    # While out: one lease row, no hold row, the lease's slice held on top of nothing else.
    assert during[5:] == (1, 0) and during[1] > 0
    # Back: every charge taken once from the balance, in the ledger and in the logs; nothing held.
    assert after == (balance - charged, 0, charged, charged, 3 * at_once, 0, 0)
    assert await books_balance(embedded_database_url)


async def overage_on_a_lease(world: World, database_url: str, balance_usd: str) -> tuple[int, int, int]:
    """A request of money alone whose cache writes cost $0.625, far past its hold (a 1-token request) and
    its lease (32 such holds), by a user with `balance_usd`: (charged, credits left, held) once the lease
    is back."""
    response = await overage_response(world, "bob", float(balance_usd))
    assert world.state.leases is not None and await world.state.leases.return_idle() == 1
    engine = create_test_engine(database_url)
    try:
        async with engine.connect() as connection:
            query = text("SELECT credits_nanos, held_nanos FROM users WHERE username = 'bob'")
            left, held = (await connection.execute(query)).one()
    finally:
        await engine.dispose()
    return Money.from_usd(Decimal(response.headers["x-trollllm-cost-usd"])).nanos, int(left), int(held)


async def test_a_cost_past_its_lease_is_charged_whole_from_the_free_balance(
    leased_world: World, embedded_database_url: str
) -> None:
    charged, left, held = await overage_on_a_lease(leased_world, embedded_database_url, "1")
    assert charged >= 625_000_000 and (left, held) == (1_000_000_000 - charged, 0)
    assert await books_balance(embedded_database_url)


async def test_a_cost_past_its_lease_and_the_balance_takes_the_whole_balance(
    leased_world: World, embedded_database_url: str
) -> None:
    assert await overage_on_a_lease(leased_world, embedded_database_url, "0.01") == (10_000_000, 0, 0)
    assert await books_balance(embedded_database_url)


async def test_a_lease_left_on_sqlite_returns_to_the_balance_once_expired(
    leased_world: World, clock: ManualClock, embedded_database_url: str
) -> None:
    balance, *_ = await user_books(embedded_database_url)
    async with leased_world.state.sessions() as session:
        user_id = int(await session.scalar(text("SELECT id FROM users WHERE username = 'alice'")))
    # What a process killed mid-flight leaves: a lease row, its amount held, nobody to renew it.
    program = open_lease("killed", user_id, 5_000_000, clock.now() + LEASE_TTL, one_statement=False)
    assert await leased_world.state.db.write(program) is not None
    assert (await user_books(embedded_database_url))[:2] == (balance, 5_000_000)
    sessions = leased_world.state.sessions
    assert await release_expired_leases(sessions, clock.now() + LEASE_TTL - timedelta(seconds=1)) == 0
    assert await release_expired_leases(sessions, clock.now() + LEASE_TTL + timedelta(seconds=1)) == 1
    assert await user_books(embedded_database_url) == (balance, 0, 0, 0, 0, 0, 0)
    assert await books_balance(embedded_database_url)


async def test_a_402_counts_what_the_lease_has_free_as_the_users_balance(leased_world: World) -> None:
    account = await register_user(leased_world.gateway, "carol")
    money_alone = {"plan": "pro-troll"}
    await leased_world.admin_call("PATCH", "/api/admin/users/carol", json=money_alone)
    credit = {"amountUsd": 0.05, "balance": "credits", "reason": "test"}
    await leased_world.admin_call("POST", "/api/admin/users/carol/credits", json=credit)

    async def chat(max_tokens: int) -> httpx.Response:
        messages = [{"role": "user", "content": "hi"}]
        body = {"model": OPENAI_MODEL, "messages": messages, "max_tokens": max_tokens}
        auth = {"Authorization": f"Bearer {account.api_key}"}
        return await leased_world.gateway.client.post("/v1/chat/completions", headers=auth, json=body)

    small = await chat(1)  # opens a lease of 32 such holds, and leaves most of it free
    assert small.status_code == 200, small.text
    cost = Money.from_usd(Decimal(small.headers["x-trollllm-cost-usd"]))
    refused = await chat(4096)  # up to 4,096 × $25 / MTok: more than the whole balance
    assert refused.status_code == 402, refused.text
    left = Money.from_usd(Decimal("0.05")) - cost
    assert Decimal(str(refused.json()["error"]["balanceUsd"])) == left.to_decimal()


@pytest.mark.parametrize(
    ("database_url", "credit_leases", "served"),
    [
        ("sqlite+aiosqlite:///gateway.db", None, True),
        ("sqlite+aiosqlite:///gateway.db", False, False),
        ("postgresql+asyncpg://127.0.0.1/trollllm", None, False),
        ("postgresql+asyncpg://127.0.0.1/trollllm", True, True),
    ],
)
def test_credit_leases_are_on_unless_told_in_the_embedded_shape_and_off_unless_told_in_the_scaled_one(
    tmp_path: Path, database_url: str, credit_leases: bool | None, served: bool
) -> None:
    settings = make_settings(tmp_path, database_url, credit_leases=credit_leases)
    assert settings.serves_credit_leases is served


async def test_the_embedded_gateway_as_it_ships_serves_holds_from_a_lease(
    tmp_path: Path, clock: ManualClock, embedded_database_url: str
) -> None:
    async with MockUpstream() as mock, serve(make_settings(tmp_path, embedded_database_url), clock) as served:
        world = await build_world(*served, mock)
        await on_a_plan_of_money_alone(world)
        assert await chat_costs(world, 1) > 0
        assert (await user_books(embedded_database_url))[5:] == (1, 0), "a lease row, no hold row"
