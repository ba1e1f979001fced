"""``breakwater users disable|enable|delete|export``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from typer.testing import CliRunner

from breakwater.auth.records import Account
from breakwater.auth.sqlite_store import SqliteAuthStore
from breakwater.cli.main import app
from breakwater.server.node import Node
from tests.auth.conftest import RULES, sign_up
from tests.realtime.conftest import LiveNode


def test_disable_and_enable_change_the_store(tmp_path: Path) -> None:
    """disable ends the sessions and marks the account; enable clears it; unknown is an error."""
    store = SqliteAuthStore(tmp_path / "auth.db")
    store.open()
    store.create_account(Account("u1", "cli@example.com", "h", anonymous=False))
    store.close()
    runner = CliRunner()
    data = ["--data", str(tmp_path)]
    disabled = runner.invoke(app, ["users", "disable", "CLI@example.com", *data])
    assert disabled.exit_code == 0, disabled.output
    store.open()
    assert store.disabled_uids() == {"u1"}
    store.close()
    enabled = runner.invoke(app, ["users", "enable", "cli@example.com", *data])
    assert enabled.exit_code == 0, enabled.output
    store.open()
    assert store.disabled_uids() == frozenset()
    store.close()
    unknown = runner.invoke(app, ["users", "disable", "nobody@example.com", *data])
    assert unknown.exit_code != 0


async def test_export_then_delete_through_a_running_node(
    make_node: Callable[..., Awaitable[LiveNode]], tmp_path: Path
) -> None:
    """export writes the account and its documents; delete removes both through the node."""
    live = await make_node(RULES)
    node: Node = live.app.state.node
    key = node.auth.create_key("cli", ["admin"])[0]
    async with httpx.AsyncClient(base_url=live.url) as http:
        user = await sign_up(http, "gone@example.com")
        put = await http.put(
            "/v1/collections/notes/docs/g1", json={"owner": user.uid}, headers=user.headers
        )
        assert put.status_code == 201
    runner = CliRunner()
    out = tmp_path / "export.json"
    common = ["--url", live.url, "--key", key]
    exported = await asyncio.to_thread(
        runner.invoke, app, ["users", "export", "gone@example.com", "-o", str(out), *common]
    )
    assert exported.exit_code == 0, exported.output
    body = json.loads(out.read_text())
    assert body["account"]["uid"] == user.uid
    assert [d["id"] for d in body["collections"]["notes"]] == ["g1"]
    no_key = await asyncio.to_thread(runner.invoke, app, ["users", "delete", "x@y.io", "--yes"])
    assert no_key.exit_code != 0
    deleted = await asyncio.to_thread(
        runner.invoke, app, ["users", "delete", "gone@example.com", "--yes", *common]
    )
    assert deleted.exit_code == 0, deleted.output
    doc = await node.store.get("notes", "g1")
    assert doc is not None and doc.deleted
    again = await asyncio.to_thread(
        runner.invoke, app, ["users", "delete", "gone@example.com", "--yes", *common]
    )
    assert again.exit_code != 0
