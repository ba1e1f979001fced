"""``breakwater backup``, ``archive`` and ``restore`` on a node under a write load.

A writer keeps writing new documents through the API while the backup is taken and the archive
runs; every write's send and acknowledgement times are kept. A restore into a fresh data
directory must then hold every write acknowledged before the point asked for (the backup's
start, or T) and none sent after it; writes in flight across the point may go either way. The
same runs against a real S3-compatible server (moto) with an encrypted backup, and a damaged
backup or a missing key is refused with nothing put back.
"""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess
from tests.ops.s3 import S3Server, s3_server

pytestmark = pytest.mark.slow


@dataclass
class Write:
    """One document written: when it was sent and when the node acknowledged it."""

    doc_id: str
    sent: float
    acked: float | None = None


@dataclass
class Writer:
    """Writes new documents one after another until stopped."""

    url: str
    writes: list[Write] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            while not self.stop.is_set():
                write = Write(f"w{len(self.writes)}", time.time())
                self.writes.append(write)
                answer = http.put(f"/v1/collections/notes/docs/{write.doc_id}", json={"n": 1})
                if answer.status_code == 201:
                    write.acked = time.time()


def breakwater(
    *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a ``breakwater`` command of this checkout."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("BREAKWATER_")}
    return subprocess.run(
        [sys.executable, "-m", "breakwater", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**base, **(env or {})},
    )


def iso(moment: float) -> str:
    """``moment`` as ``--to`` takes it."""
    when = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Run:
    """What one loaded run left: the writes, the backup's start and a moment T after it."""

    writes: list[Write]
    backup_started: float
    backup_done: float
    moment: float


def loaded_run(
    node: ServerProcess, live: Path, backups: str, archive: str, env: Mapping[str, str]
) -> Run:
    """Write for a few seconds with the archive running; back up and pick T meanwhile."""
    archiver = subprocess.Popen(
        [sys.executable, "-m", "breakwater", "archive", "--data", str(live), "--to", archive],
        env={**os.environ, **env},
        stderr=subprocess.PIPE,
        text=True,
    )
    writer = Writer(node.url)
    thread = threading.Thread(target=writer.run)
    thread.start()
    try:
        time.sleep(1.0)
        backup_started = time.time()
        made = breakwater("backup", "--data", str(live), "--to", backups, env=env)
        assert made.returncode == 0, made.stderr
        backup_done = time.time()
        time.sleep(1.0)
        moment = time.time()
        time.sleep(1.0)
    finally:
        writer.stop.set()
        thread.join()
    time.sleep(1.5)  # the archive catches up (its lag is far below a second)
    archiver.send_signal(signal.SIGTERM)
    _, errors = archiver.communicate(timeout=30)
    assert archiver.returncode == 0, errors
    node.terminate()
    return Run(writer.writes, backup_started, backup_done, moment)


def check_restored(
    start_server: Callable[..., ServerProcess],
    data: Path,
    writes: list[Write],
    point: float,
    latest: float | None = None,
) -> None:
    """Every write acknowledged before ``point`` is there, none sent after ``latest`` (the
    point itself, unless the point is only known to lie between the two)."""
    node = start_server(data)
    after = point if latest is None else latest
    with httpx.Client(base_url=node.url, timeout=10) as http:
        kept = {w.doc_id for w in writes if w.acked is not None and w.acked < point}
        dropped = {w.doc_id for w in writes if w.sent > after + 0.002}
        assert kept and dropped, "the run wrote on both sides of the point"
        for doc_id in kept:
            assert http.get(f"/v1/collections/notes/docs/{doc_id}").status_code == 200, doc_id
        for doc_id in dropped:
            assert http.get(f"/v1/collections/notes/docs/{doc_id}").status_code == 404, doc_id
    node.terminate()


def test_backup_under_load_then_restore_to_the_backup_to_t_and_to_the_latest(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    live = tmp_path / "live"
    backups, archive = (tmp_path / "backups").as_uri(), (tmp_path / "archive").as_uri()
    run = loaded_run(start_server(live), live, backups, archive, {})

    only_backup = tmp_path / "from-backup"
    done = breakwater("restore", "--data", str(only_backup), "--from", backups)
    assert done.returncode == 0, done.stderr
    # The backup reads its snapshot somewhere between the command's start and its end.
    check_restored(start_server, only_backup, run.writes, run.backup_started, run.backup_done)

    to_t = tmp_path / "to-t"
    done = breakwater(
        "restore", "--data", str(to_t), "--from", backups, "--archive", archive,
        "--to", iso(run.moment),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "replaying" in done.stderr and "verified" in done.stderr, "progress is shown"
    check_restored(start_server, to_t, run.writes, run.moment)

    latest = tmp_path / "latest"
    done = breakwater("restore", "--data", str(latest), "--from", backups, "--archive", archive)
    assert done.returncode == 0, done.stderr
    assert "exact" not in done.stdout, done.stdout
    node = start_server(latest)
    with httpx.Client(base_url=node.url, timeout=10) as http:
        for write in run.writes:
            if write.acked is not None:
                assert http.get(f"/v1/collections/notes/docs/{write.doc_id}").status_code == 200


@pytest.fixture
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


def test_an_encrypted_backup_and_archive_on_s3_restore_only_with_their_key(
    start_server: Callable[..., ServerProcess], tmp_path: Path, s3: S3Server
) -> None:
    key = breakwater("backup", "--new-key").stdout.strip()
    env = {**s3.env, "BREAKWATER_BACKUP_KEY": key}
    live = tmp_path / "live"
    backups, archive = f"s3://{s3.bucket}/backups", f"s3://{s3.bucket}/archive"
    run = loaded_run(start_server(live), live, backups, archive, env)

    target = tmp_path / "restored"
    refused = breakwater(
        "restore", "--data", str(target), "--from", backups, "--archive", archive, env=s3.env
    )
    assert refused.returncode == 1 and "is encrypted" in refused.stderr, refused.stderr
    assert not target.exists(), "nothing is put back"
    wrong = {**s3.env, "BREAKWATER_BACKUP_KEY": breakwater("backup", "--new-key").stdout.strip()}
    refused = breakwater("restore", "--data", str(target), "--from", backups, env=wrong)
    assert refused.returncode == 1 and "wrong key" in refused.stderr, refused.stderr
    assert key not in refused.stderr + refused.stdout

    done = breakwater(
        "restore", "--data", str(target), "--from", backups, "--archive", archive,
        "--to", iso(run.moment), env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert key not in done.stderr + done.stdout, "the key is never printed"
    check_restored(start_server, target, run.writes, run.moment)


def test_a_damaged_backup_is_refused_and_nothing_is_put_back(tmp_path: Path) -> None:
    live = tmp_path / "live"
    made = breakwater("restore", "--data", str(live))  # no store yet: refused
    assert made.returncode == 2
    from tests.conftest import free_port

    port = free_port()
    node = subprocess.Popen(
        [sys.executable, "-m", "breakwater", "serve", "--data", str(live), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.put(f"http://127.0.0.1:{port}/v1/collections/notes/docs/a", json={"n": 1})
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        backups = tmp_path / "backups"
        made = breakwater("backup", "--data", str(live), "--to", backups.as_uri(), "--name", "b1")
        assert made.returncode == 0, made.stderr
    finally:
        node.terminate()
        node.wait(timeout=20)
    for stored in (backups / "b1").iterdir():
        assert stored.stat().st_mode & 0o077 == 0, f"{stored.name} is private from its creation"
    store = backups / "b1" / "breakwater.db"
    damaged = bytearray(store.read_bytes())
    damaged[len(damaged) // 2] ^= 0x40
    store.write_bytes(bytes(damaged))
    target = tmp_path / "restored"
    refused = breakwater("restore", "--data", str(target), "--from", backups.as_uri())
    assert refused.returncode == 1, refused.stderr
    assert "b1/breakwater.db: checksum" in refused.stderr
    assert not (target / "breakwater.db").exists()
