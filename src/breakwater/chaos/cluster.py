"""A local multi-region cluster: regions of ``breakwater serve`` nodes linked through chaos proxies.

``LocalCluster(spec, directory).up()`` starts, in order:

1. one PostgreSQL database per region on the shared server (``--store postgres``; SQLite needs
   nothing: the region's nodes share one file in the region's data directory);
2. in each region's store, the API keys that region issues: one with the ``replication`` scope
   (its peers pull with it) and one with ``admin`` (``breakwater keys create``, the command an
   operator runs);
3. one process of chaos proxies (:mod:`breakwater.chaos.proxy_host`): a proxy in front of every
   node (the device URLs) and one on every directed cross-region link (region A reaches region
   B's nodes only through the proxies ``link~A~B~i``), with the spec's latency, jitter and loss;
4. every node, with a TOML naming its region and its peers (their link proxies and keys), then
   waits until every node answers ``/readyz``, and writes the cluster file
   (:class:`~breakwater.chaos.cluster_spec.ClusterInfo`).

Every process runs in a session of its own and outlives the caller; :meth:`LocalCluster.down`
(or ``breakwater cluster down`` from another process) stops each by its PID and start time, drops
the databases and removes the directory. Faults: :meth:`set_fault` on any proxies (links or
device proxies), :meth:`kill_node`, :meth:`lose_region` (every node SIGKILLed and the store
deleted), :meth:`start_region`, :meth:`restart_region` with a clock offset, :meth:`promote`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from breakwater.chaos.cluster_spec import (
    ClusterInfo,
    ClusterSpec,
    NodeInfo,
    RegionInfo,
)
from breakwater.chaos.detached import ProcessRecord, clean_env, spawn
from breakwater.chaos.faults import parse_fault
from breakwater.chaos.ports import PortPicker
from breakwater.chaos.proxy_host import ProxySpec, write_specs
from breakwater.core.errors import BreakwaterError

Progress = Callable[[str], None]
READY_TIMEOUT_S = 60.0
LOOPBACK = "127.0.0.1"


class ClusterFailed(BreakwaterError):
    """A process of the cluster did not start; the detail ends with its log's tail."""

    type = "cluster_failed"


def _log_tail(path: str, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _toml_value(value: Any) -> str:
    # JSON strings, numbers and arrays of strings are valid TOML as they are.
    return json.dumps(value)


def _breakwater(*args: str) -> list[str]:
    return [sys.executable, "-m", "breakwater", *args]


def _database_name(directory: Path, region: str) -> str:
    digest = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:10]
    return f"bw_cluster_{digest}_{region}"


def link_proxy(src: str, dst: str, index: int) -> str:
    """The proxy on which region ``src`` reaches node ``index`` of region ``dst``."""
    return f"link~{src}~{dst}~{index}"


