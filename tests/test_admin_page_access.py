"""Who may open the admin pages (SPEC §8): admins see them, a user gets "Access Denied" and is sent to
/dashboard, an anonymous visitor goes to /login; forms need their CSRF field."""

from __future__ import annotations

import pytest
from admin_page_helpers import ADMIN_PAGES, form_csrf, signed_in
from conftest import AppHarness
from helpers import make_admin, register_user

FORM_ACTIONS = ("/admin/pricing", "/users/alice/plan", "/users/alice/credits", "/users/alice/active",
                "/keys/alice/revoke", "/factory-keys", "/proxies")  # fmt: skip


@pytest.mark.parametrize("path", ADMIN_PAGES)
async def test_an_admin_opens_every_admin_page_with_the_admin_sidebar_marking_it(
    gateway: AppHarness, path: str
) -> None:
    await make_admin(gateway)
    async with signed_in(gateway, "root") as client:
        response = await client.get(path)
    assert response.status_code == 200
    assert f'<a href="{path}" aria-current="page" class="active">' in response.text


@pytest.mark.parametrize("path", ADMIN_PAGES)
async def test_a_user_sees_access_denied_and_is_sent_to_the_dashboard(gateway: AppHarness, path: str) -> None:
    await register_user(gateway, "alice")
    async with signed_in(gateway, "alice") as client:
        response = await client.get(path)
    assert response.status_code == 403
    assert "Access Denied" in response.text
    assert '<meta http-equiv="refresh" content="3;url=/dashboard">' in response.text
    assert 'href="/dashboard"' in response.text


@pytest.mark.parametrize("path", ADMIN_PAGES)
async def test_an_anonymous_visitor_is_sent_to_login(gateway: AppHarness, path: str) -> None:
    async with signed_in(gateway, None) as client:
        response = await client.get(path)
    assert response.status_code == 303 and response.headers["location"] == "/login"


async def test_a_user_never_sees_the_admin_sidebar(gateway: AppHarness) -> None:
    await register_user(gateway, "alice")
    async with signed_in(gateway, "alice") as client:
        page = await client.get("/dashboard")
    assert 'href="/admin"' not in page.text and 'href="/factory-keys"' not in page.text


@pytest.mark.parametrize("action", FORM_ACTIONS)
async def test_a_user_posting_an_admin_form_is_denied_and_nothing_changes(
    gateway: AppHarness, action: str
) -> None:
    await make_admin(gateway)
    await register_user(gateway, "alice")
    async with signed_in(gateway, "alice") as client:
        csrf = await form_csrf(client, "/dashboard")
        response = await client.post(
            action,
            data={
                "csrf": csrf,
                "plan": "pro",
                "confirm": "yes",
                "active": "no",
                "amountUsd": "100",
                "balance": "credits",
                "reason": "x",
            },
        )
        me = await client.get("/dashboard")
    assert response.status_code == 403 and "Access Denied" in response.text
    assert "You are on the free plan" in me.text


@pytest.mark.parametrize("action", FORM_ACTIONS)
async def test_an_admin_form_without_its_csrf_field_changes_nothing(gateway: AppHarness, action: str) -> None:
    await make_admin(gateway)
    await register_user(gateway, "alice")
    async with signed_in(gateway, "root") as client:
        await client.get("/users")
        response = await client.post(action, data={"plan": "pro", "confirm": "yes", "active": "no"})
        alice = await client.get("/users/alice")
    assert response.status_code == 403 and "The form expired" in response.text
    assert '<span class="badge plan-free">free</span>' in alice.text and ">Deactivate<" in alice.text
