"""The backup and restore commands of docs/operations.md, run as written on a live node.

A copy of the document database alone would lose the accounts and the signing keys: users
could not sign in, and every token issued before would stop verifying. And a store put back
without ``breakwater restore`` would hand out again the positions it gave to changes after the
backup (ADR 0018). The documented commands run as written (paths and URLs replaced); a
node started on the restored store has the documents of the backup, signs the same user in,
still accepts a token the old node issued, and refuses the cursor of a device that synced a
change the backup lacks with ``410 cursor_unknown``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess
from tests.services import POSTGRES_URL
from tests.storage.backends import drop_schema, postgres_url

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
ACCOUNT = {"email": "ann@example.com", "password": "correct horse battery"}
DOCS_URL = "postgresql://breakwater@db.internal:5432/breakwater"


def commands(section: str) -> list[str]:
    """The ``sh`` blocks of a section of docs/operations.md: SQLite first, then PostgreSQL."""
    text = OPERATIONS.read_text().split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 2, f"docs/operations.md: {section} has no SQLite and PostgreSQL blocks"
    return blocks


def shown_output(section: str, replacements: Mapping[str, str]) -> str:
    """The ``text`` block of a section of docs/operations.md, paths replaced, names masked."""
    text = OPERATIONS.read_text().split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    [shown] = re.findall(r"```text\n(.*?)```", text, flags=re.S)
    for documented, actual in replacements.items():
        shown = shown.replace(documented, actual)
    return masked_names(shown)


def masked_names(output: str) -> str:
    """``output`` with backup names, times and incarnations masked."""
    output = re.sub(r"\b\d{8}T\d{6}Z\b", "<name>", output)
    output = re.sub(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", "<time>", output)
    return re.sub(r"~[0-9a-f]{12}\b", "~<incarnation>", output).strip()


def run(script: str, replacements: Mapping[str, str]) -> str:
    """Run a documented block with its paths replaced, ``breakwater`` being this checkout's."""
    for shown, actual in replacements.items():
        script = script.replace(shown, actual)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BREAKWATER_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    done = subprocess.run(
        ["bash", "-e", "-c", script], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass
class Procedure:
    """What the documented blocks of one store run on, and how a node is started on it."""

    blocks: int
    replacements: dict[str, str]
    serve: tuple[str, ...]


@pytest.fixture(params=["sqlite", "postgres"])
async def procedure(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Procedure]:
    """The SQLite blocks on a data directory, or the PostgreSQL ones on a schema of this test."""
    live, backups = tmp_path / "live", tmp_path / "backups"
    backups.mkdir()
    paths = {"/var/lib/breakwater": str(live), "/backups": str(backups)}
    if request.param == "sqlite":
        if shutil.which("sqlite3") is None:
            pytest.skip("the procedure needs sqlite3")
        yield Procedure(0, paths, ())
        return
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("the procedure needs pg_dump and pg_restore")
    url, schema = postgres_url()
    # libpq's tools take the database's URL; the nodes and `breakwater restore` the store's.
    replacements = {
        f"--store {DOCS_URL}": f"--store {url}",
        "--schema=breakwater": f"--schema={schema}",
        DOCS_URL: POSTGRES_URL,
        **paths,
    }
    yield Procedure(1, replacements, ("--store", url))
    await drop_schema(schema)


def test_the_documented_backup_and_restore_bring_back_the_backup_and_a_new_origin(
    start_server: Callable[..., ServerProcess], tmp_path: Path, procedure: Procedure
) -> None:
    """Documents, accounts and tokens come back; a write after the backup is gone, and the
    cursor of a device that saw it is refused with ``410 cursor_unknown``."""
    live = tmp_path / "live"
    node = start_server(live, *procedure.serve)
    with httpx.Client(base_url=node.url, timeout=10) as http:
        token = http.post("/v1/auth/signup", json=ACCOUNT).json()["access_token"]
        wrote = http.put("/v1/collections/notes/docs/n1", json={"text": "keep me"})
        assert wrote.status_code == 201
        made = run(commands("Backups")[procedure.blocks], procedure.replacements)
        lost = http.put("/v1/collections/notes/docs/n2", json={"text": "after the backup"})
        assert lost.status_code == 201
        cursor = http.get("/v1/sync/pull").json()["cursor"]
    node.terminate()
    [backup] = (tmp_path / "backups").iterdir()
    stored = {"auth-keys.json", "manifest.json"}
    stored |= {"breakwater.db", "auth.db"} if procedure.blocks == 0 else {"breakwater.dump"}
    assert {path.name for path in backup.iterdir()} == stored

    printed = run(commands("Restore")[procedure.blocks], procedure.replacements)
    if procedure.blocks == 0:  # the outputs docs/operations.md shows, names and times masked
        assert shown_output("Backups", procedure.replacements) == masked_names(made)
        assert shown_output("Restore", procedure.replacements) == masked_names(printed)
    again = start_server(live, *procedure.serve)
    assert (live / "auth-keys.json").stat().st_mode & 0o077 == 0, "keys stay private"
    with httpx.Client(base_url=again.url, timeout=10) as http:
        assert http.get("/v1/collections/notes/docs/n1").json()["data"] == {"text": "keep me"}
        assert http.get("/v1/collections/notes/docs/n2").status_code == 404
        assert http.post("/v1/auth/login", json=ACCOUNT).status_code == 200
        me = http.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.json()["kind"] == "user", me.text
        refused = http.get("/v1/sync/pull", params={"cursor": cursor})
        assert (refused.status_code, refused.json()["reason"]) == (410, "ahead")
        new = http.put("/v1/collections/notes/docs/n3", json={"text": "after the restore"})
    assert printed.strip().endswith(f"new writes get origin {new.json()['origin']}")
    assert new.json()["origin"] != lost.json()["origin"]
    assert new.json()["seq"] == 1
