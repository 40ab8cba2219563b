"""The Friend Key management API (SPEC §7): create once, masked read, rotate, pause, delete, limits set all
at once (bad rows refused by name, nothing changed), usage and activity."""

from __future__ import annotations

from typing import Any

import httpx
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World
from sqlalchemy import update

from trollllm.crypto import FRIEND_KEY_PATTERN, mask_key
from trollllm.friendkeys.tables import FriendKey, FriendKeyModelLimit

BASE = "/api/user/friend-key"
FIELDS = {
    "id", "friendKey", "ownerId", "isActive", "modelLimits", "totalUsedUsd", "requestsCount", "lastUsedAt",
    "createdAt", "expiresAt",
}  # fmt: skip
NO_RESET = {"resetPeriod": "none", "nextResetAt": None}


async def api(world: World, method: str, path: str = "", **kwargs: Any) -> httpx.Response:
    """A call as alice."""
    headers = {**world.user.auth, **kwargs.pop("headers", {})}
    return await world.gateway.client.request(method, BASE + path, headers=headers, **kwargs)


async def set_used(world: World, key_id: int, model_id: str, used_nanos: int) -> None:
    async with world.state.sessions() as session, session.begin():
        await session.execute(
            update(FriendKeyModelLimit)
            .where(FriendKeyModelLimit.friend_key_id == key_id, FriendKeyModelLimit.model_id == model_id)
            .values(used_nanos=used_nanos)
        )


async def test_create_shows_the_full_key_once_then_only_masked(world: World) -> None:
    assert (await api(world, "GET")).status_code == 404
    async with httpx.AsyncClient(base_url=world.base_url) as anonymous:
        assert (await anonymous.post(BASE)).status_code == 401
    created = await api(world, "POST")
    assert created.status_code == 201
    body = created.json()
    assert FRIEND_KEY_PATTERN.fullmatch(body["friendKey"])
    assert set(body) == FIELDS
    assert body["ownerId"] == "alice" and body["isActive"] is True and body["modelLimits"] == []
    assert (body["totalUsedUsd"], body["requestsCount"], body["lastUsedAt"]) == (0, 0, None)
    shown = (await api(world, "GET")).json()
    assert shown["friendKey"] == mask_key(body["friendKey"][-4:])
    assert body["friendKey"][-64:-4] not in (await api(world, "GET")).text
    again = await api(world, "POST")
    assert again.status_code == 409 and again.json()["error"]["type"] == "conflict"
    assert (await api(world, "GET")).json()["friendKey"] == shown["friendKey"], "the first key is kept"


async def test_rotate_pause_and_delete(world: World) -> None:
    for method, path in (
        ("POST", "/rotate"),
        ("DELETE", ""),
        ("PATCH", ""),
        ("GET", "/usage"),
        ("GET", "/activity"),
    ):
        response = await api(world, method, path, json={"isActive": False} if method == "PATCH" else None)
        assert response.status_code == 404, (method, path)
    first = (await api(world, "POST")).json()["friendKey"]
    rotated = await api(world, "POST", "/rotate")
    assert set(rotated.json()) == {"newFriendKey"}
    new = rotated.json()["newFriendKey"]
    assert FRIEND_KEY_PATTERN.fullmatch(new) and new != first
    assert (await api(world, "GET")).json()["friendKey"] == mask_key(new[-4:])
    paused = await api(world, "PATCH", json={"isActive": False})
    assert paused.status_code == 200 and paused.json()["isActive"] is False
    assert (await api(world, "PATCH", json={"isActive": "no"})).status_code == 422
    assert (await api(world, "DELETE")).status_code == 204
    assert (await api(world, "GET")).status_code == 404
    assert (await api(world, "POST")).status_code == 201, "a new key after deletion"


