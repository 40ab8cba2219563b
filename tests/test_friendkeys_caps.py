"""Friend Key caps hold under concurrency (SPEC §6): a request goes upstream only if used + open holds +
its maximum cost fit the cap; every served request is charged exactly once, to the owner, and counted."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import aiohttp
from proxy_world import OPENAI_MODEL, World
from sqlalchemy import func, select, update

from trollllm.accounts.tables import User
from trollllm.billing.holds import FriendKeyCapRefused, HeldRequest, place_hold
from trollllm.billing.records import RequestRecord
from trollllm.billing.settlement import settle
from trollllm.billing.sweeper import release_expired_holds
from trollllm.billing.tables import Hold, LedgerEntry
from trollllm.clock import ManualClock
from trollllm.db import write_connection
from trollllm.friendkeys.tables import FriendKey, FriendKeyModelLimit
from trollllm.money import Money, TokenUsage
from trollllm.settings import HOLD_TTL
from trollllm.usage.tables import RequestLog

CAP_USD = 0.05
REQUESTS = 240


async def _friend_key(world: World, limit_usd: float) -> tuple[str, int]:
    client, auth = world.gateway.client, world.user.auth
    created = await client.post("/api/user/friend-key", headers=auth)
    limits = {"modelLimits": [{"modelId": OPENAI_MODEL, "limitUsd": limit_usd}]}
    assert (await client.put("/api/user/friend-key/limits", headers=auth, json=limits)).status_code == 200
    return created.json()["friendKey"], created.json()["id"]


async def _cap_row(world: World, key_id: int) -> FriendKeyModelLimit:
    async with world.state.sessions() as session:
        row = await session.get(FriendKeyModelLimit, (key_id, OPENAI_MODEL))
    assert row is not None
    return row


async def test_hundreds_of_concurrent_friend_requests_never_pass_the_cap(any_world: World) -> None:
    world = any_world
    await world.admin_call("PATCH", "/api/admin/users/alice", json={"plan": "pro"})  # RPM 1000
    key, key_id = await _friend_key(world, CAP_USD)
    cap = Money.from_usd(CAP_USD)
    async with world.state.sessions() as session:
        owner = await session.scalar(select(User).where(User.username == "alice"))
    assert owner is not None
    credits_before = owner.credits_nanos + owner.ref_credits_nanos
    peaks: list[int] = []
    stop = asyncio.Event()

    async def watch() -> None:  # the cap is never passed, not only at the end
        while not stop.is_set():
            row = await _cap_row(world, key_id)
            assert row.used_nanos <= row.used_nanos + row.held_nanos <= cap.nanos
            peaks.append(row.used_nanos + row.held_nanos)
            await asyncio.sleep(0.005)

    async def fire(client: aiohttp.ClientSession, index: int) -> tuple[int, dict[str, Any]]:
        body = {
            "model": OPENAI_MODEL,
            "max_tokens": 20,
            "stream": index % 2 == 0,
            "messages": [{"role": "user", "content": f"count to {index}"}],
        }
        async with client.post(
            "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, json=body
        ) as response:
            raw = await response.read()
            error = (
                (await response.json(content_type=None)).get("error", {}) if response.status >= 400 else {}
            )
            assert "x-trollllm-balance-usd" not in response.headers
            assert raw
            return response.status, error

    watcher = asyncio.create_task(watch())
    # aiohttp, not httpx: httpx's pool scans every connection per request (quadratic at this scale).
    async with aiohttp.ClientSession(world.base_url, timeout=aiohttp.ClientTimeout(total=60)) as client:
        results = await asyncio.gather(*(fire(client, i) for i in range(REQUESTS)))
    stop.set()
    await watcher
    statuses = [status for status, _ in results]
    assert set(statuses) <= {200, 402}
    assert statuses.count(200) > 0 and statuses.count(402) > 0, "the cap must have been reached"
    assert {error["type"] for status, error in results if status == 402} == {
        "friend_key_model_limit_exceeded"
    }
    assert max(peaks) <= cap.nanos

    row = await _cap_row(world, key_id)
    async with world.state.sessions() as session:
        friend = await session.get(FriendKey, key_id)
        owner_after = await session.get(User, owner.id)
        # The admitted requests' rows (refused ones are in the history too, charged nothing).
        admitted = select(RequestLog).where(RequestLog.friend_key_id == key_id, RequestLog.status_code == 200)
        logs = (await session.scalars(admitted)).all()
        charges = (
            await session.execute(
                select(
                    LedgerEntry.request_id,
                    LedgerEntry.credits_delta_nanos + LedgerEntry.ref_credits_delta_nanos,
                ).where(LedgerEntry.kind == "charge", LedgerEntry.user_id == owner.id)
            )
        ).all()
        open_holds = await session.scalar(select(func.count()).select_from(Hold))
    assert friend is not None and owner_after is not None
    logged_cost = sum(log.credits_cost_nanos for log in logs)
    assert row.held_nanos == 0 and open_holds == 0 and owner_after.held_nanos == 0
    assert 0 < row.used_nanos <= cap.nanos
    assert row.used_nanos == friend.total_used_nanos == logged_cost
    assert credits_before - (owner_after.credits_nanos + owner_after.ref_credits_nanos) == logged_cost
    assert len(logs) == statuses.count(200), "every admitted request is logged once"
    assert all(
        log.is_friend_key_request and log.user_id == owner.id and log.user_key_id is None for log in logs
    )
    paid = {log.request_id: log.credits_cost_nanos for log in logs if log.credits_cost_nanos}
    assert len(paid) == statuses.count(200), "served requests are the paid ones"
    assert len(charges) == len({request_id for request_id, _ in charges}) == len(paid), "charged exactly once"
    assert {request_id: -delta for request_id, delta in charges} == paid
    assert friend.requests_count == statuses.count(200)


async def test_a_failed_request_releases_its_cap_hold_and_costs_nothing(world: World) -> None:
    key, key_id = await _friend_key(world, 1)
    response = await world.gateway.client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": OPENAI_MODEL, "messages": [{"role": "user", "content": "hi [mock status=500]"}]},
    )
    assert response.status_code == 500
    row = await _cap_row(world, key_id)
    assert (row.used_nanos, row.held_nanos) == (0, 0)
    async with world.state.sessions() as session:
        friend = await session.get(FriendKey, key_id)
    assert friend is not None and (friend.requests_count, friend.total_used_nanos) == (0, 0)


async def test_a_hold_is_both_reservations_or_neither(world: World, clock: ManualClock) -> None:
    """The owner's balance and the cap are reserved in one transaction; a refusal of either writes nothing."""
    _key, key_id = await _friend_key(world, 0.01)
    state = world.state
    async with state.sessions() as session:
        owner = await session.scalar(select(User).where(User.username == "alice"))
    assert owner is not None

    async def hold(request_id: str, usd: str) -> tuple[HeldRequest, int]:
        held = HeldRequest(request_id, owner.id, Money.from_usd(usd), OPENAI_MODEL, friend_key_id=key_id)
        hold_id = await state.db.write(place_hold(held, clock.now()))
        assert hold_id is not None
        return held, hold_id

    first, first_id = await hold("r-1", "0.006")
    refused = HeldRequest("r-2", owner.id, Money.from_usd("0.005"), OPENAI_MODEL, friend_key_id=key_id)
    try:
        await state.db.write(place_hold(refused, clock.now()))
    except FriendKeyCapRefused:
        pass
    else:
        raise AssertionError("the cap must refuse 0.006 + 0.005 > 0.01")
    async with state.sessions() as session:
        reloaded = await session.get(User, owner.id)
        assert reloaded is not None and reloaded.held_nanos == first.amount.nanos
        assert await session.scalar(select(func.count()).select_from(Hold)) == 1
    async with write_connection(state.sessions) as connection:  # the owner refuses: the cap is untouched
        await connection.execute(update(User).where(User.id == owner.id).values(credits_nanos=6_000_000))
        await connection.execute(update(User).where(User.id == owner.id).values(ref_credits_nanos=0))
    small = HeldRequest("r-3", owner.id, Money.from_usd("0.001"), OPENAI_MODEL, friend_key_id=key_id)
    assert await state.db.write(place_hold(small, clock.now())) is None
    assert (await _cap_row(world, key_id)).held_nanos == first.amount.nanos

    # The owner removes and re-adds the model while r-1 is in flight: settling must not break the books.
    client, auth = world.gateway.client, world.user.auth
    await client.put("/api/user/friend-key/limits", headers=auth, json={"modelLimits": []})
    readded = {"modelLimits": [{"modelId": OPENAI_MODEL, "limitUsd": 0.01}]}
    await client.put("/api/user/friend-key/limits", headers=auth, json=readded)
    record = RequestRecord(OPENAI_MODEL, 200, 1, True, False, friend_key_id=key_id)
    charged = await state.db.write(
        settle(first, first_id, Money.from_usd("0.002"), TokenUsage(1, 1), record, clock.now())
    )
    assert charged.cost == Money.from_usd("0.002")
    row = await _cap_row(world, key_id)
    assert (row.held_nanos, row.used_nanos) == (0, charged.cost.nanos)


