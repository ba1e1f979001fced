"""Run a scenario for real: nodes behind chaos proxies, devices, the fault schedule, the checker.

The run has four phases:

1. start the topology's private engines if it has any (PostgreSQL, Redis), then every node
   (``breakwater serve`` processes sharing one store) and a :class:`ChaosProxy` in front of
   each; devices reach nodes only through the proxies;
2. for ``duration`` seconds devices act and sync, go offline and online on schedule, while the
   nemesis injects the fault schedule (proxy faults, SIGKILL, SIGSTOP, restarts, clock skew,
   engine stops);
3. heal everything (engines started, proxies healed, paused nodes resumed, dead nodes
   restarted, clocks reset), bring every device online, and sync until every replica agrees or
   the convergence bound ends, timing how long that took;
4. read each node's final state straight from the node (not through its proxy) and run the
   checker over the history.

The history streams to ``<out>/history.jsonl``; the final states go to ``<out>/replicas.json``
(so ``breakwater chaos check`` can judge the run again) and the report to ``<out>/report.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx

from breakwater.chaos.checker import (
    DocState,
    ReplicaState,
    Verdict,
    check,
    divergences,
    replicas_json,
)
from breakwater.chaos.device import Device, Workload
from breakwater.chaos.engines import Engine, PostgresEngine, RedisEngine
from breakwater.chaos.faults import FAULT_TYPES, parse_fault
from breakwater.chaos.history import Recorder
from breakwater.chaos.ports import free_port as free_port
from breakwater.chaos.processes import NodeProcess
from breakwater.chaos.proxy import ChaosProxy
from breakwater.chaos.scenario import ENGINE_FAULTS, FaultStep, Scenario
from breakwater.chaos.sdk_device import SdkDevice
from breakwater.core import codec

Progress = Callable[[str], None]
SNAPSHOT_PAGE = 1000


def fresh_run_dir(out: Path) -> None:
    """Create ``out``, removing the store and device databases an earlier run left there: a
    new run on an old SQLite store would find that run's mutations in its feed."""
    out.mkdir(parents=True, exist_ok=True)
    for leftover in ("data", "devices", "cluster"):
        shutil.rmtree(out / leftover, ignore_errors=True)


@dataclass
class RunResult:
    """What a run produced."""

    scenario: Scenario
    verdict: Verdict
    out: Path
    stats: dict[str, Any] = field(default_factory=dict)


