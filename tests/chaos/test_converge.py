"""The run's last reads when replicas never agree (chaos/runner.py ``_converge``).

Devices sync in the background until they are closed, so an acknowledgement can be recorded
after the nodes were read. The checker must not then call that write lost: when the deadline
passes, the devices stop syncing before the replicas are read for the verdict.
"""

from __future__ import annotations

import time
from typing import Any, cast

import pytest

from breakwater.chaos import runner
from breakwater.chaos.checker import DocState, ReplicaState
from breakwater.chaos.device import Device
from breakwater.chaos.history import Recorder


class NodeFeed:
    """A node's feed that devices' acknowledged writes land in."""

    def __init__(self) -> None:
        self.applied: list[str] = []

    async def state(self, url: str, name: str, taken_at: float) -> ReplicaState:
        docs = {("notes", mid): DocState({"m": mid}) for mid in self.applied}
        return ReplicaState(name, "node", docs, list(self.applied), taken_at)


class OneNode:
    def replica_urls(self) -> dict[str, str]:
        return {"n1": "http://127.0.0.1:1"}


class BusyDevice:
    """A device whose background sync gets one more write acknowledged whenever it is looked
    at while online (as a sync running between the nodes' read and the device's would), and
    that never agrees with the nodes."""

    name = "dev1"

    def __init__(self, feed: NodeFeed) -> None:
        self.feed = feed
        self.acknowledged: list[str] = []
        self.online = True

    async def set_online(self, online: bool) -> None:
        self.online = online

    async def sync(self) -> bool:
        return self.online

    def pending(self) -> int:
        return 1

    async def snapshot(self, taken_at: float) -> ReplicaState:
        if self.online:
            mid = f"dev1.{len(self.acknowledged) + 1}"
            self.feed.applied.append(mid)
            self.acknowledged.append(mid)
        return ReplicaState(self.name, "device", {}, None, taken_at)


async def test_past_the_deadline_every_acknowledged_write_is_in_the_nodes_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    feed = NodeFeed()
    monkeypatch.setattr(runner, "node_state", feed.state)
    device = BusyDevice(feed)
    devices = cast(list[Device], [device])
    topology = cast(Any, OneNode())
    replicas, agreed_at = await runner._converge(
        topology, devices, Recorder({}), time.monotonic() - 1
    )
    assert agreed_at is None
    [node] = [replica for replica in replicas if replica.kind == "node"]
    assert device.acknowledged, "the fake acknowledged nothing: the test tests nothing"
    assert set(device.acknowledged) <= set(node.applied or [])
    assert not device.online
