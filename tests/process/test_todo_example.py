"""examples/todo works as its README walks through: online, offline, and back, synced once."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import ServerProcess, free_port

TODO = Path(__file__).resolve().parents[2] / "examples" / "todo" / "todo.py"


def todo(url: str, db: Path, *args: str) -> str:
    """One command of the example on device database ``db``; its output."""
    done = subprocess.run(
        [sys.executable, str(TODO), "--server", url, "--db", str(db), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def items(output: str) -> dict[str, str]:
    """``{title: line}`` of the items a command printed."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        match = re.match(r"\[[ x]\] \S+  (.+?)(  \(not yet synced\))?$", line)
        if match:
            found[match.group(1)] = line
    return found


def test_the_todo_example_syncs_online_keeps_offline_writes_and_sends_them_once(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    port = free_port()
    data = tmp_path / "node"
    server = start_server(data, port=port)
    phone, tablet = tmp_path / "phone.db", tmp_path / "tablet.db"

    online = todo(server.url, phone, "add", "Buy milk")
    assert online.startswith("-- online") and "0 unsent" in online.splitlines()[0]
    assert "(not yet synced)" not in items(online)["Buy milk"]
    milk_id = items(online)["Buy milk"].split()[2]

    server.terminate()
    todo(server.url, phone, "add", "Written offline")
    offline = todo(server.url, phone, "done", milk_id)
    assert offline.startswith("-- offline") and "2 unsent" in offline.splitlines()[0]
    shown = items(offline)
    assert shown["Written offline"].endswith("(not yet synced)")
    assert shown["Buy milk"].startswith("[x]") and shown["Buy milk"].endswith("(not yet synced)")

    server = start_server(data, port=port)
    back = todo(server.url, phone, "list")
    assert back.startswith("-- online") and "0 unsent" in back.splitlines()[0]
    assert not any(line.endswith("(not yet synced)") for line in items(back).values())
    on_tablet = items(todo(server.url, tablet, "list"))
    assert set(on_tablet) == {"Buy milk", "Written offline"}
    assert on_tablet["Buy milk"].startswith("[x]")
    pulled = httpx.get(f"{server.url}/v1/sync/pull").json()["changes"]
    assert len(pulled) == 3, "each of the three writes reached the node once"
