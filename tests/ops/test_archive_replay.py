"""The archive and its replay: a restore to a moment T is the store exactly as it was at T.

A store is written in many small commits at known (injected) commit times while the archiver
reads the feed at arbitrary points in between, a base backup is copied at one point, and the
replay of the archive onto that copy up to T is compared with what the store held at T: every
document's state, and the feed's positions. Where the archive cannot be exact (a document written
twice within one read across T) the replay must stop at an earlier point and say so, never
include a change committed after T.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breakwater.bench.disk import realistic_documents
from breakwater.core.collections import CollectionConfig
from breakwater.core.engine import StoredDoc
from breakwater.core.mutation import Mutation
from breakwater.ops import sealing
from breakwater.ops.archive import Archiver, read_archive, replay_plan
from breakwater.ops.backup import copy_database
from breakwater.ops.objects import FolderObjects
from breakwater.ops.replay import replay_sqlite
from breakwater.storage.sqlite import SqliteStore
from tests.storage.backends import engine

DOCS = ("a", "b", "c")
Step = tuple[str, Any]  # ("write", (doc, value, delete?)) | ("archive", None) | ("backup", None)

steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("write"), st.tuples(st.sampled_from(DOCS), st.integers(0, 9), st.booleans())
        ),
        st.tuples(st.just("archive"), st.none()),
    ),
    min_size=1,
    max_size=25,
)


def _docs(path: Path) -> dict[tuple[str, str], tuple[str, str | bytes | None, str, int]]:
    """Every document row: version, data, origin, seq (what a restore must bring back)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT collection, id, version, data, origin, seq FROM docs")
        return {(r[0], r[1]): (r[2], r[3], r[4], r[5]) for r in rows}


def _feed(path: Path) -> list[tuple[str, int, str]]:
    """The feed's positions in commit order, with their mutation ids."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT origin, seq, mutation_id FROM changes ORDER BY lsn")
        return [(r[0], r[1], r[2]) for r in rows]


BODY = realistic_documents(1)[0]["body"]
"""Prose, so that odd values make bodies the SQLite store keeps compressed (ADR 0050)."""
INDEXED = {"notes": CollectionConfig("notes", indexes=("v",))}
"""A configured index: the replay's writes must compute it over compressed bodies too."""


async def _write(store: SqliteStore, n: int, doc: str, value: int, delete: bool) -> StoredDoc:
    data = None if delete else {"v": value, "n": n, **({"body": BODY} if value % 2 else {})}
    op = "delete" if delete else "set"
    [result] = await store.apply([Mutation(f"m{n}", "notes", doc, op, data)])
    assert result.status == "applied" and result.doc is not None
    return result.doc


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(script=steps, backup_at=st.integers(0, 25), cut=st.integers(0, 30))
def test_a_replay_to_t_is_the_store_at_t_or_an_earlier_exact_point(
    tmp_path_factory: pytest.TempPathFactory, script: list[Step], backup_at: int, cut: int
) -> None:
    """Whatever the writes, reads of the archiver, backup point and T: the replay reaches a
    point at or before T and is the store as it was there, documents and feed."""
    asyncio.run(_replay_to(tmp_path_factory.mktemp("run"), script, backup_at, cut))


async def _replay_to(folder: Path, script: list[Step], backup_at: int, cut: int) -> None:
    now = [1_000]
    store = SqliteStore(folder / "live.db", engine(collections=INDEXED), clock_ms=lambda: now[0])
    await store.open()
    archive = FolderObjects(folder / "archive")
    archiver = Archiver(store, archive, None)
    snapshots: dict[int, Path] = {}
    base, base_head, base_ms = folder / "base.db", {}, 0
    try:
        for index, (kind, arguments) in enumerate(script):
            if index == backup_at:
                base_head, base_ms = copy_database(folder / "live.db", base) or {}, now[0]
            if kind == "archive":
                await archiver.step()
                continue
            doc, value, delete = arguments
            now[0] += 10
            await _write(store, index, doc, value, delete and value % 3 == 0)
            snapshots[now[0]] = folder / f"at-{now[0]}.db"
            copy_database(folder / "live.db", snapshots[now[0]])
        if not base.exists():
            base_head, base_ms = copy_database(folder / "live.db", base) or {}, now[0]
        await archiver.step()
    finally:
        await store.aclose()

    until = 1_000 + cut * 10
    if base_ms > until:
        return  # a restore to T starts from a backup taken before T
    plan = replay_plan(read_archive(archive, None), base_head, until)
    replay_sqlite(base, plan.changes, lambda done: None)
    if plan.changes:
        reached = plan.changes[-1].at_ms
        assert reached <= until, "no change committed after T is replayed"
        assert _docs(base) == _docs(snapshots[reached])
        assert _feed(base) == _feed(snapshots[reached])
    if plan.exact:
        at_t = max((m for m in snapshots if m <= until), default=None)
        assert _feed(base) == ([] if at_t is None else _feed(snapshots[at_t]))
        assert _docs(base) == ({} if at_t is None else _docs(snapshots[at_t]))


async def test_a_document_written_twice_in_one_read_keeps_only_its_last_state(
    tmp_path: Path,
) -> None:
    """The case that makes a plan inexact, on purpose: T between two writes of one read."""
    now = [1_000]
    store = SqliteStore(tmp_path / "live.db", engine(), clock_ms=lambda: now[0])
    await store.open()
    archive = FolderObjects(tmp_path / "archive")
    archiver = Archiver(store, archive, None)
    try:
        now[0] = 1_010
        await _write(store, 1, "a", 1, False)
        await archiver.step()
        now[0] = 1_020
        await _write(store, 2, "a", 2, False)
        now[0] = 1_030
        await _write(store, 3, "a", 3, False)
        await archiver.step()
    finally:
        await store.aclose()
    changes = list(read_archive(archive, None))
    assert [c.current for c in changes] == [True, False, True]
    plan = replay_plan(iter(changes), {}, 1_025)
    assert ([c.mutation_id for c in plan.changes], plan.exact) == (["m1"], False)
    plan = replay_plan(iter(changes), {}, 1_030)
    assert ([c.mutation_id for c in plan.changes], plan.exact) == (["m1", "m2", "m3"], True)


async def test_a_damaged_or_encrypted_segment_is_refused(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "live.db", engine())
    await store.open()
    key = sealing.load_key(None) or bytes(32)
    plain, secret = FolderObjects(tmp_path / "plain"), FolderObjects(tmp_path / "secret")
    try:
        await _write(store, 1, "a", 1, False)
        await Archiver(store, plain, None).step()
        await Archiver(store, secret, key).step()
    finally:
        await store.aclose()
    [name] = plain.names("segments/")
    stored = bytearray(plain.get(name))
    stored[-3] ^= 1
    plain.put(name, bytes(stored))
    with pytest.raises(sealing.SealBroken, match="checksum"):
        list(read_archive(plain, None))
    with pytest.raises(sealing.SealBroken, match="encrypted"):
        list(read_archive(secret, None))
    with pytest.raises(sealing.SealBroken, match="wrong key"):
        list(read_archive(secret, bytes(range(32))))
    assert [c.mutation_id for c in read_archive(secret, key)] == ["m1"]
    [encrypted] = secret.names("segments/")
    secret.put(encrypted, sealing.seal(encrypted, b"forged", None))
    with pytest.raises(sealing.SealBroken, match="not encrypted"):
        list(read_archive(secret, key))
