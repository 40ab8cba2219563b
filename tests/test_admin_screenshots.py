"""Every admin page at a phone (390×844) and a desktop (1440×900) size, screenshotted to screenshots/.

As for the user pages: every page answers 200 (Access Denied 403), logs no error, and a phone never scrolls
sideways (wide tables scroll inside their card).
"""

from __future__ import annotations

from browser import chromium, new_context, screenshot
from page_watch import PageWatch, log_in
from playwright.async_api import Page
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World

ADMIN_PAGES = {
    "admin-overview": "/admin?period=24h",
    "admin-pricing": "/admin/pricing",
    "admin-users": "/users",
    "admin-user": "/users/alice",
    "admin-keys": "/keys",
    "admin-factory-keys": "/factory-keys",
    "admin-proxies": "/proxies",
    "admin-audit": "/admin/audit",
}

# The elements reaching past a phone's width, named in a failure (what to fix).
OVERFLOWING = """() => [...document.querySelectorAll("body *")]
  .filter((element) => element.getBoundingClientRect().right > 392)
  .slice(0, 10).map((element) => `${element.tagName}.${element.className}`)"""


async def _some_traffic(world: World) -> None:
    """Requests of both formats, a proxy with a password, a key the provider refused, audit entries."""
    await world.admin_call(
        "POST", "/api/admin/proxies", json={"name": "eu-west", "url": "http://ops:pw@10.0.0.5:3128"}
    )
    await world.admin_call(
        "POST",
        "/api/admin/factory-keys",
        json={
            "name": "openai-revoked",
            "provider": "openai",
            "baseUrl": world.mock.url,
            "apiKey": "fk-openai-dead",
        },
    )
    world.mock.set_key_status("fk-openai-dead", 401)
    async with world.openai() as openai:
        for _ in range(4):
            await openai.chat.completions.create(
                model=OPENAI_MODEL, messages=[{"role": "user", "content": "hello"}]
            )
    async with world.anthropic() as anthropic:
        await anthropic.messages.create(
            model=ANTHROPIC_MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        )
    await world.state.upstream.flush()


async def _visit(page: Page, path: str, name: str, phone: bool, status: int = 200) -> None:
    response = await page.goto(path)
    assert response is not None and response.status == status, path
    await page.wait_for_load_state("load")  # no admin page fetches anything after it loads
    if phone:
        width = await page.evaluate("document.documentElement.scrollWidth")
        wide = await page.evaluate(OVERFLOWING) if width > 390 else []
        assert width <= 390, f"{path} scrolls sideways on a phone ({width}px): {wide}"
    await screenshot(page, f"{name}-{'phone' if phone else 'desktop'}")


async def test_every_admin_page_is_screenshotted_at_phone_and_desktop_size(world: World) -> None:
    await _some_traffic(world)
    async with chromium() as browser:
        for phone in (True, False):
            context = await new_context(browser, world.base_url, phone=phone)
            page = await context.new_page()
            watch = PageWatch().attach(page)
            await log_in(page, world.admin.username)
            for name, path in ADMIN_PAGES.items():
                await _visit(page, path, name, phone)
            await page.goto("/users/alice")
            await page.get_by_label("New plan").select_option("pro")
            await page.get_by_role("button", name="Review change").click()
            await screenshot(page, f"admin-plan-review-{'phone' if phone else 'desktop'}")
            await context.close()
            user_context = await new_context(browser, world.base_url, phone=phone)
            user_page = await user_context.new_page()
            watch.attach(user_page)
            await log_in(user_page, world.user.username)
            await _visit(user_page, "/factory-keys", "admin-access-denied", phone, status=403)
            await user_context.close()
            watch.assert_clean()
