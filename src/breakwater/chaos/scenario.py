"""Scenarios: what ``breakwater verify`` runs, written in YAML and validated before anything starts.

A scenario names the topology to start, the simulated devices (count, write mix, offline
periods), the fault schedule, the duration and the bounds to check. The format, with every key,
is in docs/verification.md; each error names the key path, e.g. ``faults[2].at``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from breakwater.chaos.cluster_spec import REGION_NAMES
from breakwater.chaos.engines import STOP_MODES
from breakwater.chaos.faults import FAULT_TYPES, parse_fault
from breakwater.core.errors import BreakwaterError, ValidationError
from breakwater.core.hlc import NODE_PATTERN
from breakwater.core.incarnation import REGION_PATTERN

PROCESS_FAULTS = ("kill", "pause", "restart", "clock_skew")
"""Faults on a node's process; the others (:data:`FAULT_TYPES`) act on its proxy, except
:data:`ENGINE_FAULTS`, which act on a private engine of the topology."""
ENGINE_FAULTS = ("engine_stop", "engine_kill", "promote")
REGION_FAULTS = ("region_loss", "promote")
"""Faults on a whole region of a multi-region topology (``promote``: a standby region)."""
MIX_KINDS = ("note", "counter", "read")
STORES = ("sqlite", "postgresql")
BROKERS = ("memory", "redis")
STANDBYS = ("none", "sync", "async")


class ScenarioError(BreakwaterError):
    """A scenario file is missing, not YAML, or not a valid scenario; ``detail`` says where."""

    type = "scenario_error"
    status = 400
    title = "Invalid scenario"


@dataclass(frozen=True)
class NodeSpec:
    """One ``breakwater serve`` node of the topology."""

    name: str
    clock_offset_ms: int = 0


@dataclass(frozen=True)
class EngineSpec:
    """What the nodes run on: ``store`` ``sqlite`` (one shared file) or ``postgresql``, and
    ``bus`` and ``cache`` ``memory`` (in each node) or ``redis``; every ``postgresql`` or
    ``redis`` is a private engine started for the run (:mod:`breakwater.chaos.engines`).
    ``standby`` (``sync`` or ``async``) adds a streaming standby of the PostgreSQL, named
    ``standby``, that the nodes' store URL lists after the primary."""

    store: str = "sqlite"
    bus: str = "memory"
    cache: str = "memory"
    standby: str = "none"

    @property
    def engines(self) -> tuple[str, ...]:
        """The private engines to start: ``postgres`` (and ``standby``), ``redis``, or none."""
        wanted: tuple[str, ...] = ()
        if self.store == "postgresql":
            wanted = ("postgres", "standby") if self.standby != "none" else ("postgres",)
        return wanted + (("redis",) if "redis" in (self.bus, self.cache) else ())


@dataclass(frozen=True)
class OfflinePeriod:
    """``devices`` devices (a count) go offline at ``at`` for ``duration`` seconds."""

    at: float
    duration: float
    devices: int


@dataclass(frozen=True)
class DeviceSpec:
    """The simulated devices: how many, how often they act, and what they do."""

    count: int = 10
    interval: float = 1.0
    mix: Mapping[str, float] = field(
        default_factory=lambda: {"note": 0.4, "counter": 0.4, "read": 0.2}
    )
    counters: int = 5
    sync_interval: float = 2.0
    offline: tuple[OfflinePeriod, ...] = ()


@dataclass(frozen=True)
class FaultStep:
    """One fault of the schedule: ``kind`` on node ``target`` (or ``all``; an engine's name for
    ``engine_stop``) from ``at`` for ``duration`` seconds (``None``: until the run heals every
    fault)."""

    at: float
    kind: str
    target: str
    duration: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Bounds:
    """Limits the run is judged by."""

    convergence_s: float = 30.0
    request_timeout_s: float = 2.0


@dataclass(frozen=True)
class RegionSpec:
    """One region of a multi-region topology."""

    name: str
    state: str = "active"
    clock_offset_ms: int = 0


