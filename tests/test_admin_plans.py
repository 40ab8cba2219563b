"""Plans (SPEC §5, §7): `GET/POST /api/admin/plans`, `PUT/DELETE /api/admin/plans/{name}`."""

from __future__ import annotations

from typing import Any

import pytest
from admin_helpers import admin_view, books, post_json, set_plan
from conftest import AppHarness
from helpers import Account, make_admin, register_user

SPEC_PLANS = [
    {"name": "dev", "apiAccess": True, "rpm": 300, "creditGrantUsd": 225.0,
     "monthlyTokenLimit": 15_000_000, "byokRpm": 300},
    {"name": "free", "apiAccess": False, "rpm": 0, "creditGrantUsd": 0.0, "monthlyTokenLimit": 0,
     "byokRpm": 60},
    {"name": "pro", "apiAccess": True, "rpm": 1000, "creditGrantUsd": 500.0,
     "monthlyTokenLimit": 40_000_000, "byokRpm": 1000},
    {"name": "pro-troll", "apiAccess": True, "rpm": 600, "creditGrantUsd": 0.0, "monthlyTokenLimit": None,
     "byokRpm": 600},
]  # fmt: skip
NO_LIMITS = {"windows": [], "models": None}  # no usage window, every model
SPEC_PLANS = [plan | NO_LIMITS for plan in SPEC_PLANS]
TEAM = {
    "name": "team",
    "apiAccess": True,
    "rpm": 2000,
    "creditGrantUsd": 1234.5,
    "monthlyTokenLimit": 90_000_000,
    "byokRpm": 2500,
}


@pytest.fixture
async def admin(gateway: AppHarness) -> Account:
    return await make_admin(gateway)


async def plans(gateway: AppHarness, admin: Account) -> list[dict[str, Any]]:
    response = await gateway.client.get("/api/admin/plans", headers=admin.auth)
    assert response.status_code == 200
    found: list[dict[str, Any]] = response.json()["plans"]
    return found


async def test_plans_are_seeded_with_the_spec_defaults(gateway: AppHarness, admin: Account) -> None:
    assert await plans(gateway, admin) == SPEC_PLANS


async def test_a_new_plan_is_created_and_listed(gateway: AppHarness, admin: Account) -> None:
    response = await gateway.client.post("/api/admin/plans", json=TEAM, headers=admin.auth)
    assert response.status_code == 201, response.text
    assert response.json() == TEAM | NO_LIMITS
    assert TEAM | NO_LIMITS in await plans(gateway, admin)


async def test_a_null_monthly_limit_means_unlimited(gateway: AppHarness, admin: Account) -> None:
    body = {**TEAM, "monthlyTokenLimit": None}
    response = await gateway.client.post("/api/admin/plans", json=body, headers=admin.auth)
    assert response.status_code == 201
    assert response.json()["monthlyTokenLimit"] is None


async def test_a_grant_is_kept_exactly(gateway: AppHarness, admin: Account) -> None:
    body = {**TEAM, "creditGrantUsd": 0.1}
    response = await gateway.client.post("/api/admin/plans", json=body, headers=admin.auth)
    assert response.json()["creditGrantUsd"] == 0.1


async def test_a_duplicate_name_is_409(gateway: AppHarness, admin: Account) -> None:
    response = await gateway.client.post("/api/admin/plans", json={**TEAM, "name": "dev"}, headers=admin.auth)
    assert response.status_code == 409
    assert response.json()["error"]["field"] == "name"
    assert await plans(gateway, admin) == SPEC_PLANS


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 10_000}, "name"),
        ({"name": "<script>alert(1)</script>"}, "name"),
        ({"name": "Team"}, "name"),
        ({"name": 7}, "name"),
        ({"apiAccess": "yes"}, "apiAccess"),
        ({"apiAccess": 1}, "apiAccess"),
        ({"rpm": "300"}, "rpm"),
        ({"rpm": True}, "rpm"),
        ({"rpm": -1}, "rpm"),
        ({"rpm": 1_000_001}, "rpm"),
        ({"rpm": 1.5}, "rpm"),
        ({"byokRpm": -1}, "byokRpm"),
        ({"creditGrantUsd": -1}, "creditGrantUsd"),
        ({"creditGrantUsd": "225"}, "creditGrantUsd"),
        ({"creditGrantUsd": True}, "creditGrantUsd"),
        ({"creditGrantUsd": None}, "creditGrantUsd"),
        ({"creditGrantUsd": 1e308}, "creditGrantUsd"),
        ({"creditGrantUsd": float("nan")}, "creditGrantUsd"),
        ({"creditGrantUsd": float("inf")}, "creditGrantUsd"),
        ({"creditGrantUsd": 1e-10}, "creditGrantUsd"),
        ({"monthlyTokenLimit": -1}, "monthlyTokenLimit"),
        ({"monthlyTokenLimit": "lots"}, "monthlyTokenLimit"),
    ],
)
async def test_invalid_plan_fields_are_refused_naming_the_field_and_nothing_is_written(
    gateway: AppHarness, admin: Account, change: dict[str, Any], field: str
) -> None:
    before = await books(gateway)
    response = await post_json(gateway, admin, "/api/admin/plans", {**TEAM, **change})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert await books(gateway) == before


