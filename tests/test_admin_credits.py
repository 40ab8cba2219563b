"""Admin credits adjustments (SPEC §7): grants and deductions through the ledger; ledger and audit lists."""

from __future__ import annotations

import asyncio

import pytest
from admin_helpers import adjust, admin_view, books, post_json, set_plan
from conftest import AppHarness
from helpers import Account, make_admin, register_user

from trollllm.billing.ledger import reconcile


@pytest.fixture
async def admin(gateway: AppHarness) -> Account:
    return await make_admin(gateway)


# --- credits ------------------------------------------------------------------------------------------


async def test_a_grant_adds_to_the_chosen_balance(gateway: AppHarness, admin: Account) -> None:
    await register_user(gateway, "alice")
    response = await adjust(gateway, admin, "alice", 12.5)
    assert response.status_code == 200, response.text
    assert (response.json()["credits"], response.json()["refCredits"]) == (12.5, 0)
    response = await adjust(gateway, admin, "alice", 0.000000001, balance="refCredits")
    assert (response.json()["credits"], response.json()["refCredits"]) == (12.5, 1e-9)
    assert response.json()["entry"]["kind"] == "admin_adjustment"


async def test_a_deduction_takes_from_the_balance(gateway: AppHarness, admin: Account) -> None:
    await register_user(gateway, "alice")
    await adjust(gateway, admin, "alice", 10)
    response = await adjust(gateway, admin, "alice", -7.654321)
    assert response.json()["credits"] == 2.345679
    assert (await admin_view(gateway, admin, "alice"))["credits"] == 2.345679


async def test_a_deduction_to_exactly_zero_is_allowed(gateway: AppHarness, admin: Account) -> None:
    await register_user(gateway, "alice")
    await adjust(gateway, admin, "alice", 0.3)
    response = await adjust(gateway, admin, "alice", -0.3)
    assert response.status_code == 200
    assert response.json()["credits"] == 0


async def test_a_deduction_below_zero_is_refused_and_nothing_changes(
    gateway: AppHarness, admin: Account
) -> None:
    await register_user(gateway, "alice")
    await adjust(gateway, admin, "alice", 5)
    before = await books(gateway)
    response = await adjust(gateway, admin, "alice", -5.000000001)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "amountUsd"
    assert response.json()["error"]["type"] == "insufficient_balance"
    assert await books(gateway) == before