class Cluster:
    """The topology's private engines and nodes, each node behind its own proxy."""

    def __init__(self, scenario: Scenario, out: Path) -> None:
        self.scenario = scenario
        self.engines = _engines(scenario, out)
        self.nodes: dict[str, NodeProcess] = {}
        self.proxies: dict[str, ChaosProxy] = {}
        self.offsets = {spec.name: spec.clock_offset_ms for spec in scenario.nodes}
        for spec in scenario.nodes:
            self.nodes[spec.name] = NodeProcess(
                spec.name,
                free_port(),
                out / "data",
                log=out / f"{spec.name}.log",
                env=self._env(spec.clock_offset_ms),
                args=["--log-level", "warning", *self._engine_args()],
            )

    def _engine_args(self) -> list[str]:
        """``serve`` flags pointing the node at the private engines."""
        spec, args = self.scenario.engines, []
        if spec.store == "postgresql":
            args += ["--store", self._store_url()]
        for role in ("bus", "cache"):
            if getattr(spec, role) == "redis":
                args += [f"--{role}", self.engines["redis"].url]
        return args

    def _store_url(self) -> str:
        """The private PostgreSQL, with its standby as a second host if it has one: the
        nodes' connections go to whichever of them accepts writes."""
        primary = self.postgres("postgres")
        if "standby" not in self.engines:
            return primary.url
        hosts = f"127.0.0.1:{primary.port},127.0.0.1:{self.postgres('standby').port}"
        return f"postgresql://postgres@{hosts}/postgres"

    def postgres(self, name: str) -> PostgresEngine:
        """The private PostgreSQL engine ``name`` (``postgres`` or ``standby``)."""
        engine = self.engines[name]
        if not isinstance(engine, PostgresEngine):
            raise RuntimeError(f"{name} is not a PostgreSQL engine")
        return engine

    @staticmethod
    def _env(offset_ms: int) -> dict[str, str]:
        # Every device reaches a node through its chaos proxy, so from one address: the
        # per-address connection cap would refuse a loadtest's devices, not protect the node.
        env = {"BREAKWATER_MAX_CONNECTIONS_PER_ADDRESS": "0"}
        if offset_ms:
            env["BREAKWATER_CLOCK_OFFSET_MS"] = str(offset_ms)
        return env

    async def start(self) -> None:
        for engine in self.engines.values():
            await engine.start()
        # One after the other: the first node creates the shared store's schema.
        for name, node in self.nodes.items():
            await node.start()
            proxy = ChaosProxy(("127.0.0.1", node.port), name=name)
            await proxy.start()
            self.proxies[name] = proxy

    def endpoints(self) -> list[tuple[str, str]]:
        return [(name, f"http://{proxy.address}") for name, proxy in self.proxies.items()]

    def replica_urls(self) -> dict[str, str]:
        """The nodes whose final state the checker judges, by name."""
        return {name: node.url for name, node in self.nodes.items()}

    def targets(self, target: str) -> list[str]:
        return list(self.nodes) if target == "all" else [target]

    async def apply(
        self, kind: str, target: str, action: Literal["start", "heal"], params: dict[str, Any]
    ) -> None:
        """Start or heal fault ``kind`` on ``target`` (a node or an engine)."""
        if kind in ENGINE_FAULTS:
            await self._engine_fault(kind, target, action, params)
        else:
            await self._node_fault(kind, target, action, params)

    async def _engine_fault(
        self, kind: str, target: str, action: Literal["start", "heal"], params: dict[str, Any]
    ) -> None:
        engine = self.engines[target]
        if action == "heal":
            await engine.start()
        elif kind == "engine_stop":
            await engine.stop(params.get("mode", "fast"))
        elif kind == "engine_kill":
            await self.postgres(target).kill(wipe=params.get("wipe", False))
        elif kind == "promote":
            await self.postgres(target).promote()

    async def _node_fault(
        self, kind: str, target: str, action: Literal["start", "heal"], params: dict[str, Any]
    ) -> None:
        node, proxy = self.nodes[target], self.proxies[target]
        if kind in FAULT_TYPES:
            if action == "start":
                proxy.set_fault(parse_fault(kind, params))
            else:
                proxy.clear_fault(kind)
        elif kind == "kill":
            await (node.kill() if action == "start" else node.start())
        elif kind == "pause":
            node.pause() if action == "start" else node.resume()
        elif kind == "restart":
            if action == "start":
                await node.restart()
        elif kind == "clock_skew":
            # Healing puts back the offset the topology gave the node (usually none).
            offset = params["offset_ms"] if action == "start" else self.offsets[target]
            node.env = Cluster._env(offset)
            await node.restart()

    async def heal(self) -> None:
        """Every fault off: engines started, proxies healed, nodes resumed, restarted, clocks
        back to the spec (engines first: a node starting without its store is not ready)."""
        for engine in self.engines.values():
            # A lost PostgreSQL (wiped, or replaced by its promoted standby) stays down.
            lost = isinstance(engine, PostgresEngine) and engine.lost
            if not engine.running and not lost:
                await engine.start()
        for proxy in self.proxies.values():
            proxy.heal()
        for spec in self.scenario.nodes:
            node = self.nodes[spec.name]
            wanted = self._env(spec.clock_offset_ms)
            if node.paused:
                node.resume()
            if node.env != wanted:
                node.env = wanted
                await node.restart()
            elif not node.running:
                await node.start()

    async def aclose(self) -> None:
        for proxy in self.proxies.values():
            await proxy.aclose()
        for node in self.nodes.values():
            await node.stop()
        for engine in self.engines.values():
            await engine.aclose()


