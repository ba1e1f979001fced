"""``breakwater bench archive-lag`` and ``breakwater bench restore``.

Archive lag: a SQLite store takes paced single-document writes (each its own request to the
group commit, as devices send them) while ``breakwater archive`` runs as its own process, as an
operator runs it; a change's lag is from its commit time to the moment its segment was durably
in the archive (the segment file's modification time, set just before its fsync and rename).
The floor measured in the same run is the archiver's read interval plus writing and fsyncing one
segment of the median size: no follower that polls at that interval can do better.

Restore: a store of ``docs`` documents is written in group commits of ``LOAD_BATCH``, archived,
and backed up twice (empty and full). Timed: putting back the full backup (checksums verified),
and putting back the empty one and replaying every archived change (the point-in-time path), each
against copying the same bytes as the floor.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from breakwater.bench._node import machine
from breakwater.bench.stats import median, percentile
from breakwater.core.engine import Engine
from breakwater.core.hlc import HybridClock
from breakwater.core.mutation import Mutation
from breakwater.ops.archive import SEGMENTS, Archiver, decode_segment
from breakwater.ops.backup import AUTH_FILE, KEYS_FILE, NodeFiles, take_backup
from breakwater.ops.objects import FolderObjects
from breakwater.ops.restore import restore_backup
from breakwater.ops.sealing import unseal
from breakwater.storage.sqlite import SqliteStore

LOAD_BATCH = 2000
Progress = Callable[[str], None]


def _store(path: Path) -> SqliteStore:
    return SqliteStore(path, Engine("bench", HybridClock("bench")))


def _segment_lags(archive: Path) -> tuple[list[float], list[int]]:
    """Each archived change's lag (s) and each segment's size (bytes)."""
    lags: list[float] = []
    sizes: list[int] = []
    objects = FolderObjects(archive)
    for name in objects.names(SEGMENTS):
        stored = objects.get(name)
        sizes.append(len(stored))
        written_ms = (archive / name).stat().st_mtime_ns / 1e6
        changes, _ = decode_segment(unseal(name, stored, None))
        lags.extend((written_ms - change.at_ms) / 1000 for change in changes)
    return lags, sizes


def _fsync_seconds(folder: Path, size: int, samples: int = 20) -> float:
    """The median time to write and fsync ``size`` bytes into a new file, then rename it."""
    times = []
    body = os.urandom(max(size, 1))
    for n in range(samples):
        started = time.perf_counter()
        FolderObjects(folder).put(f"floor-{n}", body)
        times.append(time.perf_counter() - started)
    return median(times)


async def _archive_lag_run(
    folder: Path, rate: float, seconds: float, interval: float, progress: Progress
) -> dict[str, float]:
    store = _store(folder / "live.db")
    await store.open()
    archiver = await asyncio.create_subprocess_exec(
        *[
            sys.executable, "-m", "breakwater", "archive", "--store",
            f"sqlite:///{folder / 'live.db'}", "--region", "bench", "--interval", str(interval),
            "--to", (folder / "archive").as_uri(),
        ],
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert archiver.stderr is not None
        while True:  # "archiving …": it follows the feed from now on
            line = await asyncio.wait_for(archiver.stderr.readline(), 60)
            if not line or line.startswith(b"archiving"):
                break
        total = int(rate * seconds)
        pending: set[asyncio.Task[Any]] = set()
        started = time.perf_counter()
        for n in range(total):
            delay = started + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(
                store.apply([Mutation(f"w{n}", "notes", f"d{n}", "set", {"n": n})])
            )
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
        achieved = total / (time.perf_counter() - started)
        progress(f"wrote {total:,} documents at {achieved:,.0f}/s; waiting for the archive")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lags, sizes = _segment_lags(folder / "archive")
            if len(lags) >= total:
                break
            await asyncio.sleep(0.2)
    finally:
        archiver.terminate()
        await asyncio.wait_for(archiver.wait(), 30)
        await store.aclose()
    if len(lags) < total:
        raise RuntimeError(f"the archive holds {len(lags)} of {total} changes after 60 s")
    floor = interval + _fsync_seconds(folder / "floor", int(median([float(s) for s in sizes])))
    return {
        "achieved_writes_per_s": achieved,
        "lag_p50_s": percentile(lags, 0.5),
        "lag_p99_s": percentile(lags, 0.99),
        "lag_max_s": max(lags),
        "floor_s": floor,
        "segments": len(sizes),
    }


async def archive_lag(
    runs: int, rate: float, seconds: float, interval: float, progress: Progress
) -> dict[str, Any]:
    """Medians over ``runs`` of the archive lag at ``rate`` writes per second."""
    results = []
    for run in range(runs):
        progress(f"run {run + 1}/{runs}: {rate:.0f} writes/s for {seconds:.0f} s")
        with tempfile.TemporaryDirectory(prefix="bw-bench-archive-") as folder:
            results.append(await _archive_lag_run(Path(folder), rate, seconds, interval, progress))
    keys = results[0].keys()
    return {
        "runs": results,
        "median": {key: median([r[key] for r in results]) for key in keys},
        "target_lag_p99_s": 1.0,
        "interval_s": interval,
        "machine": machine(),
    }


async def _fill(store: SqliteStore, docs: int, progress: Progress) -> None:
    for first in range(0, docs, LOAD_BATCH):
        batch = [
            Mutation(f"m{n}", "notes", f"d{n}", "set", {"n": n, "text": f"document {n}"})
            for n in range(first, min(docs, first + LOAD_BATCH))
        ]
        await store.apply(batch)
        if (first // LOAD_BATCH) % 50 == 0:
            progress(f"wrote {first + len(batch):,}/{docs:,} documents")


def _timed_restore(
    folder: Path, backups: FolderObjects, name: str, archive: FolderObjects | None
) -> float:
    target = folder / f"restored-{name}"
    node = NodeFiles(
        f"sqlite:///{target / 'breakwater.db'}", target / AUTH_FILE, target / KEYS_FILE
    )
    started = time.perf_counter()
    restore_backup(node, backups, name, None, archive, None, lambda line: None)
    elapsed = time.perf_counter() - started
    shutil.rmtree(target)
    return elapsed


async def restore(docs: int, progress: Progress) -> dict[str, Any]:
    """Seconds (and documents per second) to restore ``docs`` documents both ways."""
    with tempfile.TemporaryDirectory(prefix="bw-bench-restore-") as work:
        folder = Path(work)
        live = folder / "live.db"
        node = NodeFiles(f"sqlite:///{live}", folder / AUTH_FILE, folder / KEYS_FILE)
        backups, archive = FolderObjects(folder / "backups"), FolderObjects(folder / "archive")
        store = _store(live)
        await store.open()
        try:
            await take_backup(node, backups, "empty", None, lambda line: None)
            await _fill(store, docs, progress)
            progress("archiving")
            archiver = Archiver(store, archive, None, batch=10_000)
            while await archiver.step():
                pass
            progress("backing up")
            await take_backup(node, backups, "full", None, lambda line: None)
        finally:
            await store.aclose()
        size = (folder / "backups" / "full" / "breakwater.db").stat().st_size
        started = time.perf_counter()
        shutil.copyfile(folder / "backups" / "full" / "breakwater.db", folder / "floor.db")
        copy_floor = time.perf_counter() - started
        progress("restoring the full backup")
        from_backup = await asyncio.to_thread(_timed_restore, folder, backups, "full", None)
        progress(f"replaying {docs:,} archived changes onto the empty backup")
        replayed = await asyncio.to_thread(_timed_restore, folder, backups, "empty", archive)
    return {
        "docs": docs,
        "backup_bytes": size,
        "from_backup_s": from_backup,
        "from_backup_docs_per_s": docs / from_backup,
        "replay_s": replayed,
        "replay_docs_per_s": docs / replayed,
        "copy_floor_s": copy_floor,
        "machine": machine(),
    }
