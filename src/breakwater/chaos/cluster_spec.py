"""What a local multi-region cluster is made of, and the cluster file that describes it running.

``breakwater cluster up`` writes the cluster file (``cluster.json`` in its directory); tests,
``breakwater verify``, drills and benchmarks read it to find every region's device URLs, node
URLs, link proxies and keys' files, and ``cluster down`` reads it to stop exactly the processes
it started (by PID and start time) and drop the databases it created.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from breakwater.chaos.detached import ProcessRecord
from breakwater.core import codec
from breakwater.core.errors import ValidationError
from breakwater.core.incarnation import REGION_PATTERN

REGION_NAMES = ("eu", "us", "ap", "sa", "af", "me", "oc", "an")
MAX_NODES_PER_REGION = 8
STORES = ("sqlite", "postgres")
CLUSTER_FILE = "cluster.json"
FILE_VERSION = 1
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432"
Store = Literal["sqlite", "postgres"]


@dataclass(frozen=True)
class ClusterSpec:
    """The cluster to start: ``regions`` regions named from :data:`REGION_NAMES`, each with
    ``nodes_per_region`` nodes over one store; every cross-region link gets ``latency_ms`` each
    way (a round trip gains twice that) with ``jitter_ms``, and ``loss_pct`` of its chunks a
    retransmission's delay. ``standby`` regions start read-only; ``clock_offsets_ms`` shifts a
    region's clocks (test only)."""

    regions: int = 3
    nodes_per_region: int = 1
    store: Store = "sqlite"
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0
    standby: tuple[str, ...] = ()
    clock_offsets_ms: Mapping[str, int] = field(default_factory=dict)
    postgres: str = DEFAULT_POSTGRES
    region_names: tuple[str, ...] = ()
    """The regions' names (default: the first ``regions`` of :data:`REGION_NAMES`)."""
    tracing_endpoint: str = ""
    """An OTLP/HTTP traces URL: every node traces (``[tracing]``) and exports there."""
    settings: Mapping[str, bool | int | float | str] = field(default_factory=dict)
    """Top-level config keys every node gets (e.g. ``webhook_allow_private``)."""

    def __post_init__(self) -> None:
        if self.region_names and len(self.region_names) != self.regions:
            raise ValidationError(f"{self.regions} regions need {self.regions} names")
        bad = [n for n in self.region_names if not REGION_PATTERN.fullmatch(n) or "~" in n]
        if bad or len({n.lower() for n in self.region_names}) != len(self.region_names):
            raise ValidationError(
                f"region names must be distinct and match {REGION_PATTERN.pattern}"
            )
        if not 1 <= self.regions <= len(REGION_NAMES):
            raise ValidationError(f"--regions must be 1 to {len(REGION_NAMES)}, not {self.regions}")
        if not 1 <= self.nodes_per_region <= MAX_NODES_PER_REGION:
            raise ValidationError(
                f"--nodes-per-region must be 1 to {MAX_NODES_PER_REGION}, "
                f"not {self.nodes_per_region}"
            )
        if self.store not in STORES:
            raise ValidationError(f"--store must be one of {list(STORES)}, not {self.store!r}")
        for name, value in (
            ("--latency", self.latency_ms),
            ("--jitter", self.jitter_ms),
            ("--loss", self.loss_pct),
        ):
            if not math.isfinite(value) or value < 0:
                raise ValidationError(f"{name} must be a finite number >= 0, not {value}")
        if self.loss_pct > 100:
            raise ValidationError(f"--loss is a percentage (0 to 100), not {self.loss_pct}")
        unknown = (set(self.standby) | set(self.clock_offsets_ms)) - set(self.names)
        if unknown:
            raise ValidationError(f"no region {sorted(unknown)}; the regions are {self.names}")
        if set(self.standby) >= set(self.names):
            raise ValidationError("at least one region must be active")

    @property
    def names(self) -> list[str]:
        """The regions' names, in order."""
        return list(self.region_names or REGION_NAMES[: self.regions])

    def to_json(self) -> dict[str, Any]:
        return {
            "regions": self.regions,
            "nodes_per_region": self.nodes_per_region,
            "store": self.store,
            "latency_ms": self.latency_ms,
            "jitter_ms": self.jitter_ms,
            "loss_pct": self.loss_pct,
            "standby": list(self.standby),
            "clock_offsets_ms": dict(self.clock_offsets_ms),
            "postgres": self.postgres,
            "region_names": self.names,
            "tracing_endpoint": self.tracing_endpoint,
            "settings": dict(self.settings),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ClusterSpec:
        return cls(
            regions=int(raw["regions"]),
            nodes_per_region=int(raw["nodes_per_region"]),
            store=raw["store"],
            latency_ms=float(raw["latency_ms"]),
            jitter_ms=float(raw["jitter_ms"]),
            loss_pct=float(raw["loss_pct"]),
            standby=tuple(raw["standby"]),
            clock_offsets_ms=dict(raw["clock_offsets_ms"]),
            postgres=str(raw["postgres"]),
            region_names=tuple(raw.get("region_names", ())),
            tracing_endpoint=str(raw.get("tracing_endpoint", "")),
            settings=dict(raw.get("settings", {})),
        )


@dataclass
class NodeInfo:
    """One ``breakwater serve`` process of a region, and the proxy devices reach it through."""

    name: str
    port: int
    device_proxy: str
    device_port: int
    process: ProcessRecord | None = None

    @property
    def url(self) -> str:
        """The node itself (for tests and operators; devices use :attr:`device_url`)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def device_url(self) -> str:
        return f"http://127.0.0.1:{self.device_port}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "port": self.port,
            "url": self.url,
            "device_proxy": self.device_proxy,
            "device_port": self.device_port,
            "device_url": self.device_url,
            "process": self.process.to_json() if self.process else None,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> NodeInfo:
        process = raw.get("process")
        return cls(
            raw["name"],
            int(raw["port"]),
            raw["device_proxy"],
            int(raw["device_port"]),
            ProcessRecord.from_json(process) if process else None,
        )


@dataclass
class RegionInfo:
    """A region: its store, its nodes, the keys it issued, and its links to each peer
    (``links[peer]``: the proxies this region's replicator reaches ``peer`` through)."""

    name: str
    state: str
    directory: str
    store_url: str
    database: str | None
    nodes: list[NodeInfo]
    links: dict[str, list[str]]
    clock_offset_ms: int = 0

    @property
    def path(self) -> Path:
        return Path(self.directory)

    @property
    def data(self) -> Path:
        """The data directory every node of the region shares (SQLite store, signing keys)."""
        return self.path / "data"

    @property
    def config(self) -> Path:
        """The nodes' TOML (topology with the peers' keys: kept private)."""
        return self.path / "node.toml"

    @property
    def admin_key_file(self) -> Path:
        """An API key with the ``admin`` scope, issued by this region."""
        return self.path / "admin.key"

    @property
    def replication_key_file(self) -> Path:
        """The API key with the ``replication`` scope this region issued for its peers."""
        return self.path / "replication.key"

    def device_urls(self) -> list[str]:
        return [node.device_url for node in self.nodes]

    def node_urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def admin_key(self) -> str:
        return self.admin_key_file.read_text().strip()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "directory": self.directory,
            "store_url": self.store_url,
            "database": self.database,
            "config": str(self.config),
            "admin_key_file": str(self.admin_key_file),
            "replication_key_file": str(self.replication_key_file),
            "clock_offset_ms": self.clock_offset_ms,
            "device_urls": self.device_urls(),
            "node_urls": self.node_urls(),
            "nodes": [node.to_json() for node in self.nodes],
            "links": self.links,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RegionInfo:
        return cls(
            raw["name"],
            raw["state"],
            raw["directory"],
            raw["store_url"],
            raw.get("database"),
            [NodeInfo.from_json(node) for node in raw["nodes"]],
            {peer: list(names) for peer, names in raw["links"].items()},
            int(raw.get("clock_offset_ms", 0)),
        )


@dataclass
class ClusterInfo:
    """Everything a running cluster is; :meth:`save` writes the cluster file."""

    directory: str
    spec: ClusterSpec
    control_port: int
    regions: dict[str, RegionInfo]
    proxies: dict[str, tuple[int, int]]
    """Every proxy by name: ``(listen port, upstream port)`` on 127.0.0.1."""
    proxy_host: ProcessRecord | None = None

    @property
    def control_url(self) -> str:
        """The chaos proxies' control API (docs/verification.md#control-api)."""
        return f"http://127.0.0.1:{self.control_port}"

    @property
    def file(self) -> Path:
        return Path(self.directory) / CLUSTER_FILE

    def processes(self) -> list[ProcessRecord]:
        """Every process the cluster started, nodes first."""
        found = [
            node.process
            for region in self.regions.values()
            for node in region.nodes
            if node.process is not None
        ]
        return found + ([self.proxy_host] if self.proxy_host else [])

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FILE_VERSION,
            "directory": self.directory,
            "spec": self.spec.to_json(),
            "control_url": self.control_url,
            "control_port": self.control_port,
            "proxy_host": self.proxy_host.to_json() if self.proxy_host else None,
            "proxies": {
                name: {"listen_port": listen, "upstream_port": upstream}
                for name, (listen, upstream) in self.proxies.items()
            },
            "regions": {name: region.to_json() for name, region in self.regions.items()},
        }

    def save(self) -> None:
        """Write the cluster file atomically (readers never see half of it)."""
        temporary = self.file.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        temporary.replace(self.file)

    @classmethod
    def load(cls, directory: Path) -> ClusterInfo:
        """The cluster file in ``directory``; ``ValidationError`` if there is none."""
        try:
            raw = codec.loads((directory / CLUSTER_FILE).read_bytes())
        except OSError as exc:
            raise ValidationError(
                f"no cluster in {directory} ({exc.strerror}); start one with breakwater cluster up"
            ) from exc
        if raw.get("version") != FILE_VERSION:
            raise ValidationError(
                f"{directory / CLUSTER_FILE}: unknown version {raw.get('version')}"
            )
        host = raw.get("proxy_host")
        return cls(
            raw["directory"],
            ClusterSpec.from_json(raw["spec"]),
            int(raw["control_port"]),
            {name: RegionInfo.from_json(r) for name, r in raw["regions"].items()},
            {
                name: (int(p["listen_port"]), int(p["upstream_port"]))
                for name, p in raw["proxies"].items()
            },
            ProcessRecord.from_json(host) if host else None,
        )
