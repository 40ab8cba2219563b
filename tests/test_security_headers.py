"""SPEC §9 security headers (issue 29, item 7): every page carries a Content-Security-Policy that runs no
inline script, `frame-ancestors 'none'`, `Referrer-Policy: same-origin`, `X-Content-Type-Options: nosniff`,
and HSTS when served over HTTPS; no page holds an inline script or event handler for the CSP to block."""

from __future__ import annotations

from html.parser import HTMLParser

import httpx
import pytest
from admin_page_helpers import ADMIN_PAGES, signed_in
from conftest import AppHarness
from helpers import make_admin, register_user

USER_PAGES = (
    "/dashboard",
    "/dashboard/usage",
    "/dashboard/friend-key",
    "/dashboard/request-history",
    "/dashboard/settings/api-keys",
    "/dashboard/subscription",
)
ANONYMOUS_PAGES = ("/login", "/register", "/docs", "/dashboard/no-such-page")


def directives(policy: str) -> dict[str, list[str]]:
    """A CSP header as {directive: sources}."""
    parsed = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        parsed[name] = sources
    return parsed


def assert_security_headers(response: httpx.Response) -> None:
    policy = directives(response.headers["content-security-policy"])
    scripts = policy.get("script-src", policy["default-src"])
    assert scripts == ["'self'"], scripts  # no 'unsafe-inline', no 'unsafe-eval', no other origin
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["x-content-type-options"] == "nosniff"


class _InlineCode(HTMLParser):
    """Collects inline scripts, event-handler attributes and `javascript:` URLs of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script" and not named.get("src"):
            self._in_inline_script = True
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=…>")
            if (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}=javascript:…>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_inline_script = False

    def handle_data(self, data: str) -> None:
        if self._in_inline_script and data.strip():
            self.found.append(f"<script>{data.strip()[:60]}…")


def inline_code(html: str) -> list[str]:
    parser = _InlineCode()
    parser.feed(html)
    return parser.found


@pytest.mark.parametrize("path", ANONYMOUS_PAGES)
async def test_anonymous_pages_carry_the_security_headers_and_no_inline_code(
    gateway: AppHarness, path: str
) -> None:
    response = await gateway.client.get(path)
    assert response.headers["content-type"].startswith("text/html")
    assert_security_headers(response)
    assert inline_code(response.text) == []


async def test_every_signed_in_page_carries_the_security_headers_and_no_inline_code(
    gateway: AppHarness,
) -> None:
    await make_admin(gateway, "root")
    await register_user(gateway, "alice")
    for username, paths in (("alice", USER_PAGES), ("root", (*USER_PAGES, *ADMIN_PAGES, "/users/alice"))):
        async with signed_in(gateway, username) as client:
            for path in paths:
                response = await client.get(path)
                assert response.status_code == 200, (path, response.text[:300])
                assert_security_headers(response)
                assert inline_code(response.text) == [], path


async def test_the_page_scripts_and_json_answers_carry_nosniff(gateway: AppHarness) -> None:
    for path in ("/static/app.js", "/static/swagger-init.js", "/healthz", "/api/user/me"):
        response = await gateway.client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff", path


async def test_hsts_is_sent_over_https_only(gateway: AppHarness) -> None:
    assert "strict-transport-security" not in (await gateway.client.get("/login")).headers
    transport = httpx.ASGITransport(app=gateway.app, client=("198.51.100.7", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="https://gateway.example") as client:
        response = await client.get("/login")
    assert response.headers["strict-transport-security"] == "max-age=31536000"
    assert_security_headers(response)