async def test_limits_are_set_all_at_once_and_keep_what_was_used(world: World) -> None:
    key_id = (await api(world, "POST")).json()["id"]
    both = [
        {"modelId": OPENAI_MODEL, "limitUsd": 5, "enabled": True},
        {"modelId": ANTHROPIC_MODEL, "limitUsd": 1.25},
    ]
    put = await api(world, "PUT", "/limits", json={"modelLimits": both})
    assert put.status_code == 200, put.text
    assert put.json()["modelLimits"] == [
        {"modelId": ANTHROPIC_MODEL, "limitUsd": 1.25, "usedUsd": 0, "enabled": True, **NO_RESET},
        {"modelId": OPENAI_MODEL, "limitUsd": 5, "usedUsd": 0, "enabled": True, **NO_RESET},
    ]
    await set_used(world, key_id, OPENAI_MODEL, 3_500_000_000)  # $3.50
    await set_used(world, key_id, ANTHROPIC_MODEL, 250_000_000)
    usage = (await api(world, "GET", "/usage")).json()
    assert usage["models"] == [
        {"modelId": ANTHROPIC_MODEL, "limitUsd": 1.25, "usedUsd": 0.25, "percentage": 20.0, "enabled": True},
        {"modelId": OPENAI_MODEL, "limitUsd": 5, "usedUsd": 3.5, "percentage": 70.0, "enabled": True},
    ]
    assert usage["totals"] == {"limitUsd": 6.25, "usedUsd": 3.75, "percentage": 60.0}
    assert set(usage) == {"models", "totals", "totalUsedUsd", "requestsCount", "lastUsedAt"}

    only_openai = [{"modelId": OPENAI_MODEL, "limitUsd": "7"}]
    assert (await api(world, "PUT", "/limits", json={"modelLimits": only_openai})).status_code == 400
    only_openai = [{"modelId": OPENAI_MODEL, "limitUsd": 7, "enabled": False, "usedUsd": 0}]
    put = await api(world, "PUT", "/limits", json={"modelLimits": only_openai})
    assert put.json()["modelLimits"] == [
        {"modelId": OPENAI_MODEL, "limitUsd": 7, "usedUsd": 3.5, "enabled": False, **NO_RESET}
    ]
    assert (await api(world, "PUT", "/limits", json={"modelLimits": []})).json()["modelLimits"] == []


