"""The SPEC §6 error table on both endpoint formats, and bad input that must never be a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from helpers import register_user
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World

from trollllm.money import Money

FORMATS = {"openai": ("/v1/chat/completions", OPENAI_MODEL), "anthropic": ("/v1/messages", ANTHROPIC_MODEL)}
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(params=sorted(FORMATS))
def wire(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


async def call(
    world: World, wire: str, body: Any = None, key: str | None = "user", **kwargs: Any
) -> httpx.Response:
    path, model = FORMATS[wire]
    headers = dict(kwargs.pop("headers", {}))
    if key == "user":
        key = world.user.api_key
    if key is not None:
        headers["x-api-key" if wire == "anthropic" else "Authorization"] = (
            key if wire == "anthropic" else f"Bearer {key}"
        )
    if body is None:
        body = {"model": model, "max_tokens": 50, "messages": HELLO}
    if "content" in kwargs:
        return await world.gateway.client.post(path, headers=headers, **kwargs)
    return await world.gateway.client.post(path, headers=headers, json=body, **kwargs)


def error_of(wire: str, response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    if wire == "anthropic":
        assert body["type"] == "error"
    error: dict[str, Any] = body["error"]
    assert error["message"]
    return error


async def balance(world: World) -> Money:
    me = await world.gateway.client.get("/api/user/me", headers=world.user.auth)
    return Money.from_usd(me.json()["credits"]) + Money.from_usd(me.json()["refCredits"])


async def test_no_key_is_401_invalid_api_key(world: World, wire: str) -> None:
    response = await call(world, wire, key=None)
    assert response.status_code == 401
    assert error_of(wire, response)["type"] == "invalid_api_key"
    assert error_of(wire, response)["message"] == "Invalid API key"


@pytest.mark.parametrize(
    "bad_key",
    [
        "sk-trollllm-" + "0" * 64,
        "sk-trollllm-abc",
        "sk-trollllm-" + "A" * 64,
        "sk-other-" + "0" * 64,
        "x" * 10_000,
    ],
)
async def test_unknown_or_malformed_key_is_401(world: World, wire: str, bad_key: str) -> None:
    response = await call(world, wire, key=bad_key)
    assert response.status_code == 401
    assert error_of(wire, response)["type"] == "invalid_api_key"


async def test_rotated_key_is_401_on_the_very_next_request(world: World, wire: str) -> None:
    assert (await call(world, wire)).status_code == 200
    rotated = await world.gateway.client.post("/api/user/api-key/rotate", headers=world.user.auth)
    assert rotated.status_code == 200
    response = await call(world, wire)
    assert response.status_code == 401
    assert (await call(world, wire, key=rotated.json()["newApiKey"])).status_code == 200


async def test_inactive_owner_is_401_owner_inactive(world: World, wire: str) -> None:
    await world.admin_call("PATCH", f"/api/admin/users/{world.user.username}", json={"isActive": False})
    response = await call(world, wire)
    assert response.status_code == 401
    assert error_of(wire, response)["type"] == "owner_inactive"


async def test_free_plan_is_403_free_tier_restricted(world: World, wire: str) -> None:
    free = await register_user(world.gateway, "freeloader")
    response = await call(world, wire, key=free.api_key)
    assert response.status_code == 403
    assert error_of(wire, response)["type"] == "free_tier_restricted"


async def test_unknown_model_is_404_model_not_found(world: World, wire: str) -> None:
    response = await call(world, wire, {"model": "no-such-model", "max_tokens": 5, "messages": HELLO})
    assert response.status_code == 404
    assert error_of(wire, response)["type"] == "model_not_found"


async def test_disabled_model_is_404_model_not_found(world: World, wire: str) -> None:
    _, model = FORMATS[wire]
    current = (await world.admin_call("GET", "/api/admin/models")).json()
    row = next(m for m in current if m["modelId"] == model)
    await world.admin_call("PUT", f"/api/admin/models/{model}", json={**row, "enabled": False})
    response = await call(world, wire)
    assert response.status_code == 404
    assert error_of(wire, response)["type"] == "model_not_found"


async def test_model_of_the_other_format_refuses_an_untranslatable_field_naming_it(
    world: World, wire: str
) -> None:
    other = ANTHROPIC_MODEL if wire == "openai" else OPENAI_MODEL
    body = {"model": other, "max_tokens": 5, "messages": HELLO, "vendor_flag": True}
    response = await call(world, wire, body)
    assert response.status_code == 400
    error = error_of(wire, response)
    assert error["type"] == "invalid_request_error" and error["field"] == "vendor_flag"
    assert world.mock.request_count == 0


async def test_insufficient_credits_is_402_before_anything_goes_upstream(world: World, wire: str) -> None:
    poor = await register_user(world.gateway, "poor")
    await world.admin_call("PATCH", "/api/admin/users/poor", json={"plan": "pro-troll"})  # $0 grant
    await world.admin_call(
        "POST",
        "/api/admin/users/poor/credits",
        json={"amountUsd": 0.001, "balance": "credits", "reason": "t"},
    )
    sent_before = world.mock.request_count
    _path, model = FORMATS[wire]
    response = await call(
        world, wire, {"model": model, "max_tokens": 4000, "messages": HELLO}, key=poor.api_key
    )
    assert response.status_code == 402
    error = error_of(wire, response)
    assert error["type"] == "insufficient_credits"
    assert error["balanceUsd"] == 0.001
    assert error["requiredUsd"] > 0.001
    assert 1 <= error["affordableMaxTokens"] < 4000
    assert world.mock.request_count == sent_before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": HELLO}, "model"),
        ({"model": "MODEL"}, "messages"),
        ({"model": "MODEL", "messages": []}, "messages"),
        ({"model": "MODEL", "messages": HELLO, "stream": "yes"}, "stream"),
        ({"model": "MODEL", "messages": HELLO, "max_tokens": -5}, "max_tokens"),
        ({"model": "MODEL", "messages": HELLO, "max_tokens": 10**12}, "max_tokens"),
        ({"model": "MODEL", "messages": HELLO, "max_tokens": "many"}, "max_tokens"),
        ({"model": "MODEL", "messages": HELLO, "max_tokens": 5000}, "max_tokens"),
        ([1, 2, 3], "body"),
    ],
)
async def test_bad_body_is_400_naming_the_field(world: World, wire: str, body: Any, field: str) -> None:
    _, model = FORMATS[wire]
    if isinstance(body, dict) and body.get("model") == "MODEL":
        body = {**body, "model": model}
    response = await call(world, wire, body)
    assert response.status_code == 400
    error = error_of(wire, response)
    assert error["type"] == "invalid_request_error"
    assert error["field"] == field


async def test_non_json_body_is_400(world: World, wire: str) -> None:
    response = await call(world, wire, content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert error_of(wire, response)["field"] == "body"


async def test_ten_megabyte_body_is_413(world: World, wire: str) -> None:
    response = await call(
        world, wire, content=b"x" * (10 * 1024 * 1024), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert error_of(wire, response)["type"] == "invalid_request_error"


async def test_upstream_error_keeps_its_status_and_charges_nothing(world: World, wire: str) -> None:
    before = await balance(world)
    _path, model = FORMATS[wire]
    body = {
        "model": model,
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "x [mock status=400]"}],
    }
    response = await call(world, wire, body)
    assert response.status_code == 400
    assert await balance(world) == before


async def test_no_healthy_factory_key_is_503_upstream_unavailable(world: World, wire: str) -> None:
    for key in (await world.admin_call("GET", "/api/admin/factory-keys")).json():
        await world.admin_call("PATCH", f"/api/admin/factory-keys/{key['id']}", json={"status": "disabled"})
    before = await balance(world)
    response = await call(world, wire)
    assert response.status_code == 503
    assert error_of(wire, response)["type"] == "upstream_unavailable"
    assert await balance(world) == before


async def test_upstream_5xx_on_every_key_charges_nothing(world: World, wire: str) -> None:
    before = await balance(world)
    _path, model = FORMATS[wire]
    body = {
        "model": model,
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "x [mock status=500]"}],
    }
    response = await call(world, wire, body)
    assert response.status_code >= 500
    assert await balance(world) == before


async def test_malformed_upstream_json_is_not_a_500_traceback(world: World, wire: str) -> None:
    _path, model = FORMATS[wire]
    body = {
        "model": model,
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "x [mock bad_json=1]"}],
    }
    response = await call(world, wire, body)
    assert response.status_code in (200, 502)
    assert "Traceback" not in response.text


async def test_a_wrong_method_is_405_in_the_endpoints_format_with_allow(world: World, wire: str) -> None:
    path, _ = FORMATS[wire]
    response = await world.gateway.client.get(path, headers={"Authorization": f"Bearer {world.user.api_key}"})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["x-request-id"].startswith("req_")
    assert error_of(wire, response)["type"] == "method_not_allowed"
