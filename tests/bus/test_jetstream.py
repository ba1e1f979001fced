"""What the JetStream bus adds to core NATS: a small memory stream, read from its newest end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats
import pytest
from nats.js.api import StorageType

from breakwater.bus import CHANNEL, CommitNotice, open_bus
from breakwater.bus._remote import RemoteBus
from breakwater.bus.jetstream import PER_SUBJECT, stream_name
from tests.bus.conftest import bus_url_for
from tests.bus.test_remote import eventually
from tests.services import NATS_URL


@pytest.fixture
def url() -> str:
    """A JetStream bus URL with a prefix of this test's own."""
    return bus_url_for("nats+jetstream")


@pytest.fixture
async def opened() -> AsyncIterator[list[RemoteBus]]:
    """Buses to close at teardown."""
    buses: list[RemoteBus] = []
    yield buses
    for bus in buses:
        await bus.aclose()


async def open_jetstream_bus(url: str, opened: list[RemoteBus]) -> RemoteBus:
    """An open JetStream bus (healthy: its stream and consumer exist)."""
    bus = open_bus(url)
    assert isinstance(bus, RemoteBus)
    opened.append(bus)
    await bus.open()
    assert bus.healthy
    return bus


async def test_the_stream_keeps_a_few_notices_in_memory(url: str, opened: list[RemoteBus]) -> None:
    """The bus declares a memory stream on its subject with the small per-subject limit."""
    bus = await open_jetstream_bus(url, opened)
    for seq in range(1, 2 * PER_SUBJECT + 1):
        bus.publish(CommitNotice({"r1": seq}, float(seq)))

        def sent_all(sent: int = seq) -> bool:
            return bus.stats.sent == sent

        await eventually(sent_all)  # one each, none folded
    prefix = url.rpartition("prefix=")[2]
    client = await nats.connect(NATS_URL)
    try:
        info = await client.jetstream().stream_info(stream_name(f"{prefix}.{CHANNEL}"))
    finally:
        await client.close()
    assert info.config.storage == StorageType.MEMORY
    assert info.config.subjects == [f"{prefix}.{CHANNEL}"]
    assert info.config.max_msgs_per_subject == PER_SUBJECT
    assert info.state.messages == PER_SUBJECT  # the oldest were discarded


async def test_a_node_that_connects_later_gets_only_new_notices(
    url: str, opened: list[RemoteBus]
) -> None:
    """Notices kept in the stream before a bus connected are not replayed to it."""
    early = await open_jetstream_bus(url, opened)
    early.publish(CommitNotice({"r1": 1}, 1.0))
    await eventually(lambda: early.stats.sent == 1)
    late = await open_jetstream_bus(url, opened)
    heard = late.subscribe()
    early.publish(CommitNotice({"r1": 2}, 2.0))
    assert (await asyncio.wait_for(anext(heard), 5)).head == {"r1": 2}
    assert late.stats.received == 1
