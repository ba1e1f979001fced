"""A drill's devices in child processes: real SDK clients whose events come back as JSON lines.

One process running 50 SDK clients on a loaded machine measures its own event loop, not the
SDK's failover (ADR 0038): a drill spreads its devices over ``processes`` children. Each child
(``python -m breakwater.chaos.drill_devices``) reads its :class:`GroupSpec` as one JSON line on
stdin, opens its clients, and writes one JSON object a line on stdout:

- ``{"ready": true}`` once every client is open and has caught up with the feed (the drill's
  warm-up starts after all have: on a cluster that kept earlier runs' documents, a new device
  first pulls all of them, and a drill that struck then would measure that catch-up, which
  starves the machine, rather than the failover of devices in their steady state);
- ``{"device": name, "endpoint": url}`` when a device changes endpoint;
- ``{"device": name, "acked": [[mutation_id, doc_id, monotonic], ...], "by": url}`` on
  acknowledgements (``by``: the endpoint that gave them);
- ``{"device": name, "rejected": count}`` on rejections the app sees.

Times are ``time.monotonic()``, one clock for every process of the machine (``CLOCK_MONOTONIC``),
so the drill compares them with the moment it injected the fault. Closing stdin stops the
writers and closes the clients; the child ends with ``{"done": true}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from breakwater.client import Client, Event, MutationRejected, MutationsAcknowledged
from breakwater.client.endpoints import FAILOVER_TIMEOUT
from breakwater.client.events import StatusChanged

COLLECTION = "drill"
STOP_TIMEOUT_S = 60.0
CATCH_UP_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class GroupSpec:
    """The devices of one child: names, each one's regions (nearest first), where their
    databases go, how often they write, and the SDK's failover timeout."""

    names: list[str]
    regions: list[dict[str, list[str]]]
    work: str
    write_interval_s: float
    failover_timeout_s: float = FAILOVER_TIMEOUT


@dataclass
class DeviceRecord:
    """What the drill knows of one device: first acknowledgement of each mutation (monotonic
    time) and its document, when each endpoint acknowledged anything, rejections, and the
    endpoint it is on."""

    name: str
    acked: dict[str, float] = field(default_factory=dict)
    doc_of: dict[str, str] = field(default_factory=dict)
    served: list[tuple[float, str]] = field(default_factory=list)
    rejected: int = 0
    endpoint: str | None = None

    def take(self, message: dict[str, Any]) -> None:
        """Fold one line of the child's report in."""
        if "endpoint" in message:
            self.endpoint = message["endpoint"]
        for mutation_id, doc_id, at in message.get("acked", ()):
            self.acked.setdefault(mutation_id, float(at))
            self.doc_of[mutation_id] = doc_id
        if message.get("acked"):
            self.served.append((float(message["acked"][0][2]), str(message["by"])))
        self.rejected += int(message.get("rejected", 0))

    def first_ack_after(self, moment: float, elsewhere_than: set[str]) -> float | None:
        """Seconds from ``moment`` to the first acknowledgement after it given by an endpoint
        not in ``elsewhere_than`` (the lost ones: an answer they sent as the fault began
        is not a recovery); ``None``: none."""
        later = [at for at, by in self.served if at >= moment and by not in elsewhere_than]
        return min(later) - moment if later else None


class DeviceGroup:
    """One child process of devices, seen from the drill."""

    def __init__(self, spec: GroupSpec) -> None:
        self.spec = spec
        self.devices = {name: DeviceRecord(name) for name in spec.names}
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._done = asyncio.Event()

    async def start(self) -> None:
        """Start the child and return once its clients are open."""
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "breakwater.chaos.drill_devices",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**24,
        )
        assert self._process.stdin is not None  # PIPE, given above
        self._process.stdin.write(json.dumps(asdict(self.spec)).encode() + b"\n")
        await self._process.stdin.drain()
        self._reader = asyncio.create_task(self._read())
        waiter = asyncio.create_task(self._ready.wait())
        await asyncio.wait([waiter, self._reader], return_when=asyncio.FIRST_COMPLETED)
        if not self._ready.is_set():
            waiter.cancel()
            raise RuntimeError(f"drill devices {self.spec.names[0]}…: the child ended early")

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        async for line in self._process.stdout:
            message = json.loads(line)
            if message.get("ready"):
                self._ready.set()
            elif message.get("done"):
                self._done.set()
            else:
                self.devices[message["device"]].take(message)

    async def stop(self) -> None:
        """Stop the writers, let the clients close, and wait for the child (killed if stuck)."""
        process = self._process
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader


# -- the child ---------------------------------------------------------------------------


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _listener(name: str) -> Callable[[Event], None]:
    def on_event(event: Event) -> None:
        if isinstance(event, MutationsAcknowledged):
            now = time.monotonic()
            acked = [[entry.mutation_id, entry.doc_id, now] for entry in event.entries]
            _emit({"device": name, "acked": acked, "by": event.endpoint})
        elif isinstance(event, MutationRejected):
            _emit({"device": name, "rejected": 1})
        elif isinstance(event, StatusChanged):
            _emit({"device": name, "endpoint": event.status.endpoint})

    return on_event


async def _write_forever(name: str, client: Client, interval: float) -> None:
    docs = client.collection(COLLECTION)
    count = 0
    while True:
        await docs.set(f"{name}-{count}", {"device": name, "n": count})
        count += 1
        await asyncio.sleep(interval)


async def _stdin_closed() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()


async def run_group(spec: GroupSpec) -> None:
    """Open the devices, write until stdin closes, close them (the child's main)."""
    async with contextlib.AsyncExitStack() as stack:
        clients: dict[str, Client] = {}
        for name, regions in zip(spec.names, spec.regions, strict=True):
            client = Client(
                [],
                Path(spec.work) / f"device-{name}.db",
                regions=regions,
                transports=("long_poll",),
                backoff_base=0.05,
                backoff_cap=0.5,
                breaker_reset=1.0,
                region_probe_interval=1.0,
                poll_interval=2.0,
                failover_timeout=spec.failover_timeout_s,
            )
            client.on(_listener(name))
            await stack.enter_async_context(client)
            clients[name] = client
        async with asyncio.timeout(CATCH_UP_TIMEOUT_S):
            await asyncio.gather(*(client.refresh() for client in clients.values()))
        _emit({"ready": True})
        writers = [
            asyncio.create_task(_write_forever(name, client, spec.write_interval_s))
            for name, client in clients.items()
        ]
        try:
            await _stdin_closed()
        finally:
            for task in writers:
                task.cancel()
            await asyncio.gather(*writers, return_exceptions=True)
    _emit({"done": True})


def main() -> None:
    """Read the spec line from stdin and run the group."""
    spec = GroupSpec(**json.loads(sys.stdin.readline()))
    asyncio.run(run_group(spec))


if __name__ == "__main__":
    main()
