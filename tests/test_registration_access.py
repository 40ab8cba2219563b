"""SPEC §9 registration (issue 29, item 8): limited per address by default
(`TROLLLLM_REGISTER_PER_ADDRESS_PER_HOUR`, 10), and `TROLLLLM_REGISTRATION` open | invite | closed."""

from __future__ import annotations

import re

import httpx
import pytest
from conftest import AppFactory, AppHarness
from helpers import PASSWORD
from sqlalchemy import func, select

from trollllm.accounts.invites import Invite, check_invite
from trollllm.accounts.tables import User
from trollllm.clock import ManualClock

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def register(client: httpx.AsyncClient, username: str, **extra: str) -> httpx.Response:
    return await client.post("/api/auth/register", json={"username": username, "password": PASSWORD, **extra})


async def users(gateway: AppHarness) -> int:
    async with gateway.state.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def test_an_address_registers_ten_accounts_an_hour_by_default(
    gateway: AppHarness, clock: ManualClock
) -> None:
    assert gateway.state.settings.register_per_address_per_hour == 10
    for number in range(10):
        assert (await register(gateway.client, f"user{number}")).status_code == 201
    refused = await register(gateway.client, "user10")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    transport = httpx.ASGITransport(app=gateway.app, client=("192.0.2.60", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as elsewhere:
        assert (await register(elsewhere, "user10")).status_code == 201
    clock.advance(3601)
    assert (await register(gateway.client, "user11")).status_code == 201


async def test_closed_registration_is_403_with_a_clear_message(
    app_factory: AppFactory, embedded_database_url: str
) -> None:
    gateway: AppHarness = await app_factory(embedded_database_url, registration="closed")
    response = await register(gateway.client, "alice")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["type"] == "registration_closed"
    assert "Registration is closed" in error["message"]
    assert await users(gateway) == 0


async def test_the_register_page_says_registration_is_closed_and_refuses_its_form(
    app_factory: AppFactory, embedded_database_url: str
) -> None:
    gateway: AppHarness = await app_factory(embedded_database_url, registration="closed")
    page = await gateway.client.get("/register")
    assert page.status_code == 200
    assert "Registration is closed" in page.text
    assert 'action="/register"' not in page.text
    login = await gateway.client.get("/login")
    csrf = CSRF.search(login.text)
    assert csrf
    fields = {"csrf": csrf.group(1), "username": "alice", "password": PASSWORD, "confirm": PASSWORD}
    posted = await gateway.client.post("/register", data=fields)
    assert posted.status_code == 403
    assert "Registration is closed" in posted.text
    assert await users(gateway) == 0


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({}, "referralCode"),
        ({"referralCode": "nobody-s-code"}, "referralCode"),
        ({"redemptionCode": "X"}, "redemptionCode"),
    ],
    ids=["no-code", "unknown-referral", "unknown-redemption"],
)
async def test_invite_registration_without_a_valid_invite_is_403_naming_the_field(
    app_factory: AppFactory, embedded_database_url: str, extra: dict[str, str], field: str
) -> None:
    gateway: AppHarness = await app_factory(embedded_database_url, registration="invite")
    response = await register(gateway.client, "alice", **extra)
    assert response.status_code == 403
    error = response.json()["error"]
    assert (error["type"], error["field"]) == ("invite_required", field)
    assert "invite" in error["message"]
    assert await users(gateway) == 0


async def test_the_register_page_asks_for_an_invite_when_registration_is_by_invite(
    app_factory: AppFactory, embedded_database_url: str
) -> None:
    gateway: AppHarness = await app_factory(embedded_database_url, registration="invite")
    page = await gateway.client.get("/register?ref=friend-code")
    assert 'name="invite"' in page.text and 'value="friend-code"' in page.text
    csrf = CSRF.search(page.text)
    assert csrf
    fields = {"csrf": csrf.group(1), "username": "alice", "password": PASSWORD, "confirm": PASSWORD}
    posted = await gateway.client.post("/register", data={**fields, "invite": "friend-code"})
    assert posted.status_code == 403
    assert 'id="invite-error"' in posted.text
    assert await users(gateway) == 0


async def test_check_invite_refuses_what_no_one_issued(gateway: AppHarness) -> None:
    async with gateway.state.sessions() as session:
        assert not await check_invite(session, Invite())
        assert not await check_invite(session, Invite(referral_code="made-up", redemption_code="made-up"))
