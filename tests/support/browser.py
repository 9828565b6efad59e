"""A real Chromium (Debian's /usr/bin/chromium, driven by Playwright) on the console, with every
console error and uncaught page error collected, for tests/console and bench/console_shots.py."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from playwright.async_api import ConsoleMessage, Error, Page, async_playwright


def chromium_path() -> str:
    """The system's Chromium: Playwright's own browser downloads are not available here."""
    found = os.environ.get("KEEL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(found):
        raise RuntimeError("chromium missing: apt-get install chromium (scripts/test does)")
    return found


@dataclass
class Console:
    """A page on a server's /console, and what went wrong on it so far."""

    page: Page
    url: str
    errors: list[str] = field(default_factory=list)

    async def visit(self, route: str) -> None:
        """Open `#/route` (the caller then waits for what the view shows: a thread's view keeps
        its SSE streams open, so the network never goes idle)."""
        await self.page.goto(f"{self.url}/console/#/{route}")

    def record(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def crashed(self, error: Error) -> None:
        self.errors.append(f"page error: {error}")


@contextlib.asynccontextmanager
async def open_console(url: str, width: int = 1280, height: int = 900) -> AsyncIterator[Console]:
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path(), args=args)
        try:
            page = await browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(30_000)
            console = Console(page, url)
            page.on("console", console.record)
            page.on("pageerror", console.crashed)
            yield console
        finally:
            await browser.close()
