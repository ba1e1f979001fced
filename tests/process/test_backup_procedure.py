"""The backup commands of docs/operations.md, run on a live node, restore everything it holds.

A copy of the document database alone would lose the accounts and the signing keys: users
could not sign in, and every token issued before would stop verifying. The documented commands
run as written (paths replaced) while the node serves; a node started on the copies has the
documents, signs the same user in, and still accepts a token the old node issued.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
ACCOUNT = {"email": "ann@example.com", "password": "correct horse battery"}


def backup_commands() -> str:
    """The ``sh`` block of the Backups section."""
    section = OPERATIONS.read_text().split("## Backups", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert match is not None, "docs/operations.md: the Backups section has no commands"
    return match.group(1)


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="the procedure needs sqlite3")
def test_the_documented_backup_restores_documents_accounts_and_tokens(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    live, backups, restored = tmp_path / "live", tmp_path / "backups", tmp_path / "restored"
    backups.mkdir()
    node = start_server(live)
    with httpx.Client(base_url=node.url, timeout=10) as http:
        token = http.post("/v1/auth/signup", json=ACCOUNT).json()["access_token"]
        wrote = http.put("/v1/collections/notes/docs/n1", json={"text": "keep me"})
        assert wrote.status_code == 201
    commands = backup_commands()
    script = commands.replace("/var/lib/breakwater", str(live)).replace("/backups", str(backups))
    subprocess.run(["bash", "-e", "-c", script], check=True, timeout=60)
    node.terminate()

    restored.mkdir()
    for copy in backups.iterdir():
        name = re.sub(r"-\d{4}-\d{2}-\d{2}", "", copy.name)  # breakwater-2026-12-03.db -> ...
        shutil.copy2(copy, restored / name)
    assert {p.name for p in restored.iterdir()} == {"breakwater.db", "auth.db", "auth-keys.json"}
    assert (restored / "auth-keys.json").stat().st_mode & 0o077 == 0, "keys stay private"
    again = start_server(restored)
    with httpx.Client(base_url=again.url, timeout=10) as http:
        assert http.get("/v1/collections/notes/docs/n1").json()["data"] == {"text": "keep me"}
        assert http.post("/v1/auth/login", json=ACCOUNT).status_code == 200
        me = http.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.json()["kind"] == "user", me.text
