"""Prepaid billing under concurrency (SPEC §4 Charging): never negative, never lost, charged exactly once."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aiohttp
from helpers import Account, register_user
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World
from sqlalchemy import func, select

from trollllm.accounts.tables import User
from trollllm.billing.tables import Hold, LedgerEntry
from trollllm.usage.tables import RequestLog

USERS = 6
REQUESTS = 504
SMALL_BALANCE_USD = 0.005


async def _fund(world: World, name: str) -> Account:
    account = await register_user(world.gateway, name)
    await world.admin_call("PATCH", f"/api/admin/users/{name}", json={"plan": "pro-troll"})
    await world.admin_call(
        "POST",
        f"/api/admin/users/{name}/credits",
        json={"amountUsd": SMALL_BALANCE_USD / 2, "balance": "credits", "reason": "test"},
    )
    await world.admin_call(
        "POST",
        f"/api/admin/users/{name}/credits",
        json={"amountUsd": SMALL_BALANCE_USD / 2, "balance": "refCredits", "reason": "test"},
    )
    return account


def _request(kind: int, account: Account) -> tuple[str, dict[str, str], dict[str, Any]]:
    directive = ["", "", "", "[mock status=500]", "[mock drop_after=4]", "[mock no_usage=1]"][kind % 6]
    stream = kind % 2 == 0
    messages = [{"role": "user", "content": f"count to three {directive}"}]
    if kind % 3 == 0:
        return (
            "/v1/messages",
            {"x-api-key": account.api_key},
            {"model": ANTHROPIC_MODEL, "max_tokens": 20, "messages": messages, "stream": stream},
        )
    return (
        "/v1/chat/completions",
        {"Authorization": f"Bearer {account.api_key}"},
        {"model": OPENAI_MODEL, "max_tokens": 20, "messages": messages, "stream": stream},
    )


async def _fire(
    client: aiohttp.ClientSession, path: str, headers: dict[str, str], body: dict[str, Any]
) -> int:
    async with client.post(path, headers=headers, json=body) as response:
        await response.read()
        return response.status


async def test_ledger_is_exact_under_hundreds_of_concurrent_mixed_requests(any_world: World) -> None:
    world = any_world
    accounts = [await _fund(world, f"small{i}") for i in range(USERS)]
    rng = random.Random(7)
    plan = [_request(rng.randrange(60), rng.choice(accounts)) for _ in range(REQUESTS)]
    # aiohttp, not httpx: httpx's pool scans every connection per request (quadratic at this scale).
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(world.base_url, timeout=timeout) as client:
        statuses = await asyncio.gather(*(_fire(client, *request) for request in plan))
    assert statuses.count(402) > 0, "small balances must run out"
    assert statuses.count(200) > 0
    if world.state.leases is not None:  # SQLite: the leases still out (idle now) go back to the balances
        await world.state.leases.return_idle()

    async with world.state.sessions() as session:
        for account in accounts:
            user = await session.scalar(select(User).where(User.username == account.username))
            assert user is not None
            sums = (
                await session.execute(
                    select(
                        func.coalesce(func.sum(LedgerEntry.credits_delta_nanos), 0),
                        func.coalesce(func.sum(LedgerEntry.ref_credits_delta_nanos), 0),
                    ).where(LedgerEntry.user_id == user.id)
                )
            ).one()
            assert (user.credits_nanos, user.ref_credits_nanos) == (sums[0], sums[1])
            assert user.credits_nanos >= 0 and user.ref_credits_nanos >= 0
            assert user.held_nanos == 0
            charged = await session.scalar(
                select(
                    func.coalesce(
                        func.sum(LedgerEntry.credits_delta_nanos + LedgerEntry.ref_credits_delta_nanos), 0
                    )
                ).where(LedgerEntry.user_id == user.id, LedgerEntry.kind == "charge")
            )
            logged = await session.scalar(
                select(func.coalesce(func.sum(RequestLog.credits_cost_nanos), 0)).where(
                    RequestLog.user_id == user.id
                )
            )
            assert -int(charged or 0) == int(logged or 0)
        assert await session.scalar(select(func.count()).select_from(Hold)) == 0
        logged_requests = await session.scalar(select(func.count()).select_from(RequestLog))
        paid_requests = await session.scalar(select(func.count()).where(RequestLog.credits_cost_nanos > 0))
        charged_requests = await session.scalar(
            select(func.count(func.distinct(LedgerEntry.request_id))).where(LedgerEntry.kind == "charge")
        )
        charge_rows = await session.scalar(select(func.count()).where(LedgerEntry.kind == "charge"))
    # Every request is logged once: the admitted ones with their cost, the refused ones (402) charged nothing.
    assert logged_requests == REQUESTS, "every request is logged once"
    assert charged_requests == charge_rows == paid_requests, "every paid request is charged exactly once"
