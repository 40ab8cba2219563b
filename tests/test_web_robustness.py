"""Every form survives empty, huge and script input (escaped, never run, no 500); pages log no errors and
never show a whole key outside the one-time displays."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from browser import new_context
from page_watch import WHOLE_KEY, PageWatch, log_in
from playwright.async_api import Browser, Page, expect
from proxy_world import OPENAI_MODEL, World

pytestmark = pytest.mark.asyncio(loop_scope="session")  # the loop of the run's chromium

SCRIPT = "<script>alert(1)</script>"
HUGE = "x" * 100_000
INPUTS = {"empty": "", "huge": HUGE, "script": SCRIPT}
USER_PAGES = (
    "/dashboard",
    "/dashboard/usage",
    "/dashboard/friend-key",
    "/dashboard/request-history",
    "/dashboard/settings/api-keys",
    "/dashboard/subscription",
)


async def _assert_escaped(page: Page, value: str) -> None:
    """A value the page echoes is text, not markup: no element was made from it."""
    if value == SCRIPT:
        assert SCRIPT not in await page.content()
        assert await page.locator("script:not([src])").count() == 0


@pytest.mark.parametrize("kind", INPUTS)
async def test_login_form_survives_empty_huge_and_script_input(
    page_world: World, kind: str, browser: Browser
) -> None:
    value = INPUTS[kind]
    page = await (await new_context(browser, page_world.base_url)).new_page()
    watch = PageWatch().attach(page)
    await page.goto("/login")
    await page.get_by_label("Username").fill(value)
    await page.get_by_label("Password").fill(value)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.get_by_text("Invalid username or password")).to_be_visible()
    await _assert_escaped(page, value)
    watch.assert_clean()


@pytest.mark.parametrize("kind", INPUTS)
async def test_register_form_survives_empty_huge_and_script_input(
    page_world: World, kind: str, browser: Browser
) -> None:
    value = INPUTS[kind]
    page = await (await new_context(browser, page_world.base_url)).new_page()
    watch = PageWatch().attach(page)
    await page.goto("/register")
    for label in ("Username", "Repeat password"):
        await page.get_by_label(label).fill(value)
    await page.get_by_label("Password", exact=True).fill(value)
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    await expect(page.locator("#username-error")).to_be_visible()
    await _assert_escaped(page, value)
    watch.assert_clean()


@pytest.mark.parametrize("kind", INPUTS)
async def test_history_date_filter_survives_empty_huge_and_script_input(
    page_world: World, kind: str, browser: Browser
) -> None:
    value = INPUTS[kind]
    page = await (await new_context(browser, page_world.base_url)).new_page()
    watch = PageWatch().attach(page)
    await log_in(page, page_world.user.username)
    # What the GET form submits; a browser's date input cannot be typed into, a URL can.
    response = await page.goto("/dashboard/request-history?" + urlencode({"from": value, "to": value}))
    assert response is not None
    if value == HUGE:  # a 200 kB URL: the HTTP server refuses the request line itself, never a 500
        assert response.status == 400
        watch.assert_clean()
        return
    assert response.status == 200
    await expect(page.get_by_role("heading", name="Request History")).to_be_visible()
    if value:
        await expect(page.get_by_role("alert")).to_contain_text("must be an ISO 8601 date")
    await _assert_escaped(page, value)
    export = await page.request.get(
        "/dashboard/request-history/export.csv?" + urlencode({"from": value, "to": value})
    )
    assert export.status < 500
    watch.assert_clean()


@pytest.mark.parametrize("kind", INPUTS)
async def test_friend_key_limits_survive_empty_huge_and_script_input(
    page_world: World, kind: str, browser: Browser
) -> None:
    value = INPUTS[kind]
    await page_world.gateway.client.post("/api/user/friend-key", headers=page_world.user.auth)
    page = await (await new_context(browser, page_world.base_url)).new_page()
    watch = PageWatch().attach(page)
    await log_in(page, page_world.user.username)
    await page.goto("/dashboard/friend-key")
    await page.get_by_label(f"Limit for {OPENAI_MODEL}").fill(value)
    await page.get_by_role("button", name="Save Limits").click()
    if value:
        await expect(page.get_by_text("Enter an amount in USD")).to_be_visible()
    else:
        await expect(page.get_by_role("status")).to_have_text("Limits saved")
    await _assert_escaped(page, value)
    watch.assert_clean()


async def test_the_limits_api_refuses_script_and_huge_limits_with_a_400(page_world: World) -> None:
    await page_world.gateway.client.post("/api/user/friend-key", headers=page_world.user.auth)
    for limit in (SCRIPT, HUGE, "1" * 100_000):
        response = await page_world.gateway.client.put(
            "/api/user/friend-key/limits",
            headers=page_world.user.auth,
            json={"modelLimits": [{"modelId": OPENAI_MODEL, "limitUsd": limit, "enabled": True}]},
        )
        assert response.status_code == 400, response.text[:200]
        assert SCRIPT not in response.text


async def test_no_user_page_logs_an_error_or_shows_a_whole_key(page_world: World, browser: Browser) -> None:
    created = await page_world.gateway.client.post("/api/user/friend-key", headers=page_world.user.auth)
    friend_key = created.json()["friendKey"]
    async with page_world.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model=OPENAI_MODEL, messages=[{"role": "user", "content": "hi"}]
        )
    request_id = raw.headers["x-request-id"]
    page = await (await new_context(browser, page_world.base_url)).new_page()
    watch = PageWatch().attach(page)
    await page.goto("/login")
    await page.goto("/register")
    await log_in(page, page_world.user.username)
    for path in (*USER_PAGES, f"/dashboard/request-history/{request_id}", "/docs"):
        response = await page.goto(path)
        assert response is not None and response.status == 200, path
        await page.wait_for_load_state("networkidle")
        html = await page.content()
        assert not WHOLE_KEY.search(html), f"{path} shows a whole key"
        assert page_world.user.api_key not in html and friend_key not in html, path
    watch.assert_clean()
