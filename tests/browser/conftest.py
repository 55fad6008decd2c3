"""Browser tests of the admin console: headless Chromium (Debian's ``chromium``, which `make
test` installs) driven by Playwright, against the embedded stack the integration tests share
(``tests/fixtures/stack.py``), so an action really runs its workflow. They save a screenshot
of each main page to ``docs/screenshots/`` (the README shows them)."""

import asyncio
import os
import re
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from devstack.ephemeral import REPO, RunningStack
from tests.conftest import TokenFactory, token_headers

CHROMIUM = Path(os.environ.get("TOLLGATE_TEST_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(os.environ.get("TOLLGATE_SCREENSHOTS_DIR", REPO / "docs" / "screenshots"))
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 15_000


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make test` installs Debian's chromium "
            "(apt-get install chromium), or set TOLLGATE_TEST_CHROMIUM"
        )
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser, embedded: RunningStack) -> AsyncIterator[Page]:
    """A fresh browser context (no cookies) on the stack's API."""
    context = await browser.new_context(
        viewport=VIEWPORT,  # type: ignore[arg-type]
        base_url=f"http://127.0.0.1:{embedded.settings.api_port}",
    )
    context.set_default_timeout(TIMEOUT_MS)
    opened = await context.new_page()
    try:
        yield opened
    finally:
        await context.close()


@pytest.fixture
def auth(embedded: RunningStack) -> TokenFactory:
    """Tokens the embedded stack accepts (its JWT secret, not the unit tests')."""
    return partial(token_headers, embedded.settings)


def bare_token(auth: TokenFactory, role: str, sub: str = "ops-browser") -> str:
    return auth(role, sub=sub)["Authorization"].removeprefix("Bearer ")


async def sign_in(page: Page, auth: TokenFactory, path: str = "/admin") -> None:
    """Open ``path`` signed out, sign in on the login page it leads to, and land on it."""
    await page.goto(path)
    await expect(page).to_have_url(re.compile(r"/admin/login\?next="))
    await page.fill("#token", bare_token(auth, "platform_admin"))
    await page.click("form[action='/admin/login'] button[type=submit]")
    await expect(page.locator("header nav")).to_be_visible()


async def screenshot(page: Page, name: str, *, hover: str | None = None) -> None:
    """``docs/screenshots/<name>.png`` of the viewport (1280x800), the mouse on ``hover``."""
    await asyncio.to_thread(SCREENSHOTS.mkdir, parents=True, exist_ok=True)
    if hover:
        await page.locator(hover).first.hover()
    else:
        await page.mouse.move(0, 0)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), animations="disabled")
