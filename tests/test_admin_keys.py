"""Admin view of user API keys (SPEC §7): `GET /api/admin/keys`, `POST /api/admin/keys/{username}/revoke`."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import AppHarness
from helpers import Account, make_admin, register_user
from sqlalchemy import select

from trollllm.accounts.tables import ApiKey
from trollllm.audit.tables import AuditEntry


@pytest.fixture
async def admin(gateway: AppHarness) -> Account:
    return await make_admin(gateway)


async def list_keys(gateway: AppHarness, admin: Account, **params: Any) -> dict[str, Any]:
    response = await gateway.client.get("/api/admin/keys", headers=admin.auth, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def revoke(gateway: AppHarness, admin: Account, username: str) -> Any:
    return await gateway.client.post(f"/api/admin/keys/{username}/revoke", headers=admin.auth)


async def test_live_keys_are_listed_masked_with_their_owner(gateway: AppHarness, admin: Account) -> None:
    alice = await register_user(gateway, "alice")
    page = await list_keys(gateway, admin, search="alice")
    assert (page["total"], page["page"], page["limit"], page["totalPages"]) == (1, 1, 20, 1)
    [entry] = page["keys"]
    assert entry["username"] == "alice"
    assert entry["isActive"] is True
    assert entry["apiKey"] == f"sk-trollllm-****...****{alice.api_key[-4:]}"
    assert entry["last4"] == alice.api_key[-4:]
    assert entry["createdAt"].startswith("2026-01-15")


async def test_keys_are_ordered_by_username_and_paginated(gateway: AppHarness, admin: Account) -> None:
    for name in ("carol", "alice", "bob"):
        await register_user(gateway, name)
    first = await list_keys(gateway, admin, limit=2)
    second = await list_keys(gateway, admin, limit=2, page=2)
    assert [k["username"] for k in first["keys"]] == ["alice", "bob"]
    assert [k["username"] for k in second["keys"]] == ["carol", "root"]
    assert (first["total"], first["totalPages"]) == (4, 2)


async def test_search_is_a_case_insensitive_username_substring(gateway: AppHarness, admin: Account) -> None:
    await register_user(gateway, "Alice.W")
    await register_user(gateway, "bob")
    assert [k["username"] for k in (await list_keys(gateway, admin, search="ice"))["keys"]] == ["Alice.W"]
    assert (await list_keys(gateway, admin, search="%"))["total"] == 0


async def test_rotated_keys_are_not_listed(gateway: AppHarness, admin: Account) -> None:
    alice = await register_user(gateway, "alice")
    rotated = await gateway.client.post("/api/user/api-key/rotate", headers=alice.auth)
    [entry] = (await list_keys(gateway, admin, search="alice"))["keys"]
    assert entry["last4"] == rotated.json()["newApiKey"][-4:]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"page": 0}, "page"), ({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"page": "x"}, "page"),
     ({"search": "s" * 10_000}, "search")],
)  # fmt: skip
async def test_bad_paging_is_422_naming_the_parameter(
    gateway: AppHarness, admin: Account, params: dict[str, Any], field: str
) -> None:
    response = await gateway.client.get("/api/admin/keys", headers=admin.auth, params=params)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


async def test_revoke_kills_the_live_key(gateway: AppHarness, admin: Account) -> None:
    alice = await register_user(gateway, "alice")
    response = await revoke(gateway, admin, "alice")
    assert response.status_code == 200
    assert response.json() == {
        "username": "alice",
        "revokedKey": f"sk-trollllm-****...****{alice.api_key[-4:]}",
        "revokedAt": "2026-01-15T12:00:00Z",
    }
    assert (await list_keys(gateway, admin, search="alice"))["keys"] == []
    assert (await gateway.client.get("/api/user/me", headers=alice.auth)).json()["apiKey"] is None
    async with gateway.state.sessions() as session:
        rows = list(await session.scalars(select(ApiKey).where(ApiKey.revoked_at.is_(None))))
    assert all(row.last4 != alice.api_key[-4:] for row in rows)


async def test_revoked_user_can_rotate_to_a_new_key(gateway: AppHarness, admin: Account) -> None:
    alice = await register_user(gateway, "alice")
    await revoke(gateway, admin, "alice")
    rotated = await gateway.client.post("/api/user/api-key/rotate", headers=alice.auth)
    assert rotated.status_code == 200
    assert (await list_keys(gateway, admin, search="alice"))["total"] == 1


async def test_revoke_of_an_unknown_user_is_404(gateway: AppHarness, admin: Account) -> None:
    response = await revoke(gateway, admin, "nobody")
    assert response.status_code == 404
    assert response.json()["error"]["field"] == "username"


async def test_revoke_without_a_live_key_is_409(gateway: AppHarness, admin: Account) -> None:
    await register_user(gateway, "alice")
    await revoke(gateway, admin, "alice")
    response = await revoke(gateway, admin, "alice")
    assert response.status_code == 409
    assert response.json()["error"]["type"] == "conflict"


async def test_revoke_is_audited_with_the_masked_key_only(gateway: AppHarness, admin: Account) -> None:
    alice = await register_user(gateway, "alice")
    await revoke(gateway, admin, "alice")
    async with gateway.state.sessions() as session:
        [entry] = list(await session.scalars(select(AuditEntry)))
    assert (entry.actor, entry.action, entry.target) == ("root", "api_key.revoke", "user:alice")
    assert alice.api_key not in f"{entry.before_json} {entry.after_json}"
    assert f"****{alice.api_key[-4:]}" in (entry.before_json or "")


async def test_a_failed_revoke_writes_no_audit_entry(gateway: AppHarness, admin: Account) -> None:
    await revoke(gateway, admin, "nobody")
    async with gateway.state.sessions() as session:
        assert list(await session.scalars(select(AuditEntry))) == []