def _engines(scenario: Scenario, out: Path) -> dict[str, Engine]:
    """The scenario's private engines by name, not started (``EngineMissing`` if not here)."""
    engines: dict[str, Engine] = {}
    spec = scenario.engines
    if "postgres" in spec.engines:
        synchronous = "standby" if spec.standby == "sync" else None
        primary = PostgresEngine(free_port(), out / "postgres.log", synchronous_standby=synchronous)
        engines["postgres"] = primary
        if "standby" in spec.engines:
            engines["standby"] = PostgresEngine(
                free_port(), out / "standby.log", name="standby", upstream=primary
            )
    if "redis" in spec.engines:
        engines["redis"] = RedisEngine(free_port(), out / "redis.log")
    return engines


class Topology(Protocol):
    """What a run starts and breaks: the nodes of one region (:class:`Cluster`) or several
    regions (:class:`~breakwater.chaos.region_topology.RegionTopology`)."""

    async def start(self) -> None: ...

    def endpoints(self) -> list[tuple[str, str]]:
        """``(name, URL)`` of every endpoint devices may use."""
        ...

    def replica_urls(self) -> dict[str, str]:
        """The nodes whose final state the checker judges, by name."""
        ...

    def targets(self, target: str) -> list[str]:
        """What a fault on ``target`` acts on, one at a time (``all``: every node)."""
        ...

    async def apply(
        self, kind: str, target: str, action: Literal["start", "heal"], params: dict[str, Any]
    ) -> None: ...

    async def heal(self) -> None: ...

    async def aclose(self) -> None: ...


class Nemesis:
    """Plays the fault schedule against the topology and records each fault in the history."""

    def __init__(self, cluster: Topology, recorder: Recorder, progress: Progress) -> None:
        self.cluster = cluster
        self.recorder = recorder
        self.progress = progress

    async def play(self, steps: tuple[FaultStep, ...], started: float) -> None:
        await asyncio.gather(*(self._step(step, started) for step in steps))

    async def _step(self, step: FaultStep, started: float) -> None:
        await asyncio.sleep(max(0.0, started + step.at - time.monotonic()))
        for target in self.cluster.targets(step.target):
            await self._apply(step, target, "start")
        if step.duration is None:
            return
        await asyncio.sleep(step.duration)
        for target in self.cluster.targets(step.target):
            await self._apply(step, target, "heal")

    async def _apply(self, step: FaultStep, target: str, action: Literal["start", "heal"]) -> None:
        params = dict(step.params)
        try:
            await self.cluster.apply(step.kind, target, action, dict(step.params))
        except (RuntimeError, httpx.HTTPError) as error:
            # e.g. pausing a node another fault killed: recorded, the run goes on.
            params["skipped"] = str(error)
        self.recorder.fault(action, step.kind, target, **params)
        self.progress(f"{action} {step.kind} on {target}")


async def open_devices(
    scenario: Scenario,
    endpoints: list[tuple[str, str]],
    recorder: Recorder,
    out: Path,
    rng: random.Random,
    scoped: bool = False,
) -> list[Device]:
    """The scenario's devices, each an SDK client on its own database under ``out/devices``,
    opened (and syncing) together; ``scoped``: each on its own collections (the load test's
    workload; the checker's convergence check compares whole replicas, so scenarios keep the
    shared one)."""
    spec = scenario.devices
    timeout = scenario.bounds.request_timeout_s
    await asyncio.to_thread((out / "devices").mkdir, parents=True, exist_ok=True)
    devices = [
        SdkDevice(
            f"dev{i}",
            endpoints,
            out / "devices" / f"dev{i}.db",
            recorder,
            Workload(f"dev{i}", spec.counters, random.Random(rng.random()), scoped=scoped),
            request_timeout=timeout,
            sync_interval=spec.sync_interval,
            sync_timeout=max(5.0, 3 * timeout),
            first=i,
        )
        for i in range(spec.count)
    ]
    opened = await asyncio.gather(*(d.open() for d in devices), return_exceptions=True)
    failures = [error for error in opened if isinstance(error, BaseException)]
    if failures:
        await asyncio.gather(*(d.aclose() for d in devices), return_exceptions=True)
        raise failures[0]
    return list(devices)


