"""The pages under their Content-Security-Policy in a real browser (issue 29, item 7): every user and admin
page and `/docs` load, and the scripted actions work, with no CSP violation reported."""

from __future__ import annotations

import pytest
from admin_page_helpers import ADMIN_PAGES
from browser import new_context
from page_watch import PageWatch, log_in
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, expect
from proxy_world import World
from test_security_headers import USER_PAGES

pytestmark = pytest.mark.asyncio(loop_scope="session")  # the loop of the run's chromium

# Chromium reports each violation on the console and as a `securitypolicyviolation` event; the init script
# (run by the driver, outside the page's CSP) keeps the events where the test can read them.
_RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} blocked ${event.blockedURI || "inline"}`);
});
"""


class CspWatch:
    """Every CSP violation a page of the context reported."""

    def __init__(self) -> None:
        self.console: list[str] = []

    def attach(self, page: Page) -> Page:
        page.on("console", self._on_console)
        return page

    def _on_console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.console.append(message.text)

    async def assert_none(self, page: Page) -> None:
        events: list[str] = await page.evaluate("window.__cspViolations")
        assert not events, f"CSP violations on {page.url}: {events}"
        assert not self.console, f"CSP violations reported: {self.console}"


async def _context(browser_context: BrowserContext) -> BrowserContext:
    await browser_context.add_init_script(_RECORD_VIOLATIONS)
    return browser_context


async def test_user_pages_and_their_scripts_work_under_the_csp(page_world: World, browser: Browser) -> None:
    context = await _context(await new_context(browser, page_world.base_url))
    csp = CspWatch()
    page = csp.attach(await context.new_page())
    watch = PageWatch().attach(page)
    await log_in(page, page_world.user.username)
    await page.get_by_role("button", name="Show").click()  # app.js calls the API with the CSRF header
    await expect(page.locator("#api-key")).to_have_text(page_world.user.api_key)
    await csp.assert_none(page)
    for path in USER_PAGES:
        await page.goto(path)
        await csp.assert_none(page)
    await page.goto("/dashboard/friend-key")
    await page.get_by_role("button", name="Generate Friend Key").click()
    await expect(page.get_by_text("Your new Friend Key (shown once): ")).to_be_visible()
    await csp.assert_none(page)
    watch.assert_clean()
    await context.close()


async def test_admin_pages_and_the_api_docs_load_under_the_csp(page_world: World, browser: Browser) -> None:
    context = await _context(await new_context(browser, page_world.base_url))
    csp = CspWatch()
    page = csp.attach(await context.new_page())
    watch = PageWatch().attach(page)
    await log_in(page, page_world.admin.username)
    for path in (*ADMIN_PAGES, f"/users/{page_world.user.username}"):
        await page.goto(path)
        await csp.assert_none(page)
    await page.goto("/docs")
    await expect(page.get_by_role("heading", name="TrollLLM gateway")).to_be_visible()
    await csp.assert_none(page)
    watch.assert_clean()
    await context.close()