@dataclass(frozen=True)
class RegionsSpec:
    """A multi-region topology (``topology.regions``): the regions, nodes per region, and the
    latency, jitter and loss every cross-region link adds (breakwater.chaos.cluster)."""

    regions: tuple[RegionSpec, ...]
    nodes_per_region: int = 1
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0

    @property
    def names(self) -> list[str]:
        return [region.name for region in self.regions]


@dataclass(frozen=True)
class Scenario:
    """A validated scenario."""

    name: str
    duration: float
    nodes: tuple[NodeSpec, ...]
    devices: DeviceSpec
    faults: tuple[FaultStep, ...] = ()
    bounds: Bounds = Bounds()
    description: str = ""
    seed: int = 1
    engines: EngineSpec = EngineSpec()
    regions: RegionsSpec | None = None
    """A multi-region topology; ``None``: the nodes of one region."""


class _Reader:
    """Typed access to one mapping of the YAML, with errors that name the key path."""

    def __init__(self, raw: Any, path: str, known: tuple[str, ...]) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ValidationError(f"{path or 'scenario'} must be a mapping")
        unknown = set(raw) - set(known)
        if unknown:
            raise ValidationError(
                f"{path or 'scenario'}: unknown keys {sorted(map(str, unknown))}; "
                f"known: {list(known)}"
            )
        self.raw = raw
        self.path = path

    def where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def number(
        self, key: str, default: float | None = None, *, minimum: float = 0.0, integer: bool = False
    ) -> float:
        value = self.raw.get(key, default)
        if value is None:
            raise ValidationError(f"{self.where(key)} is required")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValidationError(f"{self.where(key)} = {value!r} is not a number")
        if value < minimum:
            raise ValidationError(f"{self.where(key)} = {value!r} must be at least {minimum:g}")
        if integer and not float(value).is_integer():
            raise ValidationError(f"{self.where(key)} = {value!r} is not a whole number")
        return value

    def text(self, key: str, default: str | None = None) -> str:
        value = self.raw.get(key, default)
        if not isinstance(value, str):
            raise ValidationError(f"{self.where(key)} = {value!r} is not a string")
        return value

    def items(self, key: str) -> list[Any]:
        value = self.raw.get(key, [])
        if not isinstance(value, list):
            raise ValidationError(f"{self.where(key)} must be a list")
        return value


TOPOLOGY_KEYS = ("nodes", "store", "bus", "cache", "standby", "regions", "links")
MAX_REGIONS = 8


def _engines(raw: Any) -> EngineSpec:
    topology = _Reader(raw, "topology", TOPOLOGY_KEYS)
    chosen = {}
    for key, default, known in (("store", "sqlite", STORES), ("bus", "memory", BROKERS),
                                ("cache", "memory", BROKERS),
                                ("standby", "none", STANDBYS)):  # fmt: skip
        value = topology.text(key, default)
        if value not in known:
            raise ValidationError(f"{topology.where(key)} = {value!r} is not one of {list(known)}")
        chosen[key] = value
    if chosen["standby"] != "none" and chosen["store"] != "postgresql":
        raise ValidationError("topology.standby needs store: postgresql")
    return EngineSpec(**chosen)


def _nodes(raw: Any) -> tuple[NodeSpec, ...]:
    topology = _Reader(raw, "topology", TOPOLOGY_KEYS)
    nodes = topology.raw.get("nodes", 1)
    if isinstance(nodes, int) and not isinstance(nodes, bool):
        if not 1 <= nodes <= 16:
            raise ValidationError(f"topology.nodes = {nodes} must be between 1 and 16")
        return tuple(NodeSpec(f"n{i + 1}") for i in range(nodes))
    if not isinstance(nodes, list) or not nodes:
        raise ValidationError("topology.nodes must be a count or a non-empty list of nodes")
    specs = []
    for index, item in enumerate(nodes):
        node = _Reader(item, f"topology.nodes[{index}]", ("name", "clock_offset_ms"))
        name = node.text("name")
        if not NODE_PATTERN.fullmatch(name) or name in ("all", "local"):
            raise ValidationError(f"{node.where('name')} = {name!r} is not a usable node id")
        offset = node.raw.get("clock_offset_ms", 0)
        if isinstance(offset, bool) or not isinstance(offset, int):
            raise ValidationError(f"{node.where('clock_offset_ms')} must be a whole number")
        specs.append(NodeSpec(name, offset))
    if len({s.name for s in specs}) != len(specs):
        raise ValidationError("topology.nodes: node names must be unique")
    return tuple(specs)


