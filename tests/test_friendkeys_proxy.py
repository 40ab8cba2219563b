"""Friend Keys on the proxy (SPEC §3, §6): the owner pays, the caps count, every §6 friend-key row on both
endpoint formats, and a rotated key is dead on the very next request — on every instance."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from conftest import make_settings
from helpers import PASSWORD, Account, register_user
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World, build_world, serve
from services import REDIS_URL
from sqlalchemy import func, select

from trollllm.billing.tables import LedgerEntry
from trollllm.clock import ManualClock
from trollllm.crypto import FRIEND_KEY_PATTERN, mask_key
from trollllm.mockupstream import MockUpstream
from trollllm.money import Money

HELLO = [{"role": "user", "content": "Say hello to my friend please"}]
FORMATS = {"openai": ("/v1/chat/completions", OPENAI_MODEL), "anthropic": ("/v1/messages", ANTHROPIC_MODEL)}


async def friend_key(world: World, owner: Account, limits: list[dict[str, Any]]) -> str:
    """Create `owner`'s Friend Key with these limits; the full key."""
    client = world.gateway.client
    created = await client.post("/api/user/friend-key", headers=owner.auth)
    assert created.status_code == 201, created.text
    put = await client.put("/api/user/friend-key/limits", headers=owner.auth, json={"modelLimits": limits})
    assert put.status_code == 200, put.text
    key: str = created.json()["friendKey"]
    return key


