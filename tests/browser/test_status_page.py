"""The public status page in headless Chromium: a store going down and coming back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from playwright.async_api import Browser, expect

from tests.browser.conftest import screenshot
from tests.conftest import ServerProcess
from tests.forwarder import Forwarder
from tests.services import POSTGRES_URL, require_service
from tests.storage.backends import drop_schema, postgres_url

pytestmark = pytest.mark.slow


@pytest.fixture
async def forwarder() -> AsyncIterator[Forwarder]:
    """A cuttable path to the shared PostgreSQL."""
    proxy = Forwarder(require_service(POSTGRES_URL))
    await proxy.start()
    yield proxy
    await proxy.aclose()


@pytest.fixture
async def node(
    forwarder: Forwarder, start_server: Callable[..., ServerProcess]
) -> AsyncIterator[ServerProcess]:
    """A node whose PostgreSQL store is reached through the forwarder."""
    direct, schema = postgres_url(pool_size="2", timeout="2")
    url = direct.replace("127.0.0.1:5432", f"127.0.0.1:{forwarder.port}")
    yield start_server(None, "--store", url)
    await drop_schema(schema)


async def test_status_page_shows_the_store_going_down_and_coming_back(
    browser: Browser, node: ServerProcess, forwarder: Forwarder
) -> None:
    """Operational, then the store and realtime down with an ongoing incident, then operational
    again with the incident ended; the page never shows the store's address."""
    page = await browser.new_page()
    await page.goto(f"{node.url}/status")
    overall = page.locator("#overall")
    await expect(overall).to_have_text("operational", timeout=20_000)
    await screenshot(page, "status-operational")

    await forwarder.cut()
    await expect(overall).to_have_text("down", timeout=20_000)
    store = page.locator('#components tr[data-component="store"] td').nth(1)
    await expect(store).to_have_text("down")
    ongoing = page.locator('#incidents tr[data-component="store"][data-ended="no"]')
    await expect(ongoing).to_have_count(1)
    await screenshot(page, "status-store-down")
    assert str(forwarder.port) not in await page.content()

    await forwarder.restore()
    await expect(overall).to_have_text("operational", timeout=30_000)
    # The pool may flap once while it reconnects: every store incident has ended, at least one.
    ended = page.locator('#incidents tr[data-component="store"][data-ended="yes"]')
    await expect(ended.first).to_be_visible()
    await expect(ongoing).to_have_count(0)
    await screenshot(page, "status-recovered")