async def device_loop(
    device: Device, scenario: Scenario, rng: random.Random, stop_at: float
) -> None:
    """Act at random intervals until ``stop_at`` (monotonic); the device syncs by itself."""
    spec = scenario.devices
    kinds = list(spec.mix)
    weights = [spec.mix[k] for k in kinds]
    while True:
        await asyncio.sleep(rng.expovariate(1 / spec.interval))
        if time.monotonic() >= stop_at:
            return
        await device.act(rng.choices(kinds, weights)[0])


async def _offline_schedule(
    devices: list[Device], scenario: Scenario, recorder: Recorder, started: float
) -> None:
    rng = random.Random(scenario.seed + 1)

    async def period(at: float, duration: float, count: int) -> None:
        await asyncio.sleep(max(0.0, started + at - time.monotonic()))
        chosen = rng.sample(devices, count)
        await asyncio.gather(*(device.set_online(False) for device in chosen))
        recorder.fault("start", "offline", f"{count} devices", duration=duration)
        await asyncio.sleep(duration)
        await asyncio.gather(*(device.set_online(True) for device in chosen))
        recorder.fault("heal", "offline", f"{count} devices")

    await asyncio.gather(*(period(p.at, p.duration, p.devices) for p in scenario.devices.offline))


async def node_state(url: str, name: str, taken_at: float) -> ReplicaState:
    """A node's whole feed (mutation ids) and documents with their counter states."""
    docs: dict[tuple[str, str], DocState] = {}
    applied: list[str] = []
    positions: list[tuple[str, int]] = []
    cursor = ""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        while True:
            params: dict[str, Any] = {"cursor": cursor, "limit": SNAPSHOT_PAGE}
            params["include_state"] = "true"
            response = await http.get("/v1/sync/pull", params=params)
            response.raise_for_status()
            page = response.json()
            for change in page["changes"]:
                applied.append(change["mutation_id"])
                positions.append((change["origin"], change["seq"]))
                # Increments still kept one by one; folded ones are checked through the value.
                counted = {
                    name: {mid: entry[1] for mid, entry in value.get("i", {}).items()}
                    for name, value in change.get("state", {}).get("n", {}).items()
                }
                data = None if change["deleted"] else change["data"]
                docs[(change["collection"], change["id"])] = DocState(
                    data, change["version"], counted or None
                )
            cursor = page["cursor"]
            if not page["has_more"]:
                return ReplicaState(name, "node", docs, applied, taken_at, positions)


async def _converge(
    cluster: Topology,
    devices: list[Device],
    recorder: Recorder,
    deadline: float,
) -> tuple[list[ReplicaState], float | None]:
    """Sync every device until all replicas agree or ``deadline`` (monotonic) passes; the last
    states read, and when (history time) they were seen to agree, ``None`` if they never did.

    Agreement is seen at the end of a round (a sync of every device, then every replica
    read), so the time is an upper bound, within one round and the pause between rounds.
    """
    while True:
        await asyncio.gather(*(d.sync() for d in devices))
        replicas = await _replicas(cluster, devices, recorder)
        if not any(d.pending() for d in devices) and not divergences(replicas):
            return replicas, recorder.now()
        if time.monotonic() > deadline:
            # No agreement: devices still sync in the background and may yet record
            # acknowledgements. They stop first, and the replicas are read again, so that no
            # write acknowledged after the nodes' read is judged lost (I1).
            await asyncio.gather(*(d.set_online(False) for d in devices))
            return await _replicas(cluster, devices, recorder), None
        await asyncio.sleep(0.25)