async def test_a_request_outliving_its_hold_is_charged_no_more_than_the_cap_has_left(
    world: World, clock: ManualClock
) -> None:
    _key, key_id = await _friend_key(world, 0.01)
    state = world.state
    async with state.sessions() as session:
        owner = await session.scalar(select(User).where(User.username == "alice"))
    assert owner is not None
    slow = HeldRequest("slow", owner.id, Money.from_usd("0.008"), OPENAI_MODEL, friend_key_id=key_id)
    slow_id = await state.db.write(place_hold(slow, clock.now()))
    assert slow_id is not None
    clock.advance((HOLD_TTL + timedelta(seconds=1)).total_seconds())
    assert await release_expired_holds(state.sessions, clock.now()) == 1
    fast = HeldRequest("fast", owner.id, Money.from_usd("0.007"), OPENAI_MODEL, friend_key_id=key_id)
    assert await state.db.write(place_hold(fast, clock.now())) is not None  # the room the sweeper freed
    record = RequestRecord(OPENAI_MODEL, 200, 1, True, False, friend_key_id=key_id)
    charged = await state.db.write(
        settle(slow, slow_id, Money.from_usd("0.008"), TokenUsage(1, 1), record, clock.now())
    )
    assert charged.cost == Money.from_usd("0.003"), "only what the cap has left beside the open hold"
    row = await _cap_row(world, key_id)
    assert row.used_nanos + row.held_nanos <= row.limit_nanos