class LocalCluster:
    """A local cluster in ``directory``; ``async with`` starts it and takes it down."""

    def __init__(
        self, spec: ClusterSpec, directory: Path, progress: Progress = lambda _: None
    ) -> None:
        self.spec = spec
        self.directory = directory.resolve()
        self.progress = progress
        self.info: ClusterInfo | None = None

    @classmethod
    def attach(cls, directory: Path, progress: Progress = lambda _: None) -> LocalCluster:
        """The cluster running in ``directory``, from its cluster file."""
        info = ClusterInfo.load(directory)
        cluster = cls(info.spec, Path(info.directory), progress)
        cluster.info = info
        return cluster

    async def __aenter__(self) -> LocalCluster:
        try:
            await self.up()
        except BaseException:
            await self.down()
            raise
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.down()

    @property
    def running(self) -> ClusterInfo:
        if self.info is None:
            raise RuntimeError("the cluster is not up")
        return self.info

    def region(self, name: str) -> RegionInfo:
        regions = self.running.regions
        if name not in regions:
            raise KeyError(f"no region {name!r}; the regions are {sorted(regions)}")
        return regions[name]

    # Up ------------------------------------------------------------------------------------------

    def _plan(self) -> ClusterInfo:
        spec, regions, proxies = self.spec, {}, {}
        free_port = PortPicker()
        for name in spec.names:
            nodes = []
            for index in range(spec.nodes_per_region):
                node_name = f"{name}-n{index + 1}"
                node = NodeInfo(node_name, free_port(), f"device~{node_name}", free_port())
                proxies[node.device_proxy] = (node.device_port, node.port)
                nodes.append(node)
            directory = self.directory / name
            database = _database_name(self.directory, name) if spec.store == "postgres" else None
            store_url = (
                f"{spec.postgres}/{database}"
                if database
                else f"sqlite:///{directory / 'data' / 'breakwater.db'}"
            )
            state = "standby" if name in spec.standby else "active"
            offset = spec.clock_offsets_ms.get(name, 0)
            regions[name] = RegionInfo(
                name, state, str(directory), store_url, database, nodes, {}, offset
            )
        for src in regions.values():
            for dst in regions.values():
                if src is dst:
                    continue
                src.links[dst.name] = []
                for index, node in enumerate(dst.nodes):
                    proxy = link_proxy(src.name, dst.name, index)
                    proxies[proxy] = (free_port(), node.port)
                    src.links[dst.name].append(proxy)
        return ClusterInfo(str(self.directory), spec, free_port(), regions, proxies)

    async def up(self) -> ClusterInfo:
        """Start everything (see the module's docstring) and write the cluster file."""
        if (self.directory / "cluster.json").exists():
            raise ClusterFailed(
                f"a cluster already runs in {self.directory}: breakwater cluster down --dir "
                f"{self.directory}"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        info = self.info = self._plan()
        info.save()  # from now on, down finds whatever was started
        for region in info.regions.values():
            region.data.mkdir(parents=True, exist_ok=True)
            if region.database:
                self.progress(f"{region.name}: creating database {region.database}")
                await self._create_database(region.database)
        for region in info.regions.values():
            self.progress(f"{region.name}: creating the API keys it issues")
            await self._issue_keys(region)
        self.progress(f"starting {len(info.proxies)} chaos proxies")
        await self._start_proxies()
        for region in info.regions.values():
            self._write_node_config(region)
            self.progress(f"{region.name}: starting {len(region.nodes)} node(s)")
            await self._start_nodes(region)
        info.save()
        return info

    async def _admin_connection(self) -> asyncpg.Connection:
        return await asyncpg.connect(f"{self.spec.postgres}/postgres", timeout=10)

    async def _create_database(self, name: str) -> None:
        connection = await self._admin_connection()
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    async def _drop_database(self, name: str) -> None:
        connection = await self._admin_connection()
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    def _write_store_config(self, region: RegionInfo) -> Path:
        """The TOML the key commands run with: the region and its store only."""
        path = region.path / "store.toml"
        path.write_text(
            f"region = {_toml_value(region.name)}\n"
            f"data = {_toml_value(str(region.data))}\n"
            f"store = {_toml_value(region.store_url)}\n"
        )
        return path

    async def _issue_keys(self, region: RegionInfo) -> None:
        """The region's replication and admin keys: new ones, or (after the region's store was
        lost) the same keys installed again, so its peers' configuration stays valid."""
        config = self._write_store_config(region)
        wanted = [(region.admin_key_file, "admin")]
        if len(self.running.regions) > 1:  # peers pull with it
            wanted.append((region.replication_key_file, "replication"))
        for file, scope in wanted:
            args = ["keys", "create", f"cluster-{scope}", "--scope", scope, "--config", str(config)]
            if file.exists():
                args += ["--key-file", str(file)]
            process = await asyncio.create_subprocess_exec(
                *_breakwater(*args),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=clean_env({}),
            )
            out, err = await process.communicate()
            if process.returncode != 0:
                raise ClusterFailed(
                    f"{region.name}: keys create --scope {scope} failed: {err.decode()}"
                )
            if not file.exists():
                file.touch(mode=0o600)
                file.write_text(out.decode().splitlines()[-1].strip() + "\n")

    async def _start_proxies(self) -> None:
        info = self.running
        spec_file = self.directory / "proxies.json"
        write_specs(
            spec_file,
            {
                name: ProxySpec((LOOPBACK, listen), (LOOPBACK, upstream))
                for name, (listen, upstream) in info.proxies.items()
            },
        )
        argv = _breakwater(
            "chaos",
            "proxies",
            "--spec",
            str(spec_file),
            "--control",
            f"{LOOPBACK}:{info.control_port}",
        )
        info.proxy_host = spawn(argv, self.directory / "proxies.log", clean_env({}))
        info.save()
        await self._wait_ready(info.proxy_host, f"{info.control_url}/proxies", "the chaos proxies")
        await self.heal_network()

    def _write_node_config(self, region: RegionInfo) -> None:
        info = self.running
        lines = [
            f"region = {_toml_value(region.name)}",
            f"data = {_toml_value(str(region.data))}",
            f"store = {_toml_value(region.store_url)}",
            'log_level = "warning"',
            # Devices reach a node through its proxy, so all from one address.
            "max_connections_per_address = 0",
            *(f"{key} = {_toml_value(value)}" for key, value in self.spec.settings.items()),
        ]
        if len(info.regions) > 1 or region.state != "active":
            lines += [
                "",
                "[topology]",
                f"state = {_toml_value(region.state)}",
                f"public_urls = {_toml_value(region.device_urls())}",
            ]
            for peer, proxies in region.links.items():
                urls = [f"http://{LOOPBACK}:{info.proxies[p][0]}" for p in proxies]
                key = info.regions[peer].replication_key_file.read_text().strip()
                lines += [
                    "",
                    f"[topology.peers.{peer}]",
                    f"urls = {_toml_value(urls)}",
                    f"public_urls = {_toml_value(info.regions[peer].device_urls())}",
                    f"key = {_toml_value(key)}",
                ]
        if self.spec.tracing_endpoint:
            lines += [
                "",
                "[tracing]",
                "enabled = true",
                f"endpoint = {_toml_value(self.spec.tracing_endpoint)}",
            ]
        region.config.touch(mode=0o600)  # it holds the peers' keys
        region.config.write_text("\n".join(lines) + "\n")

    def _node_argv(self, region: RegionInfo, node: NodeInfo) -> list[str]:
        return _breakwater(
            "serve",
            "--config",
            str(region.config),
            "--host",
            LOOPBACK,
            "--port",
            str(node.port),
            "--node",
            node.name,
            "--drain-grace",
            "0",
        )

    def _node_env(self, region: RegionInfo) -> dict[str, str]:
        extra = {}
        if region.clock_offset_ms:
            extra["BREAKWATER_CLOCK_OFFSET_MS"] = str(region.clock_offset_ms)
        return clean_env(extra)

    async def _start_nodes(
        self, region: RegionInfo, nodes: Iterable[NodeInfo] | None = None
    ) -> None:
        chosen = list(region.nodes if nodes is None else nodes)
        for node in chosen:
            log = region.path / f"{node.name}.log"
            node.process = spawn(self._node_argv(region, node), log, self._node_env(region))
            self.running.save()
            if node is chosen[0]:
                # The first node creates the store's schema; the others start once it has.
                await self._wait_ready(node.process, f"{node.url}/readyz", node.name)
        await asyncio.gather(
            *(
                self._wait_ready(node.process, f"{node.url}/readyz", node.name)
                for node in chosen[1:]
                if node.process is not None
            )
        )

    async def _wait_ready(self, process: ProcessRecord, url: str, what: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        async with httpx.AsyncClient(timeout=1.0) as http:
            while time.monotonic() < deadline:
                if not process.alive:
                    raise ClusterFailed(
                        f"{what} {process.describe_exit()}:\n{_log_tail(process.log)}"
                    )
                try:
                    if (await http.get(url)).status_code == 200:
                        self.progress(f"{what} ready")
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise ClusterFailed(f"{what} not ready in {READY_TIMEOUT_S:g}s:\n{_log_tail(process.log)}")

    # Down ----------------------------------------------------------------------------------------

    async def down(self, remove: bool = True) -> None:
        """Stop every process the cluster started (by PID and start time), drop its databases
        and (with ``remove``) delete its directory, logs included."""
        info = self.info
        if info is None:
            return
        processes = info.processes()
        self.progress(f"stopping {len(processes)} processes")
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in processes))
        for region in info.regions.values():
            if region.database:
                self.progress(f"{region.name}: dropping database {region.database}")
                await self._drop_database(region.database)
        if remove:
            await asyncio.to_thread(shutil.rmtree, self.directory, True)
        else:
            info.file.unlink(missing_ok=True)  # nothing runs any more
        self.info = None

    # Status --------------------------------------------------------------------------------------

    async def status(self) -> dict[str, list[dict[str, Any]]]:
        """Each region's nodes: whether the process runs and what ``/readyz`` answers."""
        report: dict[str, list[dict[str, Any]]] = {}
        async with httpx.AsyncClient(timeout=2.0) as http:
            for region in self.running.regions.values():
                rows = report[region.name] = []
                for node in region.nodes:
                    row: dict[str, Any] = {
                        "node": node.name,
                        "url": node.url,
                        "running": bool(node.process and node.process.alive),
                    }
                    try:
                        answer = await http.get(f"{node.url}/readyz")
                        row["ready"] = answer.status_code == 200
                        row["readyz"] = answer.json()
                    except (httpx.HTTPError, ValueError) as exc:
                        row["ready"] = False
                        row["readyz"] = {"error": str(exc) or type(exc).__name__}
                    rows.append(row)
        return report

    # Faults --------------------------------------------------------------------------------------

    def links(self, src: str | None = None, dst: str | None = None) -> list[str]:
        """The link proxies from ``src`` to ``dst`` (``None``: any region)."""
        return [
            proxy
            for region in self.running.regions.values()
            if src in (None, region.name)
            for peer, proxies in region.links.items()
            if dst in (None, peer)
            for proxy in proxies
        ]

    def region_links(self, name: str) -> list[str]:
        """Every link proxy between region ``name`` and the others, both ways."""
        return sorted(set(self.links(src=name)) | set(self.links(dst=name)))

    async def set_fault(
        self, proxies: Iterable[str], kind: str, params: Mapping[str, Any] | None = None
    ) -> None:
        """Switch fault ``kind`` on every proxy of ``proxies`` (validated first)."""
        parse_fault(kind, params or {})
        async with httpx.AsyncClient(base_url=self.running.control_url, timeout=5) as http:
            for proxy in proxies:
                answer = await http.put(f"/proxies/{proxy}/faults/{kind}", json=dict(params or {}))
                answer.raise_for_status()

    async def clear_fault(self, proxies: Iterable[str], kind: str) -> None:
        """Switch fault ``kind`` off on every proxy of ``proxies`` (the link's baseline stays)."""
        async with httpx.AsyncClient(base_url=self.running.control_url, timeout=5) as http:
            for proxy in proxies:
                (await http.delete(f"/proxies/{proxy}/faults/{kind}")).raise_for_status()
        await self._baseline(kind)

    async def heal_network(self) -> None:
        """Every fault off on every proxy, then the links' latency, jitter and loss again."""
        async with httpx.AsyncClient(base_url=self.running.control_url, timeout=5) as http:
            for proxy in self.running.proxies:
                (await http.delete(f"/proxies/{proxy}/faults")).raise_for_status()
        await self._baseline(None)

    async def _baseline(self, kind: str | None) -> None:
        spec = self.spec
        if kind in (None, "latency") and (spec.latency_ms or spec.jitter_ms):
            params = {"ms": spec.latency_ms, "jitter_ms": spec.jitter_ms}
            await self.set_fault(self.links(), "latency", params)
        if kind in (None, "loss") and spec.loss_pct:
            await self.set_fault(self.links(), "loss", {"percent": spec.loss_pct})

    def node(self, name: str) -> tuple[RegionInfo, NodeInfo]:
        for region in self.running.regions.values():
            for node in region.nodes:
                if node.name == name:
                    return region, node
        raise KeyError(f"no node {name!r}")

    async def kill_node(self, name: str) -> None:
        """SIGKILL one node: no drain, no flush."""
        _, node = self.node(name)
        if node.process is not None:
            await asyncio.to_thread(node.process.kill)

    async def start_node(self, name: str) -> None:
        """Start a node that is not running (on the same port, config and store)."""
        region, node = self.node(name)
        if node.process is None or not node.process.alive:
            await self._start_nodes(region, [node])

    async def kill_region(self, name: str) -> None:
        """SIGKILL every node of region ``name``."""
        region = self.region(name)
        await asyncio.gather(*(self.kill_node(node.name) for node in region.nodes))

    async def lose_region(self, name: str) -> None:
        """The region is gone: every node SIGKILLed and its store deleted (signing keys and
        auth data with it). :meth:`start_region` brings up an empty region in its place."""
        region = self.region(name)
        await self.kill_region(name)
        if region.database:
            await self._drop_database(region.database)
        await asyncio.to_thread(shutil.rmtree, region.data, True)

    async def start_region(self, name: str) -> None:
        """Start every node of region ``name`` that is not running; after :meth:`lose_region`,
        on a new empty store holding the region's keys again."""
        region = self.region(name)
        if not region.data.exists():
            region.data.mkdir(parents=True)
            if region.database:
                await self._create_database(region.database)
            await self._issue_keys(region)
        stopped = [n for n in region.nodes if n.process is None or not n.process.alive]
        await self._start_nodes(region, stopped)

    async def restart_region(self, name: str, clock_offset_ms: int | None = None) -> None:
        """Kill and start every node of the region, with its clock shifted by
        ``clock_offset_ms`` (``None``: the spec's offset)."""
        region = self.region(name)
        await self.kill_region(name)
        chosen = (
            self.spec.clock_offsets_ms.get(name, 0) if clock_offset_ms is None else clock_offset_ms
        )
        region.clock_offset_ms = chosen
        await self.start_region(name)

    async def promote(self, name: str) -> None:
        """Turn standby region ``name`` active (``POST /v1/admin/region/promote``)."""
        region = self.region(name)
        headers = {"Authorization": f"ApiKey {region.admin_key()}"}
        async with httpx.AsyncClient(timeout=10, headers=headers) as http:
            for url in region.node_urls():
                try:
                    answer = await http.post(f"{url}/v1/admin/region/promote")
                except httpx.HTTPError:
                    continue  # another node of the region takes it
                answer.raise_for_status()
                region.state = "active"
                self.running.save()
                return
        raise ClusterFailed(f"no node of region {name} answered the promotion")
