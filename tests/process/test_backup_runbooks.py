"""The archive, point-in-time restore, encrypted backup and S3 runbooks of docs/operations.md,
run as written (paths, the S3 endpoint, its credentials and bucket, and the time replaced).

A node takes writes before and after a moment T while the documented archive command runs; the
documented restore to T brings back exactly the writes before T (each write waits for its
acknowledgement before the next, and T falls between two of them). The S3 runbook does the same
with an encrypted backup and archive on a real S3-compatible server (moto).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess
from tests.ops.s3 import s3_server
from tests.process.test_backups import iso

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
DOCUMENTED_TIME = "2026-12-06T08:00:00Z"

pytestmark = pytest.mark.slow


def blocks(section: str) -> list[str]:
    """The ``sh`` blocks of one section of docs/operations.md."""
    text = OPERATIONS.read_text().split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def replaced(script: str, replacements: Mapping[str, str]) -> str:
    for shown, actual in replacements.items():
        script = script.replace(shown, actual)
    return script


def environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This checkout's ``breakwater`` first on PATH, no inherited BREAKWATER_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BREAKWATER_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return {**env, **extra}


def run(script: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["bash", "-e", "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    return done


def around_a_moment(
    node: ServerProcess, archive_command: str, env: Mapping[str, str]
) -> tuple[str, list[str], list[str]]:
    """Writes before and after T with the documented archive running; returns T and both."""
    archiver = subprocess.Popen(
        ["bash", "-c", f"exec {archive_command}"], env=env, stderr=subprocess.PIPE, text=True
    )
    assert archiver.stderr is not None
    assert archiver.stderr.readline().startswith("archiving"), "the archiver started"
    before, after = [f"b{n}" for n in range(5)], [f"a{n}" for n in range(5)]
    with httpx.Client(base_url=node.url, timeout=10) as http:
        for doc_id in before:
            assert http.put(f"/v1/collections/notes/docs/{doc_id}", json={}).status_code == 201
        time.sleep(0.05)
        moment = iso(time.time())
        time.sleep(0.05)
        for doc_id in after:
            assert http.put(f"/v1/collections/notes/docs/{doc_id}", json={}).status_code == 201
    time.sleep(1.5)
    archiver.send_signal(signal.SIGTERM)
    _, errors = archiver.communicate(timeout=30)
    assert archiver.returncode == 0, errors
    node.terminate()
    return moment, before, after


def check(node: ServerProcess, present: list[str], absent: list[str]) -> None:
    with httpx.Client(base_url=node.url, timeout=10) as http:
        for doc_id in present:
            assert http.get(f"/v1/collections/notes/docs/{doc_id}").status_code == 200, doc_id
        for doc_id in absent:
            assert http.get(f"/v1/collections/notes/docs/{doc_id}").status_code == 404, doc_id


def test_the_documented_archive_and_point_in_time_restore(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    live = tmp_path / "live"
    paths = {"/var/lib/breakwater": str(live), "/backups": str(tmp_path / "backups")}
    paths["/archive"] = str(tmp_path / "archive")
    env = environment({})
    node = start_server(live)
    run(replaced(blocks("Backups")[0], paths), env)
    [archive] = blocks("Continuous archive")
    moment, before, after = around_a_moment(node, replaced(archive, paths).strip(), env)

    [restore] = blocks("Point-in-time restore")
    done = run(replaced(restore, {**paths, DOCUMENTED_TIME: moment}), env)
    assert "restored backup" in done.stdout and "new writes get origin" in done.stdout
    check(start_server(live), before, after)


def test_the_documented_encrypted_backup_on_s3(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    live, etc = tmp_path / "live", tmp_path / "etc"
    etc.mkdir()
    with s3_server() as s3:
        shown = {
            "/var/lib/breakwater": str(live),
            "/etc/breakwater": str(etc),
            "https://s3.eu-west.example.com": s3.endpoint,
            "AKEXAMPLE": s3.env["AWS_ACCESS_KEY_ID"],
            "secretexample": s3.env["AWS_SECRET_ACCESS_KEY"],
            "breakwater-backups": s3.bucket,
        }
        env = environment({"AWS_DEFAULT_REGION": "us-east-1"})
        backup, archive, restore = blocks("Encrypted backups and S3")
        node = start_server(live)
        run(replaced(backup, shown), env)
        key = (etc / "backup.key").read_text().strip()
        assert (etc / "backup.key").stat().st_mode & 0o077 == 0
        s3_env = {**env, **s3.env}
        moment, before, after = around_a_moment(node, replaced(archive, shown).strip(), s3_env)
        done = run(replaced(restore, {**shown, DOCUMENTED_TIME: moment}), s3_env)
        assert key not in done.stdout + done.stderr, "the key is never shown"
        check(start_server(live), before, after)