def _regions(raw: Any, engines: EngineSpec) -> RegionsSpec | None:
    topology = _Reader(raw, "topology", TOPOLOGY_KEYS)
    regions = topology.raw.get("regions")
    if regions is None:
        if "links" in topology.raw:
            raise ValidationError("topology.links needs topology.regions")
        return None
    if engines.bus != "memory" or engines.cache != "memory" or engines.standby != "none":
        raise ValidationError(
            "topology.regions runs each region on its own store only: "
            "leave out bus, cache and standby"
        )
    if isinstance(regions, int) and not isinstance(regions, bool):
        if not 1 <= regions <= MAX_REGIONS:
            raise ValidationError(
                f"topology.regions = {regions} must be between 1 and {MAX_REGIONS}"
            )
        specs = [RegionSpec(name) for name in REGION_NAMES[:regions]]
    elif isinstance(regions, list) and 1 <= len(regions) <= MAX_REGIONS:
        specs = []
        for index, item in enumerate(regions):
            region = _Reader(
                item, f"topology.regions[{index}]", ("name", "state", "clock_offset_ms")
            )
            name = region.text("name")
            if not REGION_PATTERN.fullmatch(name) or "~" in name or name == "all":
                raise ValidationError(f"{region.where('name')} = {name!r} is not a region name")
            state = region.text("state", "active")
            if state not in ("active", "standby"):
                raise ValidationError(f"{region.where('state')} must be active or standby")
            offset = region.raw.get("clock_offset_ms", 0)
            if isinstance(offset, bool) or not isinstance(offset, int):
                raise ValidationError(f"{region.where('clock_offset_ms')} must be a whole number")
            specs.append(RegionSpec(name, state, offset))
        if len({r.name.lower() for r in specs}) != len(specs):
            raise ValidationError("topology.regions: region names must be unique")
        if all(r.state == "standby" for r in specs):
            raise ValidationError("topology.regions: at least one region must be active")
    else:
        raise ValidationError(
            f"topology.regions must be a count or a list of 1 to {MAX_REGIONS} regions"
        )
    nodes = topology.raw.get("nodes", 1)
    if isinstance(nodes, bool) or not isinstance(nodes, int) or not 1 <= nodes <= 8:
        raise ValidationError("topology.nodes is the nodes per region with regions: 1 to 8")
    links = _Reader(
        topology.raw.get("links"), "topology.links", ("latency_ms", "jitter_ms", "loss_pct")
    )
    loss = links.number("loss_pct", 0.0)
    if loss > 100:
        raise ValidationError("topology.links.loss_pct is a percentage: 0 to 100")
    return RegionsSpec(
        tuple(specs),
        nodes,
        latency_ms=links.number("latency_ms", 0.0),
        jitter_ms=links.number("jitter_ms", 0.0),
        loss_pct=loss,
    )


def _region_nodes(regions: RegionsSpec) -> tuple[NodeSpec, ...]:
    return tuple(
        NodeSpec(f"{region.name}-n{index + 1}", region.clock_offset_ms)
        for region in regions.regions
        for index in range(regions.nodes_per_region)
    )


