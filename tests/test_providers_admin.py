"""Providers are rows (issue 15): `GET/POST /api/admin/providers`, `PUT /api/admin/providers/{name}`; a model
row or a factory key may name any provider row and nothing else (422 naming `provider`, listing the known
ones), and the database holds them to it (migration 0010: foreign keys instead of the openai/anthropic CHECK).
"""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from conftest import NO_PROVIDER_URL, AppHarness
from helpers import Account, make_admin
from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import IntegrityError

from trollllm.audit.tables import AuditEntry
from trollllm.db import UtcDateTime, utcnow
from trollllm.migrate import alembic_config
from trollllm.pricing.tables import LlmModel

SEEDED = {"anthropic": "anthropic", "gemini": "openai", "groq": "openai", "openai": "openai"}
DEEPSEEK = {"name": "deepseek", "displayName": "DeepSeek", "wireFormat": "openai",
            "baseUrl": "https://api.deepseek.com/v1/"}  # fmt: skip
MODEL: dict[str, Any] = {
    "modelId": "llama-3.3-70b",
    "provider": "groq",
    "upstreamModel": "llama-3.3-70b-versatile",
    "inputPricePerMTok": "0.59",
    "outputPricePerMTok": "0.79",
    "maxOutputTokens": 32_768,
}
FACTORY_KEY = {"name": "groq primary", "provider": "groq", "baseUrl": "https://api.groq.com/openai/v1",
               "apiKey": "gsk_factory_key_abcd"}  # fmt: skip


@pytest.fixture
async def admin(gateway: AppHarness) -> Account:
    return await make_admin(gateway)


async def providers(gateway: AppHarness, admin: Account) -> dict[str, dict[str, Any]]:
    response = await gateway.client.get("/api/admin/providers", headers=admin.auth)
    assert response.status_code == 200, response.text
    return {row["name"]: row for row in response.json()}


async def audit_actions(gateway: AppHarness) -> list[tuple[str, str]]:
    async with gateway.state.sessions() as session:
        rows = await session.execute(select(AuditEntry.action, AuditEntry.target).order_by(AuditEntry.id))
        return [(action, target) for action, target in rows]


async def test_the_seeded_providers_are_listed_with_their_wire_formats(
    gateway: AppHarness, admin: Account
) -> None:
    listed = await providers(gateway, admin)
    assert {name: row["wireFormat"] for name, row in listed.items()} == SEEDED
    assert listed["groq"]["displayName"] == "Groq"


async def test_an_admin_adds_a_provider_as_data_and_it_is_audited(
    gateway: AppHarness, admin: Account
) -> None:
    response = await gateway.client.post("/api/admin/providers", headers=admin.auth, json=DEEPSEEK)
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["name"], created["displayName"], created["wireFormat"], created["baseUrl"]) == (
        "deepseek", "DeepSeek", "openai", "https://api.deepseek.com/v1",
    )  # fmt: skip
    assert (await providers(gateway, admin))["deepseek"] == created
    assert await audit_actions(gateway) == [("provider.create", "provider:deepseek")]


async def test_a_provider_without_a_display_name_is_shown_by_its_name(
    gateway: AppHarness, admin: Account
) -> None:
    body = {k: v for k, v in DEEPSEEK.items() if k != "displayName"}
    response = await gateway.client.post("/api/admin/providers", headers=admin.auth, json=body)
    assert response.status_code == 201, response.text
    assert response.json()["displayName"] == "deepseek"


async def test_adding_a_provider_twice_is_409_naming_the_name(gateway: AppHarness, admin: Account) -> None:
    response = await gateway.client.post(
        "/api/admin/providers", headers=admin.auth, json=DEEPSEEK | {"name": "groq"}
    )
    assert response.status_code == 409
    assert response.json()["error"]["field"] == "name"
    groq = (await providers(gateway, admin))["groq"]
    assert groq["baseUrl"] == NO_PROVIDER_URL  # unchanged


async def test_put_replaces_a_providers_wire_format_and_api_root_and_is_audited(
    gateway: AppHarness, admin: Account
) -> None:
    body = {"wireFormat": "anthropic", "baseUrl": "https://relay.example.com"}
    response = await gateway.client.put("/api/admin/providers/groq", headers=admin.auth, json=body)
    assert response.status_code == 200, response.text
    assert (response.json()["wireFormat"], response.json()["baseUrl"]) == (
        "anthropic",
        "https://relay.example.com",
    )
    assert (await providers(gateway, admin))["groq"]["wireFormat"] == "anthropic"
    assert await audit_actions(gateway) == [("provider.update", "provider:groq")]


async def test_put_of_an_unknown_provider_is_404(gateway: AppHarness, admin: Account) -> None:
    body = {"wireFormat": "openai", "baseUrl": "https://api.mistral.ai/v1"}
    response = await gateway.client.put("/api/admin/providers/mistral", headers=admin.auth, json=body)
    assert response.status_code == 404
    assert "mistral" not in await providers(gateway, admin)