async def test_ref_credits_never_go_below_zero_either(gateway: AppHarness, admin: Account) -> None:
    await register_user(gateway, "alice")
    await adjust(gateway, admin, "alice", 100)
    response = await adjust(gateway, admin, "alice", -1, balance="refCredits")
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amountUsd": 0}, "amountUsd"),
        ({"amountUsd": float("nan")}, "amountUsd"),
        ({"amountUsd": float("inf")}, "amountUsd"),
        ({"amountUsd": float("-inf")}, "amountUsd"),
        ({"amountUsd": 1e308}, "amountUsd"),
        ({"amountUsd": -1e308}, "amountUsd"),
        ({"amountUsd": 1_000_000_001}, "amountUsd"),
        ({"amountUsd": 1e-10}, "amountUsd"),
        ({"amountUsd": "10"}, "amountUsd"),
        ({"amountUsd": True}, "amountUsd"),
        ({"amountUsd": None}, "amountUsd"),
        ({"amountUsd": [10]}, "amountUsd"),
        ({"balance": "savings"}, "balance"),
        ({"balance": None}, "balance"),
        ({"reason": ""}, "reason"),
        ({"reason": "   "}, "reason"),
        ({"reason": "x" * 501}, "reason"),
        ({"reason": 42}, "reason"),
        ({"reason": None}, "reason"),
    ],
)
async def test_a_bad_adjustment_is_refused_naming_the_field_and_changes_nothing(
    gateway: AppHarness, admin: Account, change: dict[str, object], field: str
) -> None:
    await register_user(gateway, "alice")
    before = await books(gateway)
    body = {"amountUsd": 10, "balance": "credits", "reason": "goodwill", **change}
    response = await post_json(gateway, admin, "/api/admin/users/alice/credits", body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert await books(gateway) == before


@pytest.mark.parametrize("missing", ["amountUsd", "balance", "reason"])
async def test_every_adjustment_field_is_required(gateway: AppHarness, admin: Account, missing: str) -> None:
    await register_user(gateway, "alice")
    body = {key: value for key, value in {"amountUsd": 1, "balance": "credits", "reason": "r"}.items()
            if key != missing}  # fmt: skip
    response = await post_json(gateway, admin, "/api/admin/users/alice/credits", body)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == missing


async def test_a_balance_cannot_grow_past_a_billion_dollars(gateway: AppHarness, admin: Account) -> None:
    await register_user(gateway, "alice")
    assert (await adjust(gateway, admin, "alice", 1_000_000_000)).status_code == 200
    before = await books(gateway)
    response = await adjust(gateway, admin, "alice", 0.01)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "amountUsd"
    assert await books(gateway) == before


async def test_adjusting_an_unknown_user_is_404(gateway: AppHarness, admin: Account) -> None:
    response = await adjust(gateway, admin, "x" * 10_000, 5)
    assert response.status_code == 404


async def test_html_in_a_reason_is_kept_as_plain_text(gateway: AppHarness, admin: Account) -> None:
    await register_user(gateway, "alice")
    await adjust(gateway, admin, "alice", 1, reason="<script>alert(1)</script>")
    response = await gateway.client.get("/api/admin/ledger", params={"username": "alice"}, headers=admin.auth)
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["entries"][0]["reason"] == "<script>alert(1)</script>"


# --- ledger and audit listings ----------------------------------------------------------------------


async def test_the_ledger_lists_newest_first_with_every_field(gateway: AppHarness, admin: Account) -> None:
    await register_user(gateway, "alice")
    await register_user(gateway, "bob")
    await adjust(gateway, admin, "alice", 3, reason="first")
    await adjust(gateway, admin, "bob", 4, balance="refCredits", reason="second")
    response = await gateway.client.get("/api/admin/ledger", headers=admin.auth)
    body = response.json()
    assert (body["total"], body["page"], body["limit"], body["totalPages"]) == (2, 1, 20, 1)
    newest = body["entries"][0]
    assert newest["username"] == "bob"
    assert (newest["creditsDelta"], newest["refCreditsDelta"], newest["reason"]) == (0, 4, "second")
    assert set(newest) >= {"kind", "actor", "requestId", "createdAt"}


async def test_the_ledger_of_an_unknown_user_is_404(gateway: AppHarness, admin: Account) -> None:
    response = await gateway.client.get("/api/admin/ledger", params={"username": "ghost"}, headers=admin.auth)
    assert response.status_code == 404
    assert response.json()["error"]["field"] == "username"


async def test_the_audit_log_filters_by_actor_and_action(gateway: AppHarness, admin: Account) -> None:
    await register_user(gateway, "alice")
    await adjust(gateway, admin, "alice", 1)
    await set_plan(gateway, admin, "alice", "dev")
    everything = (await gateway.client.get("/api/admin/audit", headers=admin.auth)).json()
    assert [entry["action"] for entry in everything["entries"]] == ["user.update", "user.credits"]
    credits = await gateway.client.get(
        "/api/admin/audit", params={"action": "user.credits", "actor": "root"}, headers=admin.auth
    )
    assert credits.json()["total"] == 1
    nobody = await gateway.client.get("/api/admin/audit", params={"actor": "ghost"}, headers=admin.auth)
    assert nobody.json()["entries"] == []


async def test_concurrent_deductions_never_overdraw(any_gateway: AppHarness) -> None:
    admin = await make_admin(any_gateway)
    await register_user(any_gateway, "alice")
    await adjust(any_gateway, admin, "alice", 10)
    responses = await asyncio.gather(*(adjust(any_gateway, admin, "alice", -3) for _ in range(5)))
    assert sorted(response.status_code for response in responses) == [200, 200, 200, 400, 400]
    assert (await admin_view(any_gateway, admin, "alice"))["credits"] == 1
    async with any_gateway.state.sessions() as session:
        assert await reconcile(session) == []