def _region_target(step: _Reader, kind: str, regions: RegionsSpec, nodes: set[str]) -> str:
    """A fault target in a multi-region topology (see breakwater.chaos.region_topology)."""
    names = regions.names
    target = step.text("target", "all")
    if kind == "region_loss" and target not in names:
        raise ValidationError(
            f"{step.where('target')} = {target!r}: region_loss needs a region; known: {names}"
        )
    if kind == "promote":
        standby = [r.name for r in regions.regions if r.state == "standby"]
        if target not in standby:
            raise ValidationError(
                f"{step.where('target')} = {target!r} is not a standby region; standby: {standby}"
            )
        return target
    for separator in ("/", ">"):
        if separator in target:
            if kind not in FAULT_TYPES:
                raise ValidationError(f"{step.where('target')}: {kind} does not act on a link")
            one, _, two = target.partition(separator)
            if one not in names or two not in names or one == two:
                raise ValidationError(
                    f"{step.where('target')} = {target!r} is not a link between two regions"
                    f" of {names}"
                )
            return target
    if target != "all" and target not in names and target not in nodes:
        raise ValidationError(
            f"{step.where('target')} = {target!r} is not a node, a region or a link "
            f"(A/B, A>B); regions: {names}, nodes: {sorted(nodes)}"
        )
    return target


def _devices(raw: Any, duration: float) -> DeviceSpec:
    devices = _Reader(
        raw, "devices", ("count", "interval", "mix", "counters", "sync_interval", "offline")
    )
    count = int(devices.number("count", 10, minimum=1, integer=True))
    mix_raw = devices.raw.get("mix", {"note": 0.4, "counter": 0.4, "read": 0.2})
    mix = _Reader(mix_raw, "devices.mix", MIX_KINDS)
    weights = {kind: mix.number(kind, 0) for kind in MIX_KINDS}
    if not sum(weights.values()) > 0:
        raise ValidationError("devices.mix needs at least one positive weight")
    offline = []
    for index, item in enumerate(devices.items("offline")):
        period = _Reader(item, f"devices.offline[{index}]", ("at", "duration", "devices"))
        at = period.number("at")
        length = period.number("duration", minimum=0.001)
        share = period.number("devices")
        if share > count:
            raise ValidationError(f"{period.where('devices')} = {share:g} is more than {count}")
        # A fraction below 1 is a share of the devices; 1 or more is a count.
        how_many = round(share * count) if share < 1 else int(share)
        if at >= duration:
            raise ValidationError(f"{period.where('at')} = {at:g} is not within the duration")
        offline.append(OfflinePeriod(at, length, how_many))
    return DeviceSpec(
        count=count,
        interval=devices.number("interval", 1.0, minimum=0.01),
        mix=weights,
        counters=int(devices.number("counters", 5, minimum=1, integer=True)),
        sync_interval=devices.number("sync_interval", 2.0, minimum=0.05),
        offline=tuple(offline),
    )


def _target(step: _Reader, kind: str, nodes: set[str], engines: EngineSpec) -> str:
    if kind in ENGINE_FAULTS:
        target = step.text("target", "")
        if target not in engines.engines:
            raise ValidationError(
                f"{step.where('target')} = {target!r} is not an engine of the topology; known: "
                f"{list(engines.engines)} (postgres with store: postgresql, standby with "
                "standby: sync or async, redis with bus or cache: redis)"
            )
        if kind == "engine_kill" and target == "redis":
            raise ValidationError(f"{step.where('target')}: engine_kill acts on PostgreSQL only")
        if kind == "promote" and target != "standby":
            raise ValidationError(f"{step.where('target')}: only the standby can be promoted")
        return target
    target = step.text("target", "all")
    if target != "all" and target not in nodes:
        raise ValidationError(
            f"{step.where('target')} = {target!r} is not a node; known: {sorted(nodes)}, all"
        )
    return target


