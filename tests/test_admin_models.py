"""Admin models and prices (SPEC §4, §7): `GET/POST /api/admin/models`, `PUT/DELETE …/{modelId}`."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from conftest import AppHarness
from helpers import Account, make_admin
from sqlalchemy import select

from trollllm.audit.tables import AuditEntry
from trollllm.pricing.service import enabled_models, load_model

MODEL: dict[str, Any] = {
    "modelId": "claude-sonnet",
    "provider": "anthropic",
    "upstreamModel": "claude-sonnet-4-20250514",
    "inputPricePerMTok": 3,
    "outputPricePerMTok": 15,
    "cacheWritePricePerMTok": 3.75,
    "cacheHitPricePerMTok": "0.3",
    "maxOutputTokens": 64_000,
    "enabled": True,
}


@pytest.fixture
async def admin(gateway: AppHarness) -> Account:
    return await make_admin(gateway)


async def create(gateway: AppHarness, admin: Account, **changes: Any) -> dict[str, Any]:
    response = await gateway.client.post("/api/admin/models", headers=admin.auth, json=MODEL | changes)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def list_models(gateway: AppHarness, admin: Account) -> list[dict[str, Any]]:
    response = await gateway.client.get("/api/admin/models", headers=admin.auth)
    assert response.status_code == 200
    body: list[dict[str, Any]] = response.json()
    return body


async def audit_actions(gateway: AppHarness) -> list[str]:
    async with gateway.state.sessions() as session:
        return list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


async def test_created_model_is_listed_with_prices_as_json_numbers(any_gateway: AppHarness) -> None:
    admin = await make_admin(any_gateway)
    created = await create(any_gateway, admin)
    assert created["inputPricePerMTok"] == 3
    assert created["cacheWritePricePerMTok"] == 3.75
    assert created["cacheHitPricePerMTok"] == 0.3
    assert await list_models(any_gateway, admin) == [created]


async def test_prices_are_stored_exactly_in_nano_dollars(gateway: AppHarness, admin: Account) -> None:
    await create(gateway, admin, inputPricePerMTok="0.000000001", outputPricePerMTok=0.1)
    async with gateway.state.sessions() as session:
        row = await load_model(session, "claude-sonnet")
    assert row is not None
    assert (row.input_price_nanos, row.output_price_nanos) == (1, 100_000_000)


async def test_cache_prices_default_to_zero_and_enabled_to_true(gateway: AppHarness, admin: Account) -> None:
    body = {
        k: v
        for k, v in MODEL.items()
        if k not in {"cacheWritePricePerMTok", "cacheHitPricePerMTok", "enabled"}
    }
    response = await gateway.client.post("/api/admin/models", headers=admin.auth, json=body)
    assert response.status_code == 201
    assert response.json()["cacheWritePricePerMTok"] == 0
    assert response.json()["cacheHitPricePerMTok"] == 0
    assert response.json()["enabled"] is True


async def test_duplicate_model_id_is_409_naming_model_id(any_gateway: AppHarness) -> None:
    admin = await make_admin(any_gateway)
    await create(any_gateway, admin)
    response = await any_gateway.client.post("/api/admin/models", headers=admin.auth, json=MODEL)
    assert response.status_code == 409
    assert response.json()["error"]["field"] == "modelId"


async def test_put_replaces_every_field_and_keeps_the_id(any_gateway: AppHarness) -> None:
    admin = await make_admin(any_gateway)
    await create(any_gateway, admin)
    replacement = {
        "provider": "openai",
        "upstreamModel": "gpt-4o",
        "inputPricePerMTok": "2.5",
        "outputPricePerMTok": 10,
        "maxOutputTokens": 16_384,
        "enabled": False,
        "modelId": "ignored-in-body",
    }
    response = await any_gateway.client.put(
        "/api/admin/models/claude-sonnet", headers=admin.auth, json=replacement
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["modelId"] == "claude-sonnet"
    assert (body["provider"], body["upstreamModel"], body["enabled"]) == ("openai", "gpt-4o", False)
    assert (body["inputPricePerMTok"], body["outputPricePerMTok"]) == (2.5, 10)
    assert (body["cacheWritePricePerMTok"], body["cacheHitPricePerMTok"]) == (0, 0)
    assert body["maxOutputTokens"] == 16_384


async def test_concurrent_creates_of_one_id_give_one_201_and_409s(any_gateway: AppHarness) -> None:
    admin = await make_admin(any_gateway)
    responses = await asyncio.gather(
        *(any_gateway.client.post("/api/admin/models", headers=admin.auth, json=MODEL) for _ in range(6))
    )
    assert sorted(response.status_code for response in responses) == [201] + [409] * 5


async def test_put_missing_a_field_is_422_naming_it(gateway: AppHarness, admin: Account) -> None:
    created = await create(gateway, admin)
    body = {k: v for k, v in MODEL.items() if k != "maxOutputTokens"}
    response = await gateway.client.put("/api/admin/models/claude-sonnet", headers=admin.auth, json=body)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "maxOutputTokens"
    assert await list_models(gateway, admin) == [created]


async def test_put_of_an_unknown_model_is_404(gateway: AppHarness, admin: Account) -> None:
    response = await gateway.client.put("/api/admin/models/nope", headers=admin.auth, json=MODEL)
    assert response.status_code == 404


async def test_delete_removes_the_model(any_gateway: AppHarness) -> None:
    admin = await make_admin(any_gateway)
    await create(any_gateway, admin)
    response = await any_gateway.client.delete("/api/admin/models/claude-sonnet", headers=admin.auth)
    assert response.status_code == 204
    assert await list_models(any_gateway, admin) == []


async def test_delete_of_an_unknown_model_is_404(gateway: AppHarness, admin: Account) -> None:
    response = await gateway.client.delete("/api/admin/models/nope", headers=admin.auth)
    assert response.status_code == 404


async def test_model_ids_with_slashes_and_colons_are_addressable(gateway: AppHarness, admin: Account) -> None:
    await create(gateway, admin, modelId="openai/gpt-4o:latest")
    body = MODEL | {"upstreamModel": "gpt-4o-2024-08-06"}
    put = await gateway.client.put("/api/admin/models/openai/gpt-4o:latest", headers=admin.auth, json=body)
    assert put.status_code == 200
    assert put.json()["upstreamModel"] == "gpt-4o-2024-08-06"
    delete = await gateway.client.delete("/api/admin/models/openai/gpt-4o:latest", headers=admin.auth)
    assert delete.status_code == 204


async def test_every_write_is_audited(gateway: AppHarness, admin: Account) -> None:
    await create(gateway, admin)
    await gateway.client.put("/api/admin/models/claude-sonnet", headers=admin.auth, json=MODEL)
    await gateway.client.delete("/api/admin/models/claude-sonnet", headers=admin.auth)
    assert await audit_actions(gateway) == ["model.create", "model.update", "model.delete"]


async def test_price_change_applies_to_the_next_read(gateway: AppHarness, admin: Account) -> None:
    await create(gateway, admin)
    await gateway.client.put(
        "/api/admin/models/claude-sonnet", headers=admin.auth, json=MODEL | {"outputPricePerMTok": 20}
    )
    async with gateway.state.sessions() as session:
        row = await load_model(session, "claude-sonnet")
    assert row is not None
    assert row.output_price_nanos == 20_000_000_000


async def test_enabled_models_leaves_out_disabled_ones(gateway: AppHarness, admin: Account) -> None:
    await create(gateway, admin, modelId="b-on")
    await create(gateway, admin, modelId="a-off", enabled=False)
    await create(gateway, admin, modelId="a-on")
    async with gateway.state.sessions() as session:
        assert [row.model_id for row in await enabled_models(session)] == ["a-on", "b-on"]
        assert await load_model(session, "a-off") is not None
        assert await load_model(session, "missing") is None


async def test_html_in_upstream_model_is_stored_as_given(gateway: AppHarness, admin: Account) -> None:
    created = await create(gateway, admin, upstreamModel='<script>alert("x")</script>')
    assert created["upstreamModel"] == '<script>alert("x")</script>'
    assert (await list_models(gateway, admin))[0]["upstreamModel"] == '<script>alert("x")</script>'


async def test_extra_fields_are_ignored(gateway: AppHarness, admin: Account) -> None:
    created = await create(gateway, admin, surprise="yes", createdAt="1999-01-01")
    assert "surprise" not in created
    assert created["createdAt"].startswith("2026-")


@pytest.mark.parametrize(
    ("raw_value", "field"),
    [
        (b"-1", "inputPricePerMTok"),
        (b'"-0.5"', "inputPricePerMTok"),
        (b"NaN", "inputPricePerMTok"),
        (b"Infinity", "inputPricePerMTok"),
        (b"1e308", "inputPricePerMTok"),
        (b'"1e308"', "inputPricePerMTok"),
        (b'"abc"', "inputPricePerMTok"),
        (b'"0.0000000001"', "inputPricePerMTok"),
        (b"1" + b"0" * 400, "inputPricePerMTok"),
    ],
)
async def test_invalid_price_is_400_naming_the_field_and_writes_nothing(
    gateway: AppHarness, admin: Account, raw_value: bytes, field: str
) -> None:
    body = orjson.dumps(MODEL | {field: "PLACEHOLDER"}).replace(b'"PLACEHOLDER"', raw_value)
    headers = admin.auth | {"content-type": "application/json"}
    response = await gateway.client.post("/api/admin/models", headers=headers, content=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == field
    assert await list_models(gateway, admin) == []


@pytest.mark.parametrize("field", ["outputPricePerMTok", "cacheWritePricePerMTok", "cacheHitPricePerMTok"])
async def test_every_price_field_is_checked(gateway: AppHarness, admin: Account, field: str) -> None:
    response = await gateway.client.post("/api/admin/models", headers=admin.auth, json=MODEL | {field: -1})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"modelId": None}, "modelId"),
        ({"modelId": "has space"}, "modelId"),
        ({"modelId": "<b>x</b>"}, "modelId"),
        ({"modelId": "x" * 10_000}, "modelId"),
        ({"modelId": ""}, "modelId"),
        ({"modelId": 42}, "modelId"),
        ({"provider": "mistral"}, "provider"),
        ({"provider": None}, "provider"),
        ({"upstreamModel": ""}, "upstreamModel"),
        ({"upstreamModel": "x" * 10_000}, "upstreamModel"),
        ({"inputPricePerMTok": True}, "inputPricePerMTok"),
        ({"inputPricePerMTok": [1]}, "inputPricePerMTok"),
        ({"inputPricePerMTok": "1" * 100}, "inputPricePerMTok"),
        ({"maxOutputTokens": 0}, "maxOutputTokens"),
        ({"maxOutputTokens": -5}, "maxOutputTokens"),
        ({"maxOutputTokens": 1_000_001}, "maxOutputTokens"),
        ({"maxOutputTokens": "100"}, "maxOutputTokens"),
        ({"maxOutputTokens": 1.5}, "maxOutputTokens"),
        ({"enabled": "yes"}, "enabled"),
    ],
)
async def test_malformed_model_is_422_naming_the_field(
    gateway: AppHarness, admin: Account, changes: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in (MODEL | changes).items() if v is not None}
    response = await gateway.client.post("/api/admin/models", headers=admin.auth, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert await list_models(gateway, admin) == []


async def test_bad_put_changes_nothing(gateway: AppHarness, admin: Account) -> None:
    created = await create(gateway, admin)
    bad = MODEL | {"upstreamModel": "changed", "outputPricePerMTok": "NaN"}
    response = await gateway.client.put("/api/admin/models/claude-sonnet", headers=admin.auth, json=bad)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "outputPricePerMTok"
    assert await list_models(gateway, admin) == [created]
    assert await audit_actions(gateway) == ["model.create"]


async def test_malformed_json_is_a_4xx(gateway: AppHarness, admin: Account) -> None:
    headers = admin.auth | {"content-type": "application/json"}
    response = await gateway.client.post("/api/admin/models", headers=headers, content=b"{nope")
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "invalid_request_error"