async def test_bad_limits_are_a_400_naming_the_row_and_change_nothing(world: World) -> None:
    await api(world, "POST")
    good = {"modelId": OPENAI_MODEL, "limitUsd": 2}
    await api(world, "PUT", "/limits", json={"modelLimits": [good]})
    before = (await api(world, "GET")).json()
    rows = await world.admin_call("GET", "/api/admin/models")
    model = next(m for m in rows.json() if m["modelId"] == ANTHROPIC_MODEL)
    await world.admin_call("PUT", f"/api/admin/models/{ANTHROPIC_MODEL}", json={**model, "enabled": False})

    def limits(*rows: Any) -> dict[str, Any]:
        return {"modelLimits": [good, *rows]}

    cases: list[tuple[Any, str]] = [
        (limits({"modelId": "no-such-model", "limitUsd": 1}), "modelLimits[1].modelId"),
        (limits({"modelId": ANTHROPIC_MODEL, "limitUsd": 1}), "modelLimits[1].modelId"),  # disabled model
        (limits({"modelId": OPENAI_MODEL, "limitUsd": 1}), "modelLimits[1].modelId"),  # duplicate
        (limits({"modelId": 5, "limitUsd": 1}), "modelLimits[1].modelId"),
        (limits({"limitUsd": 1}), "modelLimits[1].modelId"),
        (limits({"modelId": OPENAI_MODEL}), "modelLimits[1].modelId"),
        ({"modelLimits": [{**good, "limitUsd": -1}]}, "modelLimits[0].limitUsd"),
        ({"modelLimits": [{**good, "limitUsd": 1e308}]}, "modelLimits[0].limitUsd"),
        ({"modelLimits": [{**good, "limitUsd": 10000.01}]}, "modelLimits[0].limitUsd"),  # over the ceiling
        ({"modelLimits": [{**good, "limitUsd": 1e-10}]}, "modelLimits[0].limitUsd"),
        ({"modelLimits": [{**good, "limitUsd": "5"}]}, "modelLimits[0].limitUsd"),
        ({"modelLimits": [{**good, "limitUsd": True}]}, "modelLimits[0].limitUsd"),
        ({"modelLimits": [{**good, "limitUsd": None}]}, "modelLimits[0].limitUsd"),
        ({"modelLimits": [{**good, "enabled": "yes"}]}, "modelLimits[0].enabled"),
        ({"modelLimits": ["gpt-test"]}, "modelLimits[0]"),
        ({"modelLimits": {"gpt-test": 5}}, "modelLimits"),
        ({"modelLimits": [good] * 1001}, "modelLimits"),
        ({}, "modelLimits"),
        ([good], "modelLimits"),
    ]
    for body, field in cases:
        response = await api(world, "PUT", "/limits", json=body)
        assert response.status_code == 400, (body, response.text)
        error = response.json()["error"]
        assert (error["type"], error["field"]) == ("invalid_request_error", field), body
        assert field in error["message"], error
    for raw in (
        b'{"modelLimits": [{"modelId": "gpt-test", "limitUsd": NaN}]}',
        b'{"modelLimits": [{"modelId": "gpt-test", "limitUsd": Infinity}]}',
        b'{"modelLimits": [{"modelId": "gpt-test", "limitUsd": 1' + b"0" * 400 + b"}]}",
        b"{not json",
        b"",
    ):
        response = await api(
            world, "PUT", "/limits", content=raw, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, raw
    assert (await api(world, "GET")).json() == before, "nothing changed"
    ceiling = await api(world, "PUT", "/limits", json={"modelLimits": [{**good, "limitUsd": 10000}]})
    assert ceiling.status_code == 200 and ceiling.json()["modelLimits"][0]["limitUsd"] == 10000


async def test_activity_pages_and_filters_like_the_request_history(world: World) -> None:
    key = (await api(world, "POST")).json()["friendKey"]
    await api(world, "PUT", "/limits", json={"modelLimits": [{"modelId": OPENAI_MODEL, "limitUsd": 1}]})
    client = world.gateway.client
    body = {"model": OPENAI_MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(3):
        response = await client.post(
            "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, json=body
        )
        assert response.status_code == 200
    own = await client.post(
        "/v1/chat/completions", headers={"Authorization": f"Bearer {world.user.api_key}"}, json=body
    )
    assert own.status_code == 200
    page = (await api(world, "GET", "/activity", params={"limit": 2, "page": 2})).json()
    assert (page["total"], page["page"], page["limit"], page["totalPages"]) == (3, 2, 2, 2)
    assert len(page["requests"]) == 1 and page["requests"][0]["isFriendKeyRequest"] is True
    history = (await client.get("/api/user/request-history", headers=world.user.auth)).json()
    assert history["total"] == 4, "the owner's history has both kinds"
    today = world.state.clock.now().date().isoformat()
    assert (await api(world, "GET", "/activity", params={"from": today, "to": today})).json()["total"] == 3
    assert (await api(world, "GET", "/activity", params={"to": "2000-01-01"})).json()["total"] == 0
    bad = await api(world, "GET", "/activity", params={"from": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "from"
    assert (await api(world, "GET", "/activity", params={"limit": 101})).status_code == 400
    usage = (await api(world, "GET", "/usage")).json()
    assert usage["requestsCount"] == 3 and usage["totalUsedUsd"] == usage["totals"]["usedUsd"] > 0


async def test_the_endpoints_are_in_the_openapi_document(world: World) -> None:
    paths = (await world.gateway.client.get("/openapi.json")).json()["paths"]
    for path in (BASE, f"{BASE}/rotate", f"{BASE}/limits", f"{BASE}/usage", f"{BASE}/activity"):
        assert path in paths
    assert "requestBody" in paths[f"{BASE}/limits"]["put"]


async def test_the_owner_can_reveal_the_full_key_until_it_is_rotated_and_then_the_new_one(
    world: World,
) -> None:
    created = (await api(world, "POST")).json()["friendKey"]
    assert (await api(world, "GET", "/reveal")).json() == {"friendKey": created}
    rotated = (await api(world, "POST", "/rotate")).json()["newFriendKey"]
    assert (await api(world, "GET", "/reveal")).json() == {"friendKey": rotated}
    async with world.state.sessions() as session, session.begin():  # a key made before copies were kept
        await session.execute(update(FriendKey).values(key_encrypted=None))
    refused = await api(world, "GET", "/reveal")
    assert refused.status_code == 409 and "rotate it" in refused.json()["error"]["message"]


async def test_friend_key_reveals_count_against_the_key_reveal_budget(world: World) -> None:
    await api(world, "POST")
    answers = [(await api(world, "GET", "/reveal")).status_code for _ in range(10)]
    # register_user revealed the API key once: 9 of the 10 an hour are left.
    assert answers == [200] * 9 + [429]
