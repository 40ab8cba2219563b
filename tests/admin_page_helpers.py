"""Helpers of the admin page tests over HTTP: a signed-in browser-like client and its forms."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

import httpx
from conftest import AppHarness
from helpers import PASSWORD

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ADMIN_PAGES = (
    "/admin",
    "/admin/pricing",
    "/users",
    "/keys",
    "/factory-keys",
    "/proxies",
    "/admin/audit",
)


@contextlib.asynccontextmanager
async def signed_in(gateway: AppHarness, username: str | None) -> AsyncIterator[httpx.AsyncClient]:
    """A client with its own cookies, signed in through the login form (anonymous when `username` is None)."""
    transport = httpx.ASGITransport(app=gateway.app, client=("198.51.100.8", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        if username is not None:
            csrf = await form_csrf(client, "/login")
            response = await client.post(
                "/login", data={"csrf": csrf, "username": username, "password": PASSWORD}
            )
            assert response.status_code == 303, response.text
        yield client


async def form_csrf(client: httpx.AsyncClient, path: str) -> str:
    """The CSRF value the forms of `path` carry."""
    page = await client.get(path)
    assert page.status_code == 200, page.text[:500]
    match = CSRF.search(page.text)
    assert match, "the page's forms carry a CSRF token"
    return match.group(1)


async def post_form(client: httpx.AsyncClient, page: str, action: str, **fields: str) -> httpx.Response:
    """Open `page`, then post its form at `action` with `fields` and the page's CSRF value."""
    csrf = await form_csrf(client, page)
    return await client.post(action, data={"csrf": csrf, **fields})