async def _replicas(
    cluster: Topology, devices: list[Device], recorder: Recorder
) -> list[ReplicaState]:
    """Every node's state, then every device's copy."""
    taken = recorder.now()
    nodes = await asyncio.gather(
        *(node_state(url, name, taken) for name, url in cluster.replica_urls().items())
    )
    copies = await asyncio.gather(*(d.snapshot(recorder.now()) for d in devices))
    return [*nodes, *copies]


def _stats(
    recorder: Recorder, replicas: list[ReplicaState], healed_at: float, agreed_at: float | None
) -> dict[str, Any]:
    ops = recorder.history.operations
    pushes = [op for op in ops if op.kind == "push"]
    acked = {mid for op in pushes for mid in op.results if op.acknowledged(mid)}
    return {
        "operations": len(ops),
        "pushes": {o: sum(op.outcome == o for op in pushes) for o in ("ok", "failed", "unknown")},
        "reads": sum(op.kind == "read" for op in ops),
        "mutations_sent": len(recorder.history.mutations()),
        "mutations_acknowledged": len(acked),
        "faults": sum(f.action == "start" for f in recorder.history.faults),
        "healed_at_s": healed_at,
        # From the final heal until every node and device was seen to agree; None: never.
        "converged_after_s": None if agreed_at is None else round(agreed_at - healed_at, 3),
        "documents": len(replicas[0].docs) if replicas else 0,
    }


def _topology(scenario: Scenario, out: Path) -> Topology:
    if scenario.regions is None:
        return Cluster(scenario, out)
    from breakwater.chaos.region_topology import RegionTopology

    return RegionTopology(scenario, out)


async def run_scenario(
    scenario: Scenario, out: Path, progress: Progress = lambda _: None
) -> RunResult:
    """Run ``scenario`` with its outputs under ``out`` (replacing an earlier run's); the
    verdict and run statistics."""
    await asyncio.to_thread(fresh_run_dir, out)
    meta = {"scenario": scenario.name, "seed": scenario.seed, "started": time.time()}
    cluster = _topology(scenario, out)
    devices: list[Device] = []
    with (out / "history.jsonl").open("wb") as history_file:
        try:
            progress(f"starting {len(scenario.nodes)} nodes")
            await cluster.start()
            recorder = Recorder(meta, history_file)
            rng = random.Random(scenario.seed)
            devices = await open_devices(scenario, cluster.endpoints(), recorder, out, rng)
            # Time zero of the history is the start of the workload, as in the fault schedule.
            recorder.start_clock()
            started = time.monotonic()
            stop_at = started + scenario.duration
            progress(f"running {len(devices)} devices for {scenario.duration:g}s")
            await asyncio.gather(
                Nemesis(cluster, recorder, progress).play(scenario.faults, started),
                _offline_schedule(devices, scenario, recorder, started),
                *(device_loop(d, scenario, random.Random(rng.random()), stop_at) for d in devices),
            )
            progress("healing every fault")
            await cluster.heal()
            await asyncio.gather(*(device.set_online(True) for device in devices))
            healed_at = recorder.now()
            recorder.fault("heal", "all", "cluster")
            deadline = time.monotonic() + scenario.bounds.convergence_s
            progress("waiting for convergence")
            replicas, agreed_at = await _converge(cluster, devices, recorder, deadline)
        finally:
            for device in devices:
                await device.aclose()
            # Cleanup must not hide the error that ended the run, if any.
            with contextlib.suppress(OSError, RuntimeError):
                await cluster.aclose()
    bound = scenario.bounds.convergence_s
    verdict = check(recorder.history, replicas, healed_at=healed_at, bound_s=bound)
    states = replicas_json(replicas, healed_at, bound)
    (out / "replicas.json").write_bytes(codec.dumps(states) + b"\n")
    result = RunResult(scenario, verdict, out, _stats(recorder, replicas, healed_at, agreed_at))
    report = {"scenario": scenario.name, "stats": result.stats, "verdict": verdict.to_json()}
    (out / "report.json").write_bytes(codec.dumps(report) + b"\n")
    return result