async def owner_view(world: World, owner: Account) -> dict[str, Any]:
    response = await world.gateway.client.get("/api/user/friend-key", headers=owner.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def balance(world: World, owner: Account) -> Money:
    me = (await world.gateway.client.get("/api/user/me", headers=owner.auth)).json()
    return Money.from_usd(me["credits"]) + Money.from_usd(me["refCredits"])


async def call(
    world: World, wire: str, key: str | None, *, model: str | None = None, max_tokens: int = 50
) -> httpx.Response:
    """One proxied request in `wire` format; the key in that format's usual header."""
    path, default_model = FORMATS[wire]
    headers: dict[str, str] = {}
    if key is not None:
        headers["x-api-key" if wire == "anthropic" else "Authorization"] = (
            key if wire == "anthropic" else f"Bearer {key}"
        )
    body = {"model": model or default_model, "max_tokens": max_tokens, "messages": HELLO}
    return await world.gateway.client.post(path, headers=headers, json=body)


def error_of(wire: str, response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    if wire == "anthropic":
        assert body["type"] == "error"
    error: dict[str, Any] = body["error"]
    return error


async def test_official_sdks_with_a_friend_key_charge_the_owner_and_move_the_caps(world: World) -> None:
    alice = world.user
    key = await friend_key(
        world,
        alice,
        [{"modelId": OPENAI_MODEL, "limitUsd": 1}, {"modelId": ANTHROPIC_MODEL, "limitUsd": 2}],
    )
    assert FRIEND_KEY_PATTERN.fullmatch(key)
    before = await balance(world, alice)

    async with world.openai(api_key=key) as client:
        raw = await client.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=HELLO)
    assert raw.parse().choices[0].message.content
    assert "x-trollllm-balance-usd" not in raw.headers, "never the owner's balance to a Friend Key"
    openai_cost = Money.from_usd(raw.headers["x-trollllm-cost-usd"])
    assert openai_cost > Money.ZERO

    async with (
        world.anthropic(api_key=key) as client,
        client.messages.stream(model=ANTHROPIC_MODEL, max_tokens=64, messages=HELLO) as stream,
    ):
        text = await stream.get_final_text()
        request_id = stream.response.headers["x-request-id"]
    assert text
    streamed = (await world.gateway.client.get(f"/api/user/requests/{request_id}", headers=alice.auth)).json()
    anthropic_cost = Money.from_usd(streamed["creditsCost"])
    assert anthropic_cost > Money.ZERO and streamed["isFriendKeyRequest"] is True
    assert streamed["userId"] == alice.username, "a friend-key row names its owner"

    assert await balance(world, alice) == before - openai_cost - anthropic_cost
    view = await owner_view(world, alice)
    used = {row["modelId"]: Money.from_usd(row["usedUsd"]) for row in view["modelLimits"]}
    assert used == {OPENAI_MODEL: openai_cost, ANTHROPIC_MODEL: anthropic_cost}
    assert Money.from_usd(view["totalUsedUsd"]) == openai_cost + anthropic_cost
    assert view["requestsCount"] == 2
    assert view["lastUsedAt"] is not None
    assert view["friendKey"] == mask_key(key[-4:])

    history = (await world.gateway.client.get("/api/user/request-history", headers=alice.auth)).json()
    activity = (await world.gateway.client.get("/api/user/friend-key/activity", headers=alice.auth)).json()
    for page in (history, activity):
        assert page["total"] == 2
        assert {row["model"] for row in page["requests"]} == {OPENAI_MODEL, ANTHROPIC_MODEL}
        assert all(row["isFriendKeyRequest"] and row["friendKeyId"] == view["id"] for row in page["requests"])
        assert all(row["userKeyId"] is None for row in page["requests"])
        assert all(row["userId"] == alice.username for row in page["requests"])
    async with world.state.sessions() as session:
        charged = await session.scalar(
            select(func.sum(LedgerEntry.credits_delta_nanos + LedgerEntry.ref_credits_delta_nanos)).where(
                LedgerEntry.kind == "charge"
            )
        )
    assert -int(charged or 0) == (openai_cost + anthropic_cost).nanos, "one ledger charge each, to the owner"

    listed = await world.gateway.client.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert {m["id"] for m in listed.json()["data"]} == {OPENAI_MODEL, ANTHROPIC_MODEL}


async def test_every_friend_key_error_row_on_both_formats(world: World) -> None:
    """SPEC §6, friend-key rows, in their order, on `/v1/chat/completions` and `/v1/messages`."""
    bob = await register_user(world.gateway, "bob")
    await world.admin_call("PATCH", "/api/admin/users/bob", json={"plan": "dev"})
    key = await friend_key(world, bob, [{"modelId": OPENAI_MODEL, "limitUsd": 1}])
    client = world.gateway.client

    async def expect(status: int, error_type: str, message: str | None = None, **kwargs: Any) -> None:
        for wire in FORMATS:
            response = await call(world, wire, key, **kwargs)
            assert response.status_code == status, (wire, response.text)
            error = error_of(wire, response)
            assert error["type"] == error_type, (wire, error)
            if message is not None:
                assert error["message"] == message
            assert "balanceUsd" not in error and "affordableMaxTokens" not in error
            assert "x-trollllm-balance-usd" not in response.headers

    # The Anthropic model is not among the key's limits; then disabled or limited to 0; then no limits.
    assert (await call(world, "openai", key)).status_code == 200
    response = await call(world, "anthropic", key)
    assert response.status_code == 402
    assert error_of("anthropic", response) == {
        "type": "friend_key_model_not_allowed",
        "message": "This model is not enabled for your Friend Key",
    }
    for limits in (
        [
            {"modelId": OPENAI_MODEL, "limitUsd": 1, "enabled": False},
            {"modelId": ANTHROPIC_MODEL, "limitUsd": 0},
        ],
        [],
    ):
        await client.put("/api/user/friend-key/limits", headers=bob.auth, json={"modelLimits": limits})
        await expect(402, "friend_key_model_not_allowed", "This model is not enabled for your Friend Key")

    # A cap that cannot take this request's maximum cost.
    tiny = [{"modelId": m, "limitUsd": 0.0001} for m in (OPENAI_MODEL, ANTHROPIC_MODEL)]
    await client.put("/api/user/friend-key/limits", headers=bob.auth, json={"modelLimits": tiny})
    for wire, (_path, model) in FORMATS.items():
        response = await call(world, wire, key)
        assert response.status_code == 402
        error = error_of(wire, response)
        assert error["type"] == "friend_key_model_limit_exceeded"
        assert error["message"] == "Model spending limit exceeded"
        assert (error["model"], error["limitUsd"], error["usedUsd"]) == (model, 0.0001, 0)

    # The owner cannot cover the hold: the cap errors still come first, then owner_credits_exhausted.
    left = (await balance(world, bob)).to_decimal()
    await world.admin_call(
        "POST",
        "/api/admin/users/bob/credits",
        json={"amountUsd": float(-left), "balance": "credits", "reason": "t"},
    )
    await expect(402, "friend_key_model_limit_exceeded")
    roomy = [{"modelId": m, "limitUsd": 5} for m in (OPENAI_MODEL, ANTHROPIC_MODEL)]
    await client.put("/api/user/friend-key/limits", headers=bob.auth, json={"modelLimits": roomy})
    await expect(402, "owner_credits_exhausted", "API key owner has insufficient credits")
    await expect(404, "model_not_found", model="no-such-model")

    # Owner on a plan without API access, then deactivated (which is checked first).
    await world.admin_call("PATCH", "/api/admin/users/bob", json={"plan": "free"})
    await expect(403, "free_tier_restricted", "Friend Key owner must upgrade plan")
    await world.admin_call("PATCH", "/api/admin/users/bob", json={"isActive": False})
    await expect(401, "owner_inactive", "API key owner account is inactive")

    # The key itself: paused, then malformed in every way.
    await world.admin_call("PATCH", "/api/admin/users/bob", json={"isActive": True, "plan": "dev"})
    assert (await call(world, "openai", key)).status_code == 200  # back on dev: its credits granted again
    login = await client.post("/api/auth/login", json={"username": "bob", "password": PASSWORD})
    bob_auth = {"Authorization": f"Bearer {login.json()['token']}"}  # deactivation ended his sessions
    paused = await client.patch("/api/user/friend-key", headers=bob_auth, json={"isActive": False})
    assert paused.status_code == 200 and paused.json()["isActive"] is False
    await expect(401, "invalid_api_key", "Invalid API key: this Friend Key is paused by its owner")  # SPEC §3
    hex64 = key.removeprefix("sk-trollllm-friend-")
    for bad in (
        key[:-1],  # too short
        "sk-trollllm-friend-" + hex64.upper(),  # uppercase hex
        "sk-trollllm-friends-" + hex64,  # wrong prefix
        "sk-trollllm-friend-" + "a" * 10_000,  # 10 kB header
        "sk-trollllm-friend-" + "0" * 64,  # well formed, unknown
    ):
        for wire in FORMATS:
            response = await call(world, wire, bad)
            assert response.status_code == 401, (wire, bad[:40])
            assert error_of(wire, response)["type"] == "invalid_api_key"
            assert hex64 not in response.text


async def test_rotation_and_deletion_kill_the_old_key_on_the_next_request(world: World) -> None:
    alice = world.user
    old = await friend_key(world, alice, [{"modelId": OPENAI_MODEL, "limitUsd": 1}])
    assert (await call(world, "openai", old)).status_code == 200
    rotated = await world.gateway.client.post("/api/user/friend-key/rotate", headers=alice.auth)
    new = rotated.json()["newFriendKey"]
    assert FRIEND_KEY_PATTERN.fullmatch(new) and new != old
    assert (await call(world, "openai", old)).status_code == 401
    assert (await call(world, "openai", new)).status_code == 200
    view = await owner_view(world, alice)
    assert view["requestsCount"] == 2 and view["modelLimits"][0]["usedUsd"] > 0, "rotation keeps the counters"
    assert (await world.gateway.client.delete("/api/user/friend-key", headers=alice.auth)).status_code == 204
    response = await call(world, "anthropic", new, model=OPENAI_MODEL)
    assert response.status_code == 401
    assert error_of("anthropic", response)["type"] == "invalid_api_key"
    history = (await world.gateway.client.get("/api/user/request-history", headers=alice.auth)).json()
    assert history["total"] == 2, "a deleted key's requests stay in the owner's history"


async def test_rotation_reaches_another_instance_within_a_second(
    tmp_path: Path, clock: ManualClock, database_url: str, redis_prefix: str
) -> None:
    settings = make_settings(tmp_path, database_url, redis_url=REDIS_URL, redis_key_prefix=redis_prefix)
    async with MockUpstream() as mock, serve(settings, clock) as first, serve(settings, clock) as second:
        world = await build_world(first[0], first[1], mock)
        other = World(second[0], second[1], mock, world.admin, world.user)
        old = await friend_key(world, world.user, [{"modelId": OPENAI_MODEL, "limitUsd": 1}])
        assert (await call(other, "openai", old)).status_code == 200
        rotated = await world.gateway.client.post("/api/user/friend-key/rotate", headers=world.user.auth)
        new = rotated.json()["newFriendKey"]
        deadline = asyncio.get_running_loop().time() + 1
        while (await call(other, "openai", old)).status_code != 401:
            assert asyncio.get_running_loop().time() < deadline, (
                "the old key still works on the other instance"
            )
            await asyncio.sleep(0.01)
        assert (await call(other, "openai", new)).status_code == 200
        deactivated = await world.admin_call("PATCH", "/api/admin/users/alice", json={"isActive": False})
        assert deactivated.json()["isActive"] is False
        assert error_of("openai", await call(other, "openai", new))["type"] == "owner_inactive"
