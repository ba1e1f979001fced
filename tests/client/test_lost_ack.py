"""An acknowledgement the device lost (committed without its own fsync, ADR 0060) costs a
repeated push answered ``duplicate``, and nothing else: the write is applied once and the
device ends as it would have."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from breakwater.client import Client, MutationsAcknowledged, Status
from tests.client.conftest import feed, record_events, server_doc, wait_status
from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow


def _snapshot(db: Path) -> dict[Path, bytes]:
    """The database's files as they are (the WAL and its index too, when there)."""
    return {path: path.read_bytes() for path in db.parent.glob(f"{db.name}*")}


def _restore(db: Path, files: dict[Path, bytes]) -> None:
    """Put the database back as :func:`_snapshot` found it."""
    for path in db.parent.glob(f"{db.name}*"):
        path.unlink()
    for path, data in files.items():
        path.write_bytes(data)


def _settled(status: Status) -> bool:
    return status.pending == 0 and status.state == "online"


async def test_a_lost_acknowledgement_is_pushed_again_and_answered_duplicate(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """The device's database as it was before the acknowledgement's commit (an OS crash lost
    it): the write is pushed again, answered ``duplicate``, and the device's documents and the
    node's end as they were, with one change in the feed."""
    server = start_server()
    db = tmp_path / "phone.db"
    async with Client([server.url], db, sync=False) as offline:
        await offline.collection("todos").set("t1", {"title": "milk"})
        [entry] = await offline.outbox()
    before_ack = _snapshot(db)

    async with Client([server.url], db, transports=("websocket",)) as phone:
        await wait_status(phone, _settled, 30)
        synced = await phone.server_documents()
        view = await phone.collection("todos").get("t1")
    node_doc = server_doc(server.url, "todos", "t1")

    _restore(db, before_ack)

    async with Client([server.url], db, transports=("websocket",)) as again:
        events = record_events(again)
        assert again.pending == 1
        await wait_status(again, _settled, 30)
        [ack] = [e for e in events if isinstance(e, MutationsAcknowledged)]
        assert [e.mutation_id for e in ack.entries] == [entry.mutation_id]
        assert ack.duplicates == {entry.mutation_id}
        assert await again.server_documents() == synced
        assert await again.collection("todos").get("t1") == view
    assert view is not None and view.data == {"title": "milk"} and not view.pending
    assert server_doc(server.url, "todos", "t1") == node_doc
    assert [c["id"] for c in feed(server.url)] == ["t1"]
