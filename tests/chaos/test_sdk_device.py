"""SdkDevice: a real SDK client behind the Device seam, and the history it writes."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from breakwater.chaos.checker import WRITER_FIELD, check
from breakwater.chaos.device import Workload
from breakwater.chaos.history import Operation, Recorder
from breakwater.chaos.runner import node_state
from breakwater.chaos.sdk_device import LOCAL, SdkDevice
from tests.client.conftest import feed
from tests.conftest import ServerProcess, free_port

pytestmark = pytest.mark.slow


@pytest.fixture
async def make_sdk_device(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Open SdkDevices recording into one history; every one is closed at teardown."""
    stack = AsyncExitStack()

    async def make(url: str, recorder: Recorder, name: str = "dev0", seed: int = 1) -> SdkDevice:
        device = SdkDevice(
            name,
            [("n1", url)],
            tmp_path / f"{name}.db",
            recorder,
            Workload(name, counters=2, rng=random.Random(seed)),
            request_timeout=2,
            sync_interval=5,
            sync_timeout=20,
            backoff_cap=1.0,
            breaker_reset=0.5,
        )
        return await stack.enter_async_context(device)

    async with stack:
        yield make


def writes(recorder: Recorder) -> list[Operation]:
    return [op for op in recorder.history.operations if op.kind == "push"]


async def test_offline_writes_are_read_locally_then_acknowledged_once_online(
    start_server: Callable[..., ServerProcess], make_sdk_device: Callable[..., Any]
) -> None:
    """Offline, the device reads its own writes and nothing is acknowledged; online, each write
    is acknowledged once (ok, applied, by n1, invoked before going online), its id is in the
    feed once with the stamp recorded, the snapshot is the node's, and the checker passes."""
    server = start_server()
    recorder = Recorder({})
    device = await make_sdk_device(server.url, recorder)
    await device.set_online(False)
    for kind in ["note", "counter"] * 4:
        await device.act(kind)
    for _ in range(6):
        await device.act("read")
    assert writes(recorder) == [] and device.pending() == 8
    reads = [op for op in recorder.history.operations if op.kind == "read"]
    assert {op.target for op in reads} == {LOCAL}
    for op in reads:
        assert op.read is not None
        if op.read.collection == "notes":
            assert op.read.data is not None and op.read.data[WRITER_FIELD] == "dev0.4"
    assert feed(server.url) == []

    went_online = recorder.now()
    await device.set_online(True)
    assert await device.sync()
    done = writes(recorder)
    assert len(done) == 8 and device.pending() == 0
    for op in done:
        [mutation] = op.mutations
        assert (op.outcome, op.target, op.results) == (
            "ok",
            "n1",
            {mutation.mutation_id: "applied"},
        )
        assert op.invoked_at < went_online < (op.completed_at or 0.0)
    pushed = {op.mutations[0].mutation_id: op.mutations[0].hlc for op in done}
    changes = feed(server.url)
    assert Counter(c["mutation_id"] for c in changes) == Counter(dict.fromkeys(pushed, 1))
    assert {c["mutation_id"]: c["hlc"] for c in changes} == pushed

    node = await node_state(server.url, "n1", recorder.now())
    copy = await device.snapshot(recorder.now())
    assert copy.docs.keys() == node.docs.keys()
    for key, state in node.docs.items():
        assert (copy.docs[key].data, copy.docs[key].version) == (state.data, state.version)
    verdict = check(recorder.history, [node, copy], healed_at=0.0, bound_s=1000.0)
    assert verdict.passed, verdict.render()
    assert verdict.result("device_cursors").checked > 0


async def test_each_committed_page_is_a_cursor_record_that_rebuilds_the_copy(
    start_server: Callable[..., ServerProcess], make_sdk_device: Callable[..., Any]
) -> None:
    """The device's cursor records end at the node's head, rebuild exactly its synced copy,
    never repeat a record that changed nothing, and (f) holds over them."""
    server = start_server()
    recorder = Recorder({})
    device = await make_sdk_device(server.url, recorder)
    for kind in ["note", "counter"] * 3:
        await device.act(kind)
        assert await device.sync()
    assert await device.sync()
    records = recorder.history.cursors
    rebuilt: dict[tuple[str, str], Any] = {}
    for before, record in zip([None, *records], records, strict=False):
        assert record.process == "dev0" and record.resync is None
        assert before is None or record.docs or record.cursor != before.cursor
        rebuilt.update(record.docs)
    node = await node_state(server.url, "n1", recorder.now())
    assert node.positions is not None
    [origin] = {o for o, _ in node.positions}
    assert records[-1].cursor == {origin: max(seq for _, seq in node.positions)}
    copy = await device.snapshot(recorder.now())
    assert rebuilt == {key: doc.data for key, doc in copy.docs.items()}
    verdict = check(recorder.history, [node, copy], healed_at=0.0, bound_s=1000.0)
    assert verdict.result("device_cursors").checked == len(records) and verdict.passed


async def test_a_write_never_acknowledged_is_recorded_unknown_when_the_device_closes(
    make_sdk_device: Callable[..., Any],
) -> None:
    """With no node to reach, a write stays pending; closing records it unknown, without a
    completion time."""
    recorder = Recorder({})
    device = await make_sdk_device(f"http://127.0.0.1:{free_port()}", recorder)
    await device.act("counter")
    assert device.pending() == 1
    await device.aclose()
    [op] = writes(recorder)
    assert (op.outcome, op.completed_at, op.results) == ("unknown", None, {})
    assert op.mutations[0].op == "increment"


async def test_a_rejected_write_is_recorded_failed_and_the_checker_agrees(
    tmp_path: Path,
    start_server: Callable[..., ServerProcess],
    make_sdk_device: Callable[..., Any],
) -> None:
    """A node whose schema refuses the workload's patches: each patch is recorded failed
    (rejected, with the problem type), each set ok; the refused ids are not in the feed and
    the checker passes."""
    config = tmp_path / "node.toml"
    config.write_text(
        '[collections.notes]\nschema = { type = "object", properties = { p = '
        '{ type = "string" } } }\n'
    )
    server = start_server(None, "--config", str(config))
    recorder = Recorder({})
    device = await make_sdk_device(server.url, recorder)
    for _ in range(6):
        await device.act("note")
    assert await device.sync()
    outcomes = {op.mutations[0].op: (op.outcome, op.error) for op in writes(recorder)}
    assert outcomes == {"set": ("ok", None), "patch": ("failed", "schema_violation")}
    refused = {op.mutations[0].mutation_id for op in writes(recorder) if op.outcome == "failed"}
    assert refused and not refused & {c["mutation_id"] for c in feed(server.url)}
    node = await node_state(server.url, "n1", recorder.now())
    verdict = check(recorder.history, [node], healed_at=0.0, bound_s=1000.0)
    assert verdict.passed, verdict.render()
