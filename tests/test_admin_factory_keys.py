"""Admin factory keys (SPEC §3, §7): `GET/POST /api/admin/factory-keys`, `PATCH/DELETE …/{id}`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from conftest import AppHarness
from helpers import Account, make_admin
from sqlalchemy import func, select

from trollllm.audit.tables import AuditEntry
from trollllm.upstream.service import decrypt_factory_key
from trollllm.upstream.tables import FactoryKey

PLAINTEXT = "sk-proj-UPSTREAMsecretVALUE0123456789wxyz"
KEY: dict[str, Any] = {
    "name": "openai primary",
    "provider": "openai",
    "baseUrl": "https://api.openai.com/v1",
    "apiKey": PLAINTEXT,
}
VIEW_FIELDS = {
    "id", "name", "provider", "baseUrl", "last4", "maskedKey", "proxyId", "status", "lastError",
    "cooldownUntil", "requestsCount", "spendUsd", "createdAt",
}  # fmt: skip


@pytest.fixture
async def admin(gateway: AppHarness) -> Account:
    return await make_admin(gateway)


async def create(gateway: AppHarness, admin: Account, **changes: Any) -> dict[str, Any]:
    response = await gateway.client.post("/api/admin/factory-keys", headers=admin.auth, json=KEY | changes)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def create_proxy(gateway: AppHarness, admin: Account, name: str = "egress") -> int:
    response = await gateway.client.post(
        "/api/admin/proxies", headers=admin.auth, json={"name": name, "url": "http://10.0.0.1:3128"}
    )
    assert response.status_code == 201, response.text
    proxy_id: int = response.json()["id"]
    return proxy_id


async def patch(gateway: AppHarness, admin: Account, key_id: int, body: dict[str, Any]) -> Any:
    return await gateway.client.patch(f"/api/admin/factory-keys/{key_id}", headers=admin.auth, json=body)


async def list_keys(gateway: AppHarness, admin: Account) -> list[dict[str, Any]]:
    response = await gateway.client.get("/api/admin/factory-keys", headers=admin.auth)
    assert response.status_code == 200
    body: list[dict[str, Any]] = response.json()
    return body


async def stored(gateway: AppHarness, key_id: int) -> FactoryKey:
    async with gateway.state.sessions() as session:
        return await session.get_one(FactoryKey, key_id)


async def audit_count(gateway: AppHarness) -> int:
    async with gateway.state.sessions() as session:
        return await session.scalar(select(func.count()).select_from(AuditEntry)) or 0


async def test_created_key_is_shown_masked_with_every_field(any_gateway: AppHarness) -> None:
    admin = await make_admin(any_gateway)
    created = await create(any_gateway, admin)
    assert set(created) == VIEW_FIELDS
    assert created["last4"] == "wxyz"
    assert created["maskedKey"] == "sk-trollllm-****...****wxyz"
    assert (created["status"], created["requestsCount"], created["spendUsd"]) == ("healthy", 0, 0)
    assert (created["proxyId"], created["lastError"], created["cooldownUntil"]) == (None, None, None)
    assert await list_keys(any_gateway, admin) == [created]


async def test_key_is_stored_encrypted_and_decrypts_for_the_proxy(any_gateway: AppHarness) -> None:
    admin = await make_admin(any_gateway)
    row = await stored(any_gateway, (await create(any_gateway, admin))["id"])
    assert PLAINTEXT.encode() not in row.key_encrypted
    assert decrypt_factory_key(any_gateway.state, row) == PLAINTEXT


async def test_ciphertext_is_bound_to_its_row(gateway: AppHarness, admin: Account) -> None:
    first = await stored(gateway, (await create(gateway, admin))["id"])
    second = await stored(gateway, (await create(gateway, admin, apiKey="sk-another-key-1234"))["id"])
    second.key_encrypted = first.key_encrypted
    with pytest.raises(ValueError, match="cannot be decrypted"):
        decrypt_factory_key(gateway.state, second)


async def test_trailing_slashes_of_the_base_url_are_dropped(gateway: AppHarness, admin: Account) -> None:
    created = await create(gateway, admin, baseUrl="https://api.groq.com/openai/v1/")
    assert created["baseUrl"] == "https://api.groq.com/openai/v1"


async def test_key_can_be_bound_to_an_existing_proxy(gateway: AppHarness, admin: Account) -> None:
    proxy_id = await create_proxy(gateway, admin)
    assert (await create(gateway, admin, proxyId=proxy_id))["proxyId"] == proxy_id


async def test_unknown_proxy_is_400_naming_proxy_id_and_writes_nothing(
    gateway: AppHarness, admin: Account
) -> None:
    response = await gateway.client.post(
        "/api/admin/factory-keys", headers=admin.auth, json=KEY | {"proxyId": 99}
    )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "proxyId"
    assert await list_keys(gateway, admin) == []


async def test_patch_renames_repoints_and_replaces_the_key(any_gateway: AppHarness) -> None:
    admin = await make_admin(any_gateway)
    key_id = (await create(any_gateway, admin))["id"]
    new_key = "sk-proj-replacement-key-9876"
    response = await patch(
        any_gateway,
        admin,
        key_id,
        {"name": "renamed", "baseUrl": "http://llm.internal:8080", "apiKey": new_key},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["baseUrl"], body["last4"]) == ("renamed", "http://llm.internal:8080", "9876")
    assert decrypt_factory_key(any_gateway.state, await stored(any_gateway, key_id)) == new_key


async def test_patch_binds_and_null_unbinds_the_proxy(any_gateway: AppHarness) -> None:
    admin = await make_admin(any_gateway)
    proxy_id = await create_proxy(any_gateway, admin)
    key_id = (await create(any_gateway, admin))["id"]
    assert (await patch(any_gateway, admin, key_id, {"proxyId": proxy_id})).json()["proxyId"] == proxy_id
    assert (await patch(any_gateway, admin, key_id, {"name": "x"})).json()["proxyId"] == proxy_id
    assert (await patch(any_gateway, admin, key_id, {"proxyId": None})).json()["proxyId"] is None


async def test_patch_healthy_re_enables_and_clears_error_and_cooldown(
    any_gateway: AppHarness, clock: Any
) -> None:
    admin = await make_admin(any_gateway)
    key_id = (await create(any_gateway, admin))["id"]
    async with any_gateway.state.sessions() as session, session.begin():
        row = await session.get_one(FactoryKey, key_id)
        row.status, row.last_error = "cooling_down", "upstream 429"
        row.cooldown_until = clock.now() + timedelta(minutes=5)
    body = (await patch(any_gateway, admin, key_id, {"status": "healthy"})).json()
    assert (body["status"], body["lastError"], body["cooldownUntil"]) == ("healthy", None, None)


async def test_patch_disabled_takes_the_key_out_of_rotation(gateway: AppHarness, admin: Account) -> None:
    key_id = (await create(gateway, admin))["id"]
    assert (await patch(gateway, admin, key_id, {"status": "disabled"})).json()["status"] == "disabled"
    assert (await stored(gateway, key_id)).status == "disabled"


async def test_last_error_is_shown_with_keys_masked(gateway: AppHarness, admin: Account) -> None:
    key_id = (await create(gateway, admin))["id"]
    async with gateway.state.sessions() as session, session.begin():
        row = await session.get_one(FactoryKey, key_id)
        row.status, row.last_error = "disabled", f"401: Incorrect API key provided: {PLAINTEXT}"
    last_error = (await list_keys(gateway, admin))[0]["lastError"]
    assert PLAINTEXT not in last_error
    assert last_error.endswith("sk-trollllm-****...****wxyz")


async def test_empty_patch_changes_and_audits_nothing(gateway: AppHarness, admin: Account) -> None:
    created = await create(gateway, admin)
    before = await audit_count(gateway)
    response = await patch(gateway, admin, created["id"], {"unknown": 1})
    assert response.status_code == 200
    assert response.json() == created
    assert await audit_count(gateway) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "cooling_down"}, "status"),
        ({"status": "on"}, "status"),
        ({"name": None}, "name"),
        ({"apiKey": None}, "apiKey"),
        ({"baseUrl": None}, "baseUrl"),
        ({"apiKey": "short"}, "apiKey"),
        ({"name": "x" * 10_000}, "name"),
        ({"proxyId": "1"}, "proxyId"),
    ],
)
async def test_malformed_patch_is_422_naming_the_field_and_changes_nothing(
    gateway: AppHarness, admin: Account, body: dict[str, Any], field: str
) -> None:
    created = await create(gateway, admin)
    response = await patch(gateway, admin, created["id"], body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert await list_keys(gateway, admin) == [created]


async def test_patch_with_a_bad_url_or_proxy_is_400_and_changes_nothing(
    gateway: AppHarness, admin: Account
) -> None:
    created = await create(gateway, admin)
    bad_url = await patch(gateway, admin, created["id"], {"name": "changed", "baseUrl": "ftp://x"})
    bad_proxy = await patch(gateway, admin, created["id"], {"name": "changed", "proxyId": 42})
    assert (bad_url.status_code, bad_url.json()["error"]["field"]) == (400, "baseUrl")
    assert (bad_proxy.status_code, bad_proxy.json()["error"]["field"]) == (400, "proxyId")
    assert await list_keys(gateway, admin) == [created]


async def test_patch_of_an_unknown_key_is_404(gateway: AppHarness, admin: Account) -> None:
    assert (await patch(gateway, admin, 12345, {"name": "x"})).status_code == 404


async def test_out_of_range_id_is_422_not_a_database_error(gateway: AppHarness, admin: Account) -> None:
    response = await patch(gateway, admin, 2**40, {"name": "x"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "key_id"


async def test_delete_removes_the_key(any_gateway: AppHarness) -> None:
    admin = await make_admin(any_gateway)
    key_id = (await create(any_gateway, admin))["id"]
    response = await any_gateway.client.delete(f"/api/admin/factory-keys/{key_id}", headers=admin.auth)
    assert response.status_code == 204
    assert await list_keys(any_gateway, admin) == []
    again = await any_gateway.client.delete(f"/api/admin/factory-keys/{key_id}", headers=admin.auth)
    assert again.status_code == 404


async def test_every_write_is_audited_with_last4_only(gateway: AppHarness, admin: Account) -> None:
    key_id = (await create(gateway, admin))["id"]
    await patch(gateway, admin, key_id, {"apiKey": "sk-second-secret-key-5555"})
    await gateway.client.delete(f"/api/admin/factory-keys/{key_id}", headers=admin.auth)
    async with gateway.state.sessions() as session:
        entries = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert [entry.action for entry in entries] == [
        "factory_key.create",
        "factory_key.update",
        "factory_key.delete",
    ]
    assert '"last4":"5555"' in (entries[1].after_json or "")
    for entry in entries:
        text = f"{entry.before_json} {entry.after_json}"
        assert PLAINTEXT not in text
        assert "sk-second-secret-key-5555" not in text


async def test_html_in_the_name_is_stored_as_given(gateway: AppHarness, admin: Account) -> None:
    name = '<img src=x onerror="alert(1)">'
    assert (await create(gateway, admin, name=name))["name"] == name
    assert (await list_keys(gateway, admin))[0]["name"] == name


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 10_000}, "name"),
        ({"name": 7}, "name"),
        ({"provider": None}, "provider"),
        ({"provider": "mistral"}, "provider"),  # no row of `providers` (groq is one since issue 15)
        ({"baseUrl": None}, "baseUrl"),
        ({"baseUrl": 5}, "baseUrl"),
        ({"baseUrl": "https://" + "a" * 10_000}, "baseUrl"),
        ({"apiKey": None}, "apiKey"),
        ({"apiKey": "1234567"}, "apiKey"),
        ({"apiKey": "k" * 513}, "apiKey"),
        ({"apiKey": "sk-with space-123"}, "apiKey"),
        ({"apiKey": "sk-with-newline\r\nX-Injected: 1"}, "apiKey"),
        ({"apiKey": 12345678}, "apiKey"),
        ({"proxyId": "1"}, "proxyId"),
        ({"proxyId": 0}, "proxyId"),
        ({"proxyId": 2**40}, "proxyId"),
    ],
)
async def test_malformed_key_is_422_naming_the_field_and_writes_nothing(
    gateway: AppHarness, admin: Account, changes: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in (KEY | changes).items() if v is not None}
    response = await gateway.client.post("/api/admin/factory-keys", headers=admin.auth, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert await list_keys(gateway, admin) == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://files.example.com/v1",
        "javascript:alert(1)",
        "http://",
        "https:///v1",
        "//api.openai.com/v1",
        "api.openai.com/v1",
        "not a url",
        "https://user:password@api.openai.com/v1",
        "https://token@api.openai.com/v1",
        "https://api.openai.com:99999/v1",
        "https://[::1/v1",
        "https://api.openai.com/v1#fragment",
        "https://api.openai.com/v1\n",
    ],
)
async def test_invalid_base_url_is_400_naming_base_url_and_writes_nothing(
    gateway: AppHarness, admin: Account, url: str
) -> None:
    response = await gateway.client.post(
        "/api/admin/factory-keys", headers=admin.auth, json=KEY | {"baseUrl": url}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == "baseUrl"
    assert await list_keys(gateway, admin) == []