@pytest.mark.parametrize(
    ("changes", "status", "field"),
    [
        ({"wireFormat": "gemini"}, 422, "wireFormat"),
        ({"name": "Deep Seek"}, 422, "name"),
        ({"name": "x" * 33}, 422, "name"),
        ({"baseUrl": "ftp://api.deepseek.com"}, 400, "baseUrl"),
        ({"baseUrl": "https://user:pw@api.deepseek.com/v1"}, 400, "baseUrl"),
    ],
)
async def test_a_malformed_provider_is_refused_naming_the_field_and_writes_nothing(
    gateway: AppHarness, admin: Account, changes: dict[str, Any], status: int, field: str
) -> None:
    response = await gateway.client.post("/api/admin/providers", headers=admin.auth, json=DEEPSEEK | changes)
    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == field
    assert set(await providers(gateway, admin)) == set(SEEDED)
    assert await audit_actions(gateway) == []


async def test_a_model_and_a_factory_key_may_name_a_seeded_provider_beyond_openai_and_anthropic(
    gateway: AppHarness, admin: Account
) -> None:
    model = await gateway.client.post("/api/admin/models", headers=admin.auth, json=MODEL)
    key = await gateway.client.post("/api/admin/factory-keys", headers=admin.auth, json=FACTORY_KEY)
    assert (model.status_code, key.status_code) == (201, 201), model.text + key.text
    assert (model.json()["provider"], key.json()["provider"]) == ("groq", "groq")


async def test_a_model_may_name_a_provider_the_admin_added(gateway: AppHarness, admin: Account) -> None:
    await gateway.client.post("/api/admin/providers", headers=admin.auth, json=DEEPSEEK)
    body = MODEL | {"modelId": "deepseek-chat", "provider": "deepseek"}
    response = await gateway.client.post("/api/admin/models", headers=admin.auth, json=body)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/admin/models", MODEL | {"provider": "mistral"}),
        ("PUT", "/api/admin/models/llama-3.3-70b", MODEL | {"provider": "mistral"}),
        ("POST", "/api/admin/factory-keys", FACTORY_KEY | {"provider": "mistral"}),
        ("PATCH", "/api/admin/factory-keys/1", {"provider": "mistral"}),
    ],
)
async def test_an_unknown_provider_is_refused_naming_it_and_listing_the_known_ones(
    gateway: AppHarness, admin: Account, method: str, path: str, body: dict[str, Any]
) -> None:
    await gateway.client.post("/api/admin/models", headers=admin.auth, json=MODEL)
    await gateway.client.post("/api/admin/factory-keys", headers=admin.auth, json=FACTORY_KEY)
    before = await audit_actions(gateway)
    response = await gateway.client.request(method, path, headers=admin.auth, json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["type"], error["field"]) == ("invalid_request_error", "provider")
    assert "mistral" in error["message"] and "groq" in error["message"]
    assert error["knownProviders"] == sorted(SEEDED)
    assert await audit_actions(gateway) == before


async def test_a_factory_key_moves_to_another_provider_by_patch(gateway: AppHarness, admin: Account) -> None:
    created = await gateway.client.post(
        "/api/admin/factory-keys", headers=admin.auth, json=FACTORY_KEY | {"provider": "openai"}
    )
    key_id = created.json()["id"]
    response = await gateway.client.patch(
        f"/api/admin/factory-keys/{key_id}", headers=admin.auth, json={"provider": "groq"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["provider"] == "groq"


# --- the database holds them to it (SQLite and PostgreSQL) ----------------------------------------------


def _model_row(model_id: str, provider: str) -> LlmModel:
    now = utcnow()
    return LlmModel(
        model_id=model_id, provider=provider, upstream_model=model_id, input_price_nanos=1,
        output_price_nanos=1, max_output_tokens=100, enabled=True, created_at=now, updated_at=now,
    )  # fmt: skip


async def test_the_database_refuses_a_model_row_naming_no_provider(any_gateway: AppHarness) -> None:
    async with any_gateway.state.sessions() as session:
        session.add(_model_row("orphan", "mistral"))
        with pytest.raises(IntegrityError):
            await session.commit()


async def test_the_migration_keeps_existing_rows_and_its_downgrade_restores_the_openai_anthropic_check(
    any_gateway: AppHarness,
) -> None:
    engine = any_gateway.state.engine
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: command.downgrade(alembic_config(sync), "0009"))
    # The columns of 0009's `llm_models` (later migrations add more: the ORM row would name them).
    insert = text(
        "INSERT INTO llm_models (model_id, provider, upstream_model, input_price_nanos, output_price_nanos, "
        "cache_write_price_nanos, cache_hit_price_nanos, max_output_tokens, enabled, created_at, updated_at) "
        "VALUES (:id, :provider, :id, 1, 1, 0, 0, 100, TRUE, :now, :now)"
    ).bindparams(bindparam("now", type_=UtcDateTime()))
    async with engine.begin() as connection:
        for model_id, provider in (("gpt-kept", "openai"), ("claude-kept", "anthropic")):
            await connection.execute(insert, {"id": model_id, "provider": provider, "now": utcnow()})
    with pytest.raises(IntegrityError):  # before 0010: only openai and anthropic
        async with engine.begin() as connection:
            await connection.execute(insert, {"id": "llama-refused", "provider": "groq", "now": utcnow()})
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), "head"))
    async with any_gateway.state.sessions() as session:
        session.add(_model_row("llama-now", "groq"))
        await session.commit()
        kept = await session.execute(select(LlmModel.model_id, LlmModel.provider).order_by(LlmModel.model_id))
        assert list(kept) == [("claude-kept", "anthropic"), ("gpt-kept", "openai"), ("llama-now", "groq")]
