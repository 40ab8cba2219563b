"""SPEC §3 Friend Key lifecycle: pause, expiry, model caps that reset at 00:00 in the owner's time zone."""

from __future__ import annotations

from datetime import UTC, datetime

from proxy_world import OPENAI_MODEL, World

from trollllm.clock import ManualClock

# 4,000 output tokens at $25 / MTok: about $0.10 each.
BIG = {
    "model": OPENAI_MODEL,
    "max_tokens": 4000,
    "messages": [{"role": "user", "content": "[mock reply_tokens=4000] hello"}],
}


async def friend_key(world: World, limit_usd: float, reset_period: str = "none") -> str:
    client = world.gateway.client
    created = await client.post("/api/user/friend-key", headers=world.user.auth)
    assert created.status_code == 201, created.text
    limits = [{"modelId": OPENAI_MODEL, "limitUsd": limit_usd, "enabled": True, "resetPeriod": reset_period}]
    put = await client.put(
        "/api/user/friend-key/limits", headers=world.user.auth, json={"modelLimits": limits}
    )
    assert put.status_code == 200, put.text
    key: str = created.json()["friendKey"]
    return key


async def ask(world: World, key: str) -> tuple[int, dict[str, str]]:
    reply = await world.gateway.client.post(
        "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, json=BIG
    )
    error = reply.json().get("error", {}) if reply.status_code >= 400 else {}
    return reply.status_code, error


async def test_a_paused_friend_key_is_an_invalid_key_saying_it_is_paused(world: World) -> None:
    key = await friend_key(world, 5)
    patched = await world.gateway.client.patch(
        "/api/user/friend-key", headers=world.user.auth, json={"isActive": False}
    )
    assert patched.status_code == 200 and patched.json()["isActive"] is False
    status, error = await ask(world, key)
    assert (status, error["type"]) == (401, "invalid_api_key") and "paused" in error["message"]
    await world.gateway.client.patch("/api/user/friend-key", headers=world.user.auth, json={"isActive": True})
    assert (await ask(world, key))[0] == 200


async def test_an_expired_friend_key_is_an_invalid_key_saying_it_expired(
    world: World, clock: ManualClock
) -> None:
    key = await friend_key(world, 5)
    expires = "2026-01-20T00:00:00Z"
    patched = await world.gateway.client.patch(
        "/api/user/friend-key", headers=world.user.auth, json={"expiresAt": expires}
    )
    assert patched.status_code == 200 and patched.json()["expiresAt"] == expires
    assert patched.json()["isActive"] is True  # a field left out is kept
    assert (await ask(world, key))[0] == 200
    clock.set(datetime(2026, 1, 20, tzinfo=UTC))
    status, error = await ask(world, key)
    assert (status, error["type"]) == (401, "invalid_api_key") and "expired" in error["message"]
    cleared = await world.gateway.client.patch(
        "/api/user/friend-key", headers=world.user.auth, json={"expiresAt": None}
    )
    assert cleared.json()["expiresAt"] is None
    assert (await ask(world, key))[0] == 200


async def test_a_daily_cap_resets_at_the_owners_midnight_and_not_before(
    world: World, clock: ManualClock
) -> None:
    client = world.gateway.client
    settings = await client.put(
        "/api/user/settings", headers=world.user.auth, json={"timeZone": "Asia/Tokyo"}
    )
    assert settings.status_code == 200, settings.text
    clock.set(datetime(2026, 1, 15, 10, 0, tzinfo=UTC))  # 19:00 in Tokyo
    key = await friend_key(world, 0.15, "daily")
    shown = (await client.get("/api/user/friend-key", headers=world.user.auth)).json()["modelLimits"][0]
    midnight_tokyo = "2026-01-15T15:00:00Z"  # 00:00 on the 16th in Tokyo (UTC+9)
    assert (shown["resetPeriod"], shown["nextResetAt"]) == ("daily", midnight_tokyo)
    assert (await ask(world, key))[0] == 200
    status, error = await ask(world, key)
    assert (status, error["type"]) == (402, "friend_key_model_limit_exceeded")
    clock.set(datetime(2026, 1, 15, 14, 59, 59, tzinfo=UTC))  # one second before the owner's midnight
    assert (await ask(world, key))[0] == 402
    clock.set(datetime(2026, 1, 15, 15, 0, tzinfo=UTC))
    assert (await ask(world, key))[0] == 200
    shown = (await client.get("/api/user/friend-key", headers=world.user.auth)).json()["modelLimits"][0]
    assert shown["nextResetAt"] == "2026-01-16T15:00:00Z" and 0 < shown["usedUsd"] <= 0.15


async def test_bad_reset_periods_and_time_zones_are_a_400_naming_the_field(world: World) -> None:
    client = world.gateway.client
    await client.post("/api/user/friend-key", headers=world.user.auth)
    limits = [{"modelId": OPENAI_MODEL, "limitUsd": 1, "resetPeriod": "hourly"}]
    put = await client.put(
        "/api/user/friend-key/limits", headers=world.user.auth, json={"modelLimits": limits}
    )
    assert put.status_code == 400 and put.json()["error"]["field"] == "modelLimits[0].resetPeriod"
    zone = await client.put("/api/user/settings", headers=world.user.auth, json={"timeZone": "Mars/Olympus"})
    assert zone.status_code == 400 and zone.json()["error"]["field"] == "timeZone"
    assert (await client.get("/api/user/settings", headers=world.user.auth)).json() == {"timeZone": "UTC"}
