"""Admin users (SPEC §5, §7): the list, and plan, role and activity changes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from admin_helpers import adjust, admin_view, books, post_json, set_plan
from conftest import AppHarness
from helpers import PASSWORD, Account, make_admin, register_user
from sqlalchemy import func, select

from trollllm.accounts.tables import User
from trollllm.clock import ManualClock

LIST_FIELDS = {
    "username", "role", "isActive", "plan", "credits", "refCredits", "totalTokens", "tokensUsed",
    "totalInputTokens", "totalOutputTokens", "monthlyTokensUsed", "planStartDate", "planExpiresAt",
    "createdAt",
}  # fmt: skip


@pytest.fixture
async def admin(gateway: AppHarness) -> Account:
    return await make_admin(gateway)


def parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


async def patch(gateway: AppHarness, admin: Account, username: str, body: object) -> Any:
    return await post_json(gateway, admin, f"/api/admin/users/{username}", body, method="PATCH")


# --- listing ----------------------------------------------------------------------------------------


async def test_the_list_shows_every_column_of_a_user(gateway: AppHarness, admin: Account) -> None:
    await register_user(gateway, "alice")
    user = await admin_view(gateway, admin, "alice")
    assert set(user) >= LIST_FIELDS
    assert (user["plan"], user["role"], user["isActive"], user["credits"]) == ("free", "user", True, 0)
    assert "apiKey" not in user


async def test_the_list_pages_by_limit_and_counts_the_total(gateway: AppHarness, admin: Account) -> None:
    for name in ("user-a", "user-b", "user-c", "user-d"):
        await register_user(gateway, name)
    response = await gateway.client.get(
        "/api/admin/users", params={"page": 2, "limit": 2, "sort": "username"}, headers=admin.auth
    )
    body = response.json()
    assert (body["total"], body["page"], body["limit"], body["totalPages"]) == (5, 2, 2, 3)
    assert [user["username"] for user in body["users"]] == ["user-b", "user-c"]  # after root, user-a


async def test_search_is_a_case_insensitive_substring(gateway: AppHarness, admin: Account) -> None:
    for name in ("Alice_1", "malice", "bob"):
        await register_user(gateway, name)
    response = await gateway.client.get(
        "/api/admin/users", params={"search": "ALIC", "sort": "username"}, headers=admin.auth
    )
    assert [user["username"] for user in response.json()["users"]] == ["Alice_1", "malice"]


async def test_search_treats_wildcards_literally(gateway: AppHarness, admin: Account) -> None:
    for name in ("a_b", "axb"):
        await register_user(gateway, name)
    response = await gateway.client.get("/api/admin/users", params={"search": "a_"}, headers=admin.auth)
    assert [user["username"] for user in response.json()["users"]] == ["a_b"]


async def test_sort_by_credits_descending(gateway: AppHarness, admin: Account) -> None:
    for name, amount in (("poor", 1), ("rich", 100), ("middle", 10)):
        await register_user(gateway, name)
        await adjust(gateway, admin, name, amount)
    response = await gateway.client.get(
        "/api/admin/users", params={"sort": "-credits", "limit": 3}, headers=admin.auth
    )
    assert [user["username"] for user in response.json()["users"]] == ["rich", "middle", "poor"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": 0}, "page"),
        ({"page": "two"}, "page"),
        ({"page": 10**30}, "page"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"sort": "password_hash"}, "sort"),
        ({"search": "x" * 10_000}, "search"),
    ],
)
async def test_bad_list_parameters_are_422_naming_them(
    gateway: AppHarness, admin: Account, params: dict[str, object], field: str
) -> None:
    response = await gateway.client.get("/api/admin/users", params=params, headers=admin.auth)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


# --- plan changes (SPEC §5) ---------------------------------------------------------------------------


async def test_free_to_dev_grants_225_and_starts_a_one_month_period(
    gateway: AppHarness, admin: Account, clock: ManualClock
) -> None:
    await register_user(gateway, "alice")
    response = await set_plan(gateway, admin, "alice", "dev")
    assert response.status_code == 200, response.text
    user = response.json()
    assert (user["plan"], user["credits"], user["totalTokens"]) == ("dev", 225, 15_000_000)
    assert parse(user["planStartDate"]) == clock.now()
    assert parse(user["planExpiresAt"]) == datetime(2026, 2, 15, 12, 0, tzinfo=UTC)


async def test_dev_to_pro_grants_the_difference_275(gateway: AppHarness, admin: Account) -> None:
    await register_user(gateway, "alice")
    await set_plan(gateway, admin, "alice", "dev")
    user = (await set_plan(gateway, admin, "alice", "pro")).json()
    assert (user["credits"], user["totalTokens"]) == (500, 40_000_000)


async def test_pro_to_dev_grants_nothing_and_restarts_the_period(
    gateway: AppHarness, admin: Account, clock: ManualClock
) -> None:
    await register_user(gateway, "alice")
    await set_plan(gateway, admin, "alice", "pro")
    clock.advance(3 * 86_400)
    user = (await set_plan(gateway, admin, "alice", "dev")).json()
    assert user["credits"] == 500
    assert parse(user["planStartDate"]) == clock.now()


async def test_to_free_clears_both_dates_and_keeps_credits(gateway: AppHarness, admin: Account) -> None:
    await register_user(gateway, "alice")
    await set_plan(gateway, admin, "alice", "dev")
    user = (await set_plan(gateway, admin, "alice", "free")).json()
    assert (user["planStartDate"], user["planExpiresAt"]) == (None, None)
    assert (user["credits"], user["totalTokens"]) == (225, 0)


async def test_an_unlimited_plan_has_no_token_quota(gateway: AppHarness, admin: Account) -> None:
    await register_user(gateway, "alice")
    user = (await set_plan(gateway, admin, "alice", "pro-troll")).json()
    assert (user["credits"], user["totalTokens"]) == (0, None)


@pytest.mark.parametrize(
    ("start", "expires"),
    [
        (datetime(2026, 1, 31, 9, 30, tzinfo=UTC), datetime(2026, 2, 28, 9, 30, tzinfo=UTC)),
        (datetime(2024, 1, 31, 9, 30, tzinfo=UTC), datetime(2024, 2, 29, 9, 30, tzinfo=UTC)),
        (datetime(2025, 12, 15, 0, 0, tzinfo=UTC), datetime(2026, 1, 15, 0, 0, tzinfo=UTC)),
    ],
    ids=["jan-31-to-feb-28", "leap-year-feb-29", "across-the-year"],
)
async def test_a_period_lasts_one_calendar_month_clamped_to_the_month_end(
    gateway: AppHarness, admin: Account, clock: ManualClock, start: datetime, expires: datetime
) -> None:
    await register_user(gateway, "alice")
    clock.set(start)
    # A token issued at the new time; the dates lie in the past because PyJWT refuses an `iat` ahead of
    # the wall clock.
    admin = await make_admin(gateway)
    user = (await set_plan(gateway, admin, "alice", "dev")).json()
    assert parse(user["planExpiresAt"]) == expires


async def test_a_plan_grant_is_a_ledger_entry_naming_the_plans(gateway: AppHarness, admin: Account) -> None:
    await register_user(gateway, "alice")
    await set_plan(gateway, admin, "alice", "dev")
    await set_plan(gateway, admin, "alice", "pro")
    response = await gateway.client.get("/api/admin/ledger", params={"username": "alice"}, headers=admin.auth)
    entries = response.json()["entries"]
    assert [(e["kind"], e["creditsDelta"], e["actor"]) for e in entries] == [
        ("plan_grant", 275, "root"),
        ("plan_grant", 225, "root"),
    ]
    assert "dev" in entries[0]["reason"] and "pro" in entries[0]["reason"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"plan": "platinum"}, 400, "plan"),
        ({"plan": "x" * 10_000}, 422, "plan"),
        ({"plan": 3}, 422, "plan"),
        ({"role": "superuser"}, 422, "role"),
        ({"role": "<b>admin</b>"}, 422, "role"),
        ({"isActive": "false"}, 422, "isActive"),
        ({"isActive": 0}, 422, "isActive"),
        ({"plan": "dev", "role": "root"}, 422, "role"),
        ({}, 422, None),
        ({"unknown": 1}, 422, None),
    ],
)
async def test_a_bad_patch_is_refused_naming_the_field_and_changes_nothing(
    gateway: AppHarness, admin: Account, body: dict[str, object], status: int, field: str | None
) -> None:
    await register_user(gateway, "alice")
    before = await books(gateway)
    response = await patch(gateway, admin, "alice", body)
    assert response.status_code == status, response.text
    assert response.json()["error"].get("field") == field
    assert await books(gateway) == before


async def test_patching_an_unknown_user_is_404(gateway: AppHarness, admin: Account) -> None:
    response = await patch(gateway, admin, "ghost", {"plan": "dev"})
    assert response.status_code == 404
    assert response.json()["error"]["field"] == "username"


# --- roles and activity ---------------------------------------------------------------------------


async def test_the_last_active_admin_cannot_demote_themselves(any_gateway: AppHarness) -> None:
    admin = await make_admin(any_gateway)
    response = await patch(any_gateway, admin, "root", {"role": "user"})
    assert response.status_code == 409
    assert response.json()["error"]["field"] == "role"
    assert (await admin_view(any_gateway, admin, "root"))["role"] == "admin"


async def test_the_last_active_admin_cannot_be_deactivated(any_gateway: AppHarness) -> None:
    admin = await make_admin(any_gateway)
    response = await patch(any_gateway, admin, "root", {"isActive": False})
    assert response.status_code == 409
    assert response.json()["error"]["field"] == "isActive"


async def test_an_admin_can_be_demoted_while_another_remains(any_gateway: AppHarness) -> None:
    admin = await make_admin(any_gateway)
    second = await make_admin(any_gateway, "second")
    assert (await patch(any_gateway, admin, "root", {"role": "user"})).status_code == 200
    assert (await patch(any_gateway, second, "second", {"role": "user"})).status_code == 409


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(any_gateway: AppHarness) -> None:
    first = await make_admin(any_gateway, "first")
    second = await make_admin(any_gateway, "second")
    responses = await asyncio.gather(
        patch(any_gateway, first, "second", {"role": "user"}),
        patch(any_gateway, second, "first", {"role": "user"}),
    )
    assert sorted(response.status_code for response in responses) in ([200, 403], [200, 409])
    async with any_gateway.state.sessions() as session:
        admins = await session.scalar(select(func.count()).select_from(User).where(User.role == "admin"))
    assert admins == 1


async def test_a_demoted_admin_loses_admin_access_at_once(gateway: AppHarness, admin: Account) -> None:
    other = await make_admin(gateway, "other")
    assert (await patch(gateway, admin, "other", {"role": "user"})).status_code == 200
    assert (await gateway.client.get("/api/admin/users", headers=other.auth)).status_code == 403
    assert (await gateway.client.get("/api/user/me", headers=other.auth)).status_code == 200


async def test_a_deactivated_user_is_logged_out_at_once_for_good(gateway: AppHarness, admin: Account) -> None:
    alice = await register_user(gateway, "alice")
    assert (await patch(gateway, admin, "alice", {"isActive": False})).status_code == 200
    assert (await gateway.client.get("/api/user/me", headers=alice.auth)).status_code == 401
    assert (await patch(gateway, admin, "alice", {"isActive": True})).status_code == 200
    assert (await gateway.client.get("/api/user/me", headers=alice.auth)).status_code == 401
    login = await gateway.client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    assert login.status_code == 200


async def test_a_patch_is_audited_with_before_and_after(gateway: AppHarness, admin: Account) -> None:
    await register_user(gateway, "alice")
    await patch(gateway, admin, "alice", {"plan": "dev", "role": "admin"})
    response = await gateway.client.get(
        "/api/admin/audit", params={"action": "user.update"}, headers=admin.auth
    )
    (entry,) = response.json()["entries"]
    assert (entry["actor"], entry["target"]) == ("root", "user:alice")
    assert (entry["before"]["plan"], entry["before"]["role"], entry["before"]["credits"]) == (
        "free",
        "user",
        0,
    )
    assert (entry["after"]["plan"], entry["after"]["role"], entry["after"]["credits"]) == (
        "dev",
        "admin",
        225,
    )