def _faults(
    raw: list[Any],
    nodes: tuple[NodeSpec, ...],
    engines: EngineSpec,
    duration: float,
    regions: RegionsSpec | None = None,
) -> tuple[FaultStep, ...]:
    names = {node.name for node in nodes}
    special = REGION_FAULTS if regions is not None else ENGINE_FAULTS
    known = sorted({*FAULT_TYPES, *PROCESS_FAULTS, *special})
    steps = []
    for index, item in enumerate(raw):
        step = _Reader(item, f"faults[{index}]", ("at", "kind", "target", "duration", "params"))
        kind = step.text("kind")
        if kind not in known:
            raise ValidationError(f"{step.where('kind')} = {kind!r} is not a fault; known: {known}")
        if regions is not None:
            target = _region_target(step, kind, regions, names)
        else:
            target = _target(step, kind, names, engines)
        at = step.number("at")
        if at >= duration:
            raise ValidationError(f"{step.where('at')} = {at:g} is not within the duration")
        length = step.raw.get("duration")
        if length is not None:
            length = step.number("duration", minimum=0.001)
        params = step.raw.get("params") or {}
        if not isinstance(params, dict):
            raise ValidationError(f"{step.where('params')} must be a mapping")
        if kind in FAULT_TYPES:
            try:
                parse_fault(kind, params)
            except ValidationError as error:
                raise ValidationError(f"{step.where('params')}: {error.detail}") from None
        elif kind == "clock_skew":
            offset = params.get("offset_ms")
            if (
                set(params) != {"offset_ms"}
                or isinstance(offset, bool)
                or not isinstance(offset, int)
            ):
                raise ValidationError(
                    f"{step.where('params')}: clock_skew takes one whole number, offset_ms"
                )
        elif kind == "engine_stop":
            if set(params) - {"mode"} or params.get("mode", "fast") not in STOP_MODES:
                raise ValidationError(
                    f"{step.where('params')}: engine_stop takes one optional mode, one of "
                    f"{list(STOP_MODES)}"
                )
        elif kind == "engine_kill":
            if set(params) - {"wipe"} or not isinstance(params.get("wipe", False), bool):
                raise ValidationError(
                    f"{step.where('params')}: engine_kill takes one optional wipe, true or false"
                )
            if length is not None and params.get("wipe"):
                raise ValidationError(
                    f"{step.where('duration')}: a wiped engine cannot come back; leave it out"
                )
        elif kind == "region_loss" and params:
            raise ValidationError(f"{step.where('params')}: region_loss takes no parameters")
        elif kind == "promote" and length is not None:
            raise ValidationError(f"{step.where('duration')}: a promotion is not undone")
        elif params:
            raise ValidationError(f"{step.where('params')}: {kind} takes no parameters")
        steps.append(FaultStep(at, kind, target, length, params))
    return tuple(sorted(steps, key=lambda s: s.at))


def parse_scenario(raw: Any, source: str = "scenario") -> Scenario:
    """Validate a scenario's parsed YAML; :class:`ScenarioError` names the source and the key."""
    try:
        top = _Reader(
            raw,
            "",
            ("name", "description", "seed", "duration", "topology", "devices", "faults", "bounds"),
        )
        duration = top.number("duration", minimum=1)
        engines = _engines(top.raw.get("topology"))
        regions = _regions(top.raw.get("topology"), engines)
        nodes = _region_nodes(regions) if regions else _nodes(top.raw.get("topology"))
        bounds = _Reader(top.raw.get("bounds"), "bounds", ("convergence_s", "request_timeout_s"))
        return Scenario(
            name=top.text("name"),
            description=top.text("description", ""),
            seed=int(top.number("seed", 1, integer=True)),
            duration=duration,
            nodes=nodes,
            devices=_devices(top.raw.get("devices"), duration),
            faults=_faults(top.items("faults"), nodes, engines, duration, regions),
            bounds=Bounds(
                convergence_s=bounds.number("convergence_s", 30.0, minimum=0.1),
                request_timeout_s=bounds.number("request_timeout_s", 2.0, minimum=0.05),
            ),
            engines=engines,
            regions=regions,
        )
    except ValidationError as error:
        raise ScenarioError(f"{source}: {error.detail}") from None


def load_scenario(path: Path) -> Scenario:
    """Read and validate the scenario file ``path``."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot be read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from exc
    return parse_scenario(raw, str(path))
