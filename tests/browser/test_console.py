"""The admin console in headless Chromium: an admin signs in, finds a document, edits it and
sees the edit in its history from the feed; a non-admin key is refused."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from tests.browser.conftest import screenshot
from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow


def create_key(data: Path, scope: str) -> str:
    """A new API key from ``breakwater keys create`` (the operator's way)."""
    command = [sys.executable, "-m", "breakwater", "keys", "create", "console", "--scope", scope]
    result = subprocess.run(
        [*command, "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.splitlines()[-1]


@pytest.fixture
def node(start_server: Callable[..., ServerProcess], tmp_path: Path) -> ServerProcess:
    """A node with two notes and an account."""
    server = start_server(tmp_path / "data")
    signup = httpx.post(
        f"{server.url}/v1/auth/signup",
        json={"email": "ed@example.com", "password": "correct horse"},
    )
    assert signup.status_code == 201
    for doc_id, title in (("n1", "first"), ("n2", "second")):
        put = httpx.put(f"{server.url}/v1/collections/notes/docs/{doc_id}", json={"title": title})
        assert put.status_code == 201
    return server


async def test_an_admin_finds_edits_and_sees_the_history(
    browser: Browser, node: ServerProcess, tmp_path: Path
) -> None:
    """Sign in with an admin key, query notes, open n2, save an edit; the history shows it."""
    key = create_key(tmp_path / "data", "admin")
    page = await browser.new_page()
    await page.goto(f"{node.url}/_/")
    await page.fill("#key", key)
    await page.click("#signin-form button")
    await expect(page.locator("#console")).to_be_visible()
    await expect(page.locator("#replication")).to_contain_text("has no peer regions")
    assert key not in page.url

    await page.fill("#q-collection", "notes")
    await page.fill("#q-where", "title:eq:second")
    await page.click("#query-form button")
    await expect(page.locator("#results tr")).to_have_count(1)
    await page.click("#results button")
    await expect(page.locator("#doc-name")).to_have_text("notes/n2")
    await expect(page.locator("#history tr")).to_have_count(1)

    await page.fill("#doc-data", '{"title": "second, edited"}')
    await page.click("#doc-save")
    await expect(page.locator("#doc-status")).to_contain_text("saved")
    await expect(page.locator("#history tr")).to_have_count(2)
    # Newest first: the edit is the change after the two puts (seqs 1 and 2).
    await expect(page.locator("#history tr").first).to_contain_text(":3")
    await screenshot(page, "console-edited")

    await page.fill("#k-name", "reports")
    await page.fill("#k-scopes", "read:notes")
    await page.click("#key-form button")
    await expect(page.locator("#key-result")).to_contain_text("bwk_")
    await expect(page.locator("#keys tr", has_text="reports")).to_contain_text("active")

    await page.fill("#a-query", "ed@")
    await page.click("#account-form button")
    await page.fill('[aria-label="roles of ed@example.com"]', "editor")
    await page.click("#accounts form button")
    await expect(page.locator("#account-result")).to_contain_text("Roles set")
    # The live chart has two scrapes of /metrics to compare (one every two seconds).
    await expect(page.locator("#rates")).to_contain_text("requests/s", timeout=10_000)
    await screenshot(page, "console-accounts")
    async with httpx.AsyncClient(base_url=node.url) as client:
        login = await client.post(
            "/v1/auth/login", json={"email": "ed@example.com", "password": "correct horse"}
        )
        me = await client.get(
            "/v1/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
        )
    assert me.json()["roles"] == ["editor"]
    async with httpx.AsyncClient(base_url=node.url) as client:
        stored = (await client.get("/v1/collections/notes/docs/n2")).json()
    assert stored["data"] == {"title": "second, edited"}


async def test_an_admin_disables_and_enables_an_account(
    browser: Browser, node: ServerProcess, tmp_path: Path
) -> None:
    """The accounts view disables an account (its sign-in is refused) and enables it again."""
    key = create_key(tmp_path / "data", "admin")
    page = await browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    await page.goto(f"{node.url}/_/")
    await page.fill("#key", key)
    await page.click("#signin-form button")
    await page.fill("#a-query", "ed@")
    await page.click("#account-form button")
    account = page.locator("#accounts tr", has_text="ed@example.com")
    await account.get_by_role("button", name="Disable").click()
    await expect(page.locator("#account-result")).to_contain_text("Disabled")
    await expect(account).to_contain_text("disabled")
    await screenshot(page, "console-account-disabled")
    body = {"email": "ed@example.com", "password": "correct horse"}
    async with httpx.AsyncClient(base_url=node.url) as client:
        refused = await client.post("/v1/auth/login", json=body)
    assert refused.status_code == 403 and refused.json()["type"] == "account_disabled"
    await account.get_by_role("button", name="Enable").click()
    await expect(page.locator("#account-result")).to_contain_text("Enabled")
    async with httpx.AsyncClient(base_url=node.url) as client:
        assert (await client.post("/v1/auth/login", json=body)).status_code == 200


async def test_a_non_admin_key_is_refused(
    browser: Browser, node: ServerProcess, tmp_path: Path
) -> None:
    """With an admin key in existence (the console is on), a read key cannot sign in."""
    create_key(tmp_path / "data", "admin")
    key = create_key(tmp_path / "data", "read:*")
    page = await browser.new_page()
    await page.goto(f"{node.url}/_/")
    await page.fill("#key", key)
    await page.click("#signin-form button")
    await expect(page.locator("#signin-error")).to_contain_text("not an admin key")
    await expect(page.locator("#console")).to_be_hidden()
    assert await page.evaluate("sessionStorage.length") == 0
    await screenshot(page, "console-refused")
