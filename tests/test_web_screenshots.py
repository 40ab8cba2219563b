"""Every user page at a phone (390×844) and a desktop (1440×900) size, screenshotted to screenshots/.

The pictures are for people to look at; the test checks what a picture cannot prove by itself: every page
answers 200, logs no error, and a phone never scrolls sideways.
"""

from __future__ import annotations

from browser import chromium, new_context, screenshot
from page_watch import PageWatch, log_in
from playwright.async_api import Page
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World

ANONYMOUS_PAGES = {"login": "/login", "register": "/register"}
USER_PAGES = {
    "dashboard": "/dashboard",
    "usage": "/dashboard/usage",
    "friend-key": "/dashboard/friend-key",
    "request-history": "/dashboard/request-history",
    "request-detail": None,  # filled in with a real request id
    "api-keys": "/dashboard/settings/api-keys",
    "subscription": "/dashboard/subscription",
    "docs": "/docs",
}


async def _some_usage(world: World) -> str:
    """A Friend Key with a limit, and a few requests of both formats; the last request's id."""
    client = world.gateway.client
    await client.post("/api/user/friend-key", headers=world.user.auth)
    await client.put(
        "/api/user/friend-key/limits",
        headers=world.user.auth,
        json={"modelLimits": [{"modelId": OPENAI_MODEL, "limitUsd": 5, "enabled": True}]},
    )
    async with world.anthropic() as anthropic:
        await anthropic.messages.create(
            model=ANTHROPIC_MODEL, max_tokens=64, messages=[{"role": "user", "content": "hello there"}]
        )
    async with world.openai() as openai:
        for _ in range(3):
            raw = await openai.chat.completions.with_raw_response.create(
                model=OPENAI_MODEL, messages=[{"role": "user", "content": "hello there"}]
            )
    return raw.headers["x-request-id"]


async def _visit(page: Page, path: str, name: str, phone: bool) -> None:
    response = await page.goto(path)
    assert response is not None and response.status == 200, path
    await page.wait_for_load_state("networkidle")
    if phone:
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} scrolls sideways on a phone ({width}px)"
    size = "phone" if phone else "desktop"
    await screenshot(page, f"{name}-{size}")
    if name == "dashboard":  # the small pictures docs/images/ keeps (README "Web pages")
        await screenshot(page, f"{name}-{size}-viewport", full_page=False)


async def test_every_user_page_is_screenshotted_at_phone_and_desktop_size(world: World) -> None:
    request_id = await _some_usage(world)
    pages = USER_PAGES | {"request-detail": f"/dashboard/request-history/{request_id}"}
    async with chromium() as browser:
        for phone in (True, False):
            context = await new_context(browser, world.base_url, phone=phone)
            page = await context.new_page()
            watch = PageWatch().attach(page)
            for name, path in ANONYMOUS_PAGES.items():
                await _visit(page, path, name, phone)
            await log_in(page, world.user.username)
            for name, path in pages.items():
                assert path is not None
                await _visit(page, path, name, phone)
            watch.assert_clean()
            await context.close()
