"""SPEC §8: `free_tier_restricted` is a friendly upgrade message with a link, never raw; page errors are HTML.

No dashboard API call refuses a free user today (only the proxy does), so the page helper is driven against
the real proxy with the free user's real key: whatever page action meets this error gets the same banner.
"""

from __future__ import annotations

import pytest
from browser import new_context
from conftest import AppHarness
from helpers import register_user
from playwright.async_api import Browser, expect
from proxy_world import OPENAI_MODEL, World

from trollllm.accounts.sessions import SESSION_COOKIE
from trollllm.errors import FreeTierRestricted
from trollllm.web.error_page import error_page

CALL_THE_PROXY = """async ([key, model]) => {
  try {
    await api("POST", "/v1/chat/completions", {model, messages: [{role: "user", content: "hi"}]},
              {authorization: `Bearer ${key}`});
    return "answered";
  } catch (error) {
    return error.handled ? "handled" : error.message;
  }
}"""


@pytest.mark.asyncio(loop_scope="session")  # the loop of the run's chromium
async def test_a_free_users_page_fetch_shows_the_upgrade_message_not_raw_json(
    page_world: World, browser: Browser
) -> None:
    free = await register_user(page_world.gateway, "frida")
    context = await new_context(browser, page_world.base_url)
    await context.add_cookies([{"name": SESSION_COOKIE, "value": free.token, "url": page_world.base_url}])
    page = await context.new_page()
    await page.goto("/dashboard")

    outcome = await page.evaluate(CALL_THE_PROXY, [free.api_key, OPENAI_MODEL])

    assert outcome == "handled"
    banner = page.get_by_role("alert").filter(has_text="Your plan does not include API access.")
    await expect(banner).to_be_visible()
    await expect(banner.get_by_role("link", name="See the plans and upgrade")).to_have_attribute(
        "href", "/dashboard/subscription"
    )
    body = await page.locator("body").inner_text()
    assert "free_tier_restricted" not in body and '"error"' not in body
    await expect(page.locator("#toast")).to_be_hidden()
    await context.close()


def test_free_tier_restricted_on_a_page_renders_the_upgrade_page() -> None:
    response = error_page(FreeTierRestricted())
    html = bytes(response.body).decode()

    assert response.status_code == 403
    assert "Upgrade your plan" in html and 'href="/dashboard/subscription"' in html
    assert "free_tier_restricted" not in html


async def test_an_error_on_a_page_path_is_an_html_page_not_json(gateway: AppHarness) -> None:
    account = await register_user(gateway, "alice")
    gateway.client.cookies.set(SESSION_COOKIE, account.token)

    response = await gateway.client.get("/dashboard/request-history/export.csv", params={"from": "yesterday"})

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "from must be an ISO 8601 date" in response.text


async def test_api_errors_stay_json(gateway: AppHarness) -> None:
    response = await gateway.client.get("/api/user/me")

    assert response.status_code == 401 and response.json()["error"]["type"]


async def test_an_unknown_dashboard_page_is_an_html_not_found(gateway: AppHarness) -> None:
    response = await gateway.client.get("/dashboard/no-such-page")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Back to the dashboard" in response.text
