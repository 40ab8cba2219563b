"""What every page test watches in the browser: console errors, uncaught errors, dialogs and 5xx answers."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from helpers import PASSWORD
from playwright.async_api import ConsoleMessage, Dialog, Page, Response, expect

# A whole key: the prefix and then more characters than the masked form's `****...****` + last 4.
WHOLE_KEY = re.compile(r"sk-trollllm-(?:friend-)?[0-9A-Za-z_-]{16,}")


@dataclass
class PageWatch:
    """Everything that went wrong on a page while it was watched."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    documents: set[str] = field(default_factory=set)
    _pending: set[asyncio.Task[None]] = field(default_factory=set)

    def attach(self, page: Page) -> PageWatch:
        """Start watching `page`; a dialog (an executed `alert`) is recorded and dismissed."""
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("dialog", self._on_dialog)
        page.on("response", self._on_response)
        return self

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        # A page answered with a 4xx status (a refused form) is reported by Chromium as a failed load;
        # that is the page's status, not an error on it. A failed script, style or fetch still counts.
        url = message.location.get("url", "")
        if message.text.startswith("Failed to load resource") and url in self.documents:
            return
        self.console_errors.append(f"{message.text} ({url})")

    def _on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        task = asyncio.ensure_future(dialog.dismiss())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _on_response(self, response: Response) -> None:
        if response.request.resource_type == "document" and response.status < 500:
            self.documents.add(response.url)
        if response.status >= 500:
            self.server_errors.append(f"{response.status} {response.url}")

    def assert_clean(self) -> None:
        """No dialog opened, nothing logged as an error, no uncaught error, no 5xx."""
        assert not self.dialogs, f"a dialog opened (injected script ran?): {self.dialogs}"
        assert not self.page_errors, f"uncaught errors: {self.page_errors}"
        assert not self.console_errors, f"console errors: {self.console_errors}"
        assert not self.server_errors, f"server errors: {self.server_errors}"


async def log_in(page: Page, username: str) -> None:
    """Sign in through the login form (which also sets the CSRF cookie the page scripts echo)."""
    await page.goto("/login")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