@pytest.mark.parametrize("missing", sorted(TEAM))
async def test_every_plan_field_is_required(gateway: AppHarness, admin: Account, missing: str) -> None:
    body = {key: value for key, value in TEAM.items() if key != missing}
    response = await gateway.client.post("/api/admin/plans", json=body, headers=admin.auth)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == missing


async def test_put_replaces_every_field(gateway: AppHarness, admin: Account) -> None:
    body = {**TEAM, "name": "dev", "windows": [{"window": "5h", "usdLimit": 2.5, "tokenLimit": None}]}
    body["models"] = None
    response = await gateway.client.put("/api/admin/plans/dev", json=body, headers=admin.auth)
    assert response.status_code == 200
    assert response.json() == body
    assert body in await plans(gateway, admin)


async def test_put_of_an_unknown_plan_is_404(gateway: AppHarness, admin: Account) -> None:
    response = await gateway.client.put(
        "/api/admin/plans/nope", json={**TEAM, "name": "nope"}, headers=admin.auth
    )
    assert response.status_code == 404


async def test_put_cannot_rename_a_plan(gateway: AppHarness, admin: Account) -> None:
    response = await gateway.client.put("/api/admin/plans/dev", json=TEAM, headers=admin.auth)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "name"
    assert await plans(gateway, admin) == SPEC_PLANS


async def test_put_with_a_bad_field_changes_nothing(gateway: AppHarness, admin: Account) -> None:
    body = {**TEAM, "name": "dev", "rpm": -5}
    response = await gateway.client.put("/api/admin/plans/dev", json=body, headers=admin.auth)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "rpm"
    assert await plans(gateway, admin) == SPEC_PLANS


async def test_an_unused_plan_can_be_deleted(gateway: AppHarness, admin: Account) -> None:
    await gateway.client.post("/api/admin/plans", json=TEAM, headers=admin.auth)
    response = await gateway.client.delete("/api/admin/plans/team", headers=admin.auth)
    assert response.status_code == 204
    assert await plans(gateway, admin) == SPEC_PLANS


async def test_a_plan_in_use_cannot_be_deleted(gateway: AppHarness, admin: Account) -> None:
    await register_user(gateway, "alice")
    assert (await set_plan(gateway, admin, "alice", "pro")).status_code == 200
    response = await gateway.client.delete("/api/admin/plans/pro", headers=admin.auth)
    assert response.status_code == 409
    assert "pro" in {plan["name"] for plan in await plans(gateway, admin)}


async def test_the_free_plan_cannot_be_deleted(gateway: AppHarness, admin: Account) -> None:
    response = await gateway.client.delete("/api/admin/plans/free", headers=admin.auth)
    assert response.status_code == 409


async def test_deleting_an_unknown_plan_is_404(gateway: AppHarness, admin: Account) -> None:
    response = await gateway.client.delete("/api/admin/plans/" + "x" * 10_000, headers=admin.auth)
    assert response.status_code == 404


async def test_plan_writes_are_audited(gateway: AppHarness, admin: Account) -> None:
    await gateway.client.post("/api/admin/plans", json=TEAM, headers=admin.auth)
    await gateway.client.put("/api/admin/plans/team", json={**TEAM, "rpm": 5}, headers=admin.auth)
    await gateway.client.delete("/api/admin/plans/team", headers=admin.auth)
    response = await gateway.client.get("/api/admin/audit", params={"actor": "root"}, headers=admin.auth)
    entries = response.json()["entries"]
    assert [entry["action"] for entry in entries] == ["plan.delete", "plan.update", "plan.create"]
    assert entries[1]["before"]["rpm"] == 2000
    assert entries[1]["after"]["rpm"] == 5
    assert entries[0]["target"] == "plan:team"


async def test_an_edited_grant_applies_to_the_next_upgrade(gateway: AppHarness, admin: Account) -> None:
    await gateway.client.put(
        "/api/admin/plans/dev", json={**SPEC_PLANS[0], "creditGrantUsd": 300}, headers=admin.auth
    )
    await register_user(gateway, "alice")
    await set_plan(gateway, admin, "alice", "dev")
    assert (await admin_view(gateway, admin, "alice"))["credits"] == 300
