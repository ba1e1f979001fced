"""The admin console's replication panel in headless Chromium, against a real two-region
cluster: per peer its state, cursor, lag, breaker, bytes and repairs, and the stable vector,
updating live as replication runs and as the link to the peer fails and heals."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from breakwater.chaos.cluster import LocalCluster
from breakwater.chaos.cluster_spec import ClusterSpec
from tests.browser.conftest import screenshot

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


async def test_the_replication_panel_follows_the_peer_live(
    browser: Browser, tmp_path: Path
) -> None:
    """Signed in to us's console: eu's row shows it active with a closed breaker and the
    bytes pulled once eu's write replicated, the stable vector lists eu's origin; when us's
    link to eu resets every connection the row turns to an open breaker without a reload,
    and back to closed once the link heals."""
    async with LocalCluster(ClusterSpec(regions=2), tmp_path / "cluster") as cluster:
        eu, us = cluster.region("eu"), cluster.region("us")
        async with httpx.AsyncClient(timeout=10) as http:
            put = await http.put(f"{eu.nodes[0].url}/v1/collections/notes/docs/n1", json={"t": 1})
            assert put.is_success
        page = await browser.new_page()
        await page.goto(f"{us.nodes[0].url}/_/")
        await page.fill("#key", us.admin_key())
        await page.click("#signin-form button")
        await expect(page.locator("#replication")).to_contain_text("replicates with eu")
        await expect(page.locator("#replication-panel")).to_be_visible()
        peer = page.locator('#peers tr[data-peer="eu"]')
        await expect(peer).to_contain_text("active", timeout=30_000)
        await expect(peer).to_contain_text("closed")
        await expect(peer.locator("td").nth(6)).not_to_have_text("0 B", timeout=30_000)
        await expect(page.locator('#stable tr[data-origin^="eu~"]')).to_have_count(1)
        await screenshot(page, "console-replication")

        await cluster.set_fault(cluster.links(src="us", dst="eu"), "reset_peer")
        await expect(peer).to_contain_text("open", timeout=60_000)
        await expect(peer.locator("td").nth(10)).to_contain_text("unavailable")
        await screenshot(page, "console-replication-breaker-open")
        await cluster.heal_network()
        await expect(peer).to_contain_text("closed", timeout=60_000)
