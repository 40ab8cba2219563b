"""SPEC §9 cookies (issue 29, item 9): the CSRF token is bound to the session (an HMAC of it under the
server's key), cookies are `__Host-` prefixed when `Secure`, and `Secure` is on by default in production
(`TROLLLLM_COOKIE_SECURE` overrides)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie

import httpx
import pytest
from conftest import AppFactory, AppHarness
from helpers import PASSWORD, register_user

ROTATE = "/api/user/api-key/rotate"


@contextlib.asynccontextmanager
async def browser(gateway: AppHarness, scheme: str = "http") -> AsyncIterator[httpx.AsyncClient]:
    """A client with its own cookie jar, as one browser."""
    transport = httpx.ASGITransport(app=gateway.app, client=("198.51.100.9", 5000))
    async with httpx.AsyncClient(transport=transport, base_url=f"{scheme}://gateway.example") as client:
        yield client


async def log_in(client: httpx.AsyncClient, username: str) -> httpx.Response:
    response = await client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response


def set_cookies(response: httpx.Response) -> dict[str, dict[str, str | bool]]:
    """Each Set-Cookie of `response` by name: its attributes, lower case."""
    cookies: dict[str, dict[str, str | bool]] = {}
    for header in response.headers.get_list("set-cookie"):
        parsed = SimpleCookie()
        parsed.load(header)
        for name, morsel in parsed.items():
            cookies[name] = {key: value for key, value in morsel.items() if value}
    return cookies


async def test_a_csrf_value_of_the_client_s_choosing_is_refused(gateway: AppHarness) -> None:
    await register_user(gateway, "alice")
    async with browser(gateway) as client:
        await log_in(client, "alice")
        client.cookies.set("trollllm_csrf", "chosen-by-an-attacker")  # e.g. planted from a sibling domain
        refused = await client.post(ROTATE, headers={"x-csrf-token": "chosen-by-an-attacker"})
        assert refused.status_code == 403
        assert refused.json()["error"]["type"] == "csrf_failed"


async def test_the_csrf_token_of_one_session_does_not_pass_for_another(gateway: AppHarness) -> None:
    await register_user(gateway, "alice")
    await register_user(gateway, "mallory")
    async with browser(gateway) as victim, browser(gateway) as attacker:
        await log_in(victim, "alice")
        await log_in(attacker, "mallory")
        own_token = attacker.cookies["trollllm_csrf"]
        victim.cookies.set("trollllm_csrf", own_token)
        refused = await victim.post(ROTATE, headers={"x-csrf-token": own_token})
        assert refused.status_code == 403
        assert (await victim.post(ROTATE, headers={"x-csrf-token": ""})).status_code == 403


async def test_each_login_gets_its_own_csrf_token_and_it_works(gateway: AppHarness) -> None:
    await register_user(gateway, "alice")
    async with browser(gateway) as first, browser(gateway) as second:
        await log_in(first, "alice")
        await log_in(second, "alice")
        assert first.cookies["trollllm_csrf"] != second.cookies["trollllm_csrf"]
        allowed = await first.post(ROTATE, headers={"x-csrf-token": first.cookies["trollllm_csrf"]})
        assert allowed.status_code == 200


async def test_a_signed_in_form_with_a_planted_csrf_cookie_is_refused(gateway: AppHarness) -> None:
    await register_user(gateway, "alice")
    async with browser(gateway) as client:
        await log_in(client, "alice")
        client.cookies.set("trollllm_csrf", "planted")
        response = await client.post("/logout", data={"csrf": "planted"})
        assert response.headers["location"] == "/dashboard"  # refused: still signed in
        assert (await client.get("/api/user/me")).status_code == 200


async def test_production_cookies_are_secure_and_host_prefixed(
    app_factory: AppFactory, embedded_database_url: str
) -> None:
    gateway: AppHarness = await app_factory(embedded_database_url, env="production")
    await register_user(gateway, "alice")
    async with browser(gateway, "https") as client:
        cookies = set_cookies(await log_in(client, "alice"))
        assert set(cookies) == {"__Host-trollllm_session", "__Host-trollllm_csrf"}
        for attributes in cookies.values():
            assert attributes["secure"] is True and attributes["path"] == "/" and "domain" not in attributes
        assert cookies["__Host-trollllm_session"]["httponly"] is True

        assert (await client.get("/api/user/me")).status_code == 200
        dashboard = await client.get("/dashboard")
        csrf = client.cookies["__Host-trollllm_csrf"]
        assert dashboard.status_code == 200 and f'<meta name="csrf-token" content="{csrf}">' in dashboard.text
        assert (await client.post(ROTATE, headers={"x-csrf-token": csrf})).status_code == 200

        logout = await client.post("/api/auth/logout")
        cleared = set_cookies(logout)
        assert set(cleared) == {"__Host-trollllm_session", "__Host-trollllm_csrf"}
        assert all(attributes["secure"] is True for attributes in cleared.values())
        assert (await client.get("/api/user/me")).status_code == 401


async def test_a_plain_session_cookie_is_not_read_when_cookies_are_secure(
    app_factory: AppFactory, embedded_database_url: str
) -> None:
    gateway: AppHarness = await app_factory(embedded_database_url, env="production")
    account = await register_user(gateway, "alice")
    async with browser(gateway, "https") as client:
        client.cookies.set("trollllm_session", account.token)
        assert (await client.get("/api/user/me")).status_code == 401


@pytest.mark.parametrize(
    ("env", "cookie_secure", "secure"),
    [("development", None, False), ("production", "false", False), ("development", "true", True)],
)
async def test_cookie_secure_overrides_the_default_of_the_environment(
    app_factory: AppFactory, embedded_database_url: str, env: str, cookie_secure: str | None, secure: bool
) -> None:
    gateway: AppHarness = await app_factory(embedded_database_url, env=env, cookie_secure=cookie_secure)
    await register_user(gateway, "alice")
    async with browser(gateway, "https") as client:
        cookies = set_cookies(await log_in(client, "alice"))
    prefix = "__Host-" if secure else ""
    assert set(cookies) == {f"{prefix}trollllm_session", f"{prefix}trollllm_csrf"}
    assert all(("secure" in attributes) is secure for attributes in cookies.values())
