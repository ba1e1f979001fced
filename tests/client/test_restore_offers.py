"""Devices help a restore: after the node is restored to an earlier point, the devices that
synced later offer back what the node lost, as writes checked by the same access rules.

The loss is counted with the feature off and on in one scenario: writes acknowledged after the
backup that every device held, that only some devices held, and that no device held. Off, the
restore loses them all; on, it loses only those no device held. With owner rules, a device offers
back a document of another user that it could read but not write: the node refuses it, so the
document comes back only from its owner's device.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from breakwater.client import Client
from breakwater.config import Config
from breakwater.ops.backup import AUTH_FILE, KEYS_FILE, NodeFiles, take_backup
from breakwater.ops.objects import FolderObjects
from breakwater.ops.restore import restore_backup, start_new_incarnation
from tests.client.test_restore_resync import serving

pytestmark = pytest.mark.slow


def node_files(config: Config) -> NodeFiles:
    return NodeFiles(config.store_url, config.data / AUTH_FILE, config.data / KEYS_FILE)


def device(path: Path, node: httpx.AsyncClient, offer: bool) -> Client:
    """A device on its own database, talking to the in-process node."""
    return Client(
        ["http://node"],
        path,
        http_transport=httpx.ASGITransport(app=node.app),  # type: ignore[attr-defined]
        transports=("long_poll",),
        backoff_cap=0.3,
        offer_after_restore=offer,
    )


async def synced(*devices: Client) -> None:
    async with asyncio.timeout(30):
        for phone in devices:
            await phone.wait_synced()


async def backup_and_restore_point(config: Config, folder: Path) -> FolderObjects:
    """``breakwater backup`` of the running node (its functions, in this process)."""
    target = FolderObjects(folder)
    await take_backup(node_files(config), target, "b", None, lambda line: None)
    return target


async def restore(config: Config, backups: FolderObjects) -> None:
    """``breakwater restore --from`` with the node stopped."""
    await asyncio.to_thread(
        restore_backup, node_files(config), backups, "b", None, None, None, lambda line: None
    )
    await start_new_incarnation(config.store_url, config.region)


async def lost_writes(tmp_path: Path, make_config: Callable[..., Config], offer: bool) -> int:
    """How many of the writes acknowledged after the backup a restore to it loses."""
    config = make_config(data=tmp_path / "node")
    phones = [tmp_path / f"phone{n}.db" for n in range(4)]
    after_backup: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        async with serving(config) as node:
            devices = [device(path, node, offer) for path in phones]
            for phone in devices:
                await phone.open()
            await devices[0].collection("notes").set("before", {"n": 0})
            await synced(*devices)
            backups = await backup_and_restore_point(config, Path(folder))
            for n, phone in enumerate(devices):  # held by every device
                for k in range(5):
                    await phone.collection("notes").set(f"all-{n}-{k}", {"n": k})
                    after_backup.append(f"all-{n}-{k}")
            await synced(*devices)
            for phone in devices[2:]:
                await phone.aclose()
            for n, phone in enumerate(devices[:2]):  # held by two devices
                for k in range(5):
                    await phone.collection("notes").set(f"some-{n}-{k}", {"n": k})
                    after_backup.append(f"some-{n}-{k}")
            for k in range(5):  # written by a web client, pulled by the two online devices
                assert (await node.put(f"/v1/collections/notes/docs/web-{k}", json={})).is_success
                after_backup.append(f"web-{k}")
            await synced(*devices[:2])
            for phone in devices[:2]:
                await phone.aclose()
            for k in range(5):  # held by no device
                assert (await node.put(f"/v1/collections/notes/docs/none-{k}", json={})).is_success
                after_backup.append(f"none-{k}")
        await restore(config, backups)
    async with serving(config) as node:
        devices = [device(path, node, offer) for path in phones]
        for phone in devices:
            await phone.open()
        await synced(*devices)
        for phone in devices:
            await phone.aclose()
        present = [
            doc_id
            for doc_id in after_backup
            if (await node.get(f"/v1/collections/notes/docs/{doc_id}")).status_code == 200
        ]
        assert (await node.get("/v1/collections/notes/docs/before")).status_code == 200
    return len(after_backup) - len(present)


async def test_devices_bring_back_all_but_what_no_device_held(
    tmp_path: Path, make_config: Callable[..., Config]
) -> None:
    off = await lost_writes(tmp_path / "off", make_config, offer=False)
    on = await lost_writes(tmp_path / "on", make_config, offer=True)
    print(f"writes after the backup lost by the restore: {off} of 40 off, {on} of 40 on")
    assert (off, on) == (40, 5)


OWNER_RULES = """
[auth]
mode = "enforce"
password_memory_kib = 64
password_time_cost = 1
rate_auth_per_ip = 0

[collections.board]
owner = "owner"
rules.read = "true"
rules.write = "auth.uid == doc.owner"
"""


async def test_a_device_cannot_bring_back_what_its_user_could_not_write(
    tmp_path: Path, make_config: Callable[..., Config]
) -> None:
    """Bob's device held Ann's note (readable by all, writable by Ann): it offers it, the node
    refuses it, and only Ann's device brings it back. Bob's own note comes back from his."""
    config = make_config(OWNER_RULES, data=tmp_path / "node")
    ann_db, bob_db = tmp_path / "ann.db", tmp_path / "bob.db"
    with tempfile.TemporaryDirectory() as folder:
        async with serving(config) as node:
            ann, bob = device(ann_db, node, True), device(bob_db, node, True)
            for phone in (ann, bob):
                await phone.open()
            await ann.auth.sign_up("ann@example.com", "correct horse battery")
            await bob.auth.sign_up("bob@example.com", "correct horse battery")
            backups = await backup_and_restore_point(config, Path(folder))
            await ann.collection("board").set("ann-note", {"text": "Ann's"})
            await bob.collection("board").set("bob-note", {"text": "Bob's"})
            await synced(ann, bob)
            async with asyncio.timeout(30):
                while len(await bob.collection("board").query()) < 2:
                    bob.sync_now()
                    await asyncio.sleep(0.05)
            for phone in (ann, bob):
                await phone.aclose()
        await restore(config, backups)

    async with serving(config) as node:
        bob = device(bob_db, node, True)
        await bob.open()
        await synced(bob)
        refused = await bob.rejections()
        board = await board_ids(node, bob)
        await bob.aclose()
        assert board == {"bob-note"}, "Bob's device brings back only what Bob could write"
        assert [(r.doc_id, r.problem["type"]) for r in refused] == [("ann-note", "forbidden")]

        ann = device(ann_db, node, True)
        await ann.open()
        await synced(ann)
        assert await board_ids(node, ann) == {"ann-note", "bob-note"}
        assert (await ann.collection("board").get("ann-note")) is not None
        await ann.aclose()


async def board_ids(node: httpx.AsyncClient, phone: Client) -> set[str]:
    """The live documents of ``board`` on the node."""
    answer = await node.get("/v1/sync/pull", params={"limit": 1000}, headers=await phone.auth())
    changes: list[dict[str, Any]] = answer.json()["changes"]
    return {c["id"] for c in changes if c["collection"] == "board" and not c["deleted"]}
