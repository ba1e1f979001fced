"""``breakwater cluster up|status|down`` and :class:`LocalCluster`: what starts, what is left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from breakwater.chaos.cluster import LocalCluster
from breakwater.chaos.cluster_spec import ClusterInfo, ClusterSpec
from breakwater.core.errors import ValidationError
from tests.services import POSTGRES_URL, require_service

pytestmark = pytest.mark.slow


def breakwater(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BREAKWATER_")}
    return subprocess.run(
        [sys.executable, "-m", "breakwater", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def server_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def databases(server: str) -> set[str]:
    connection = await asyncpg.connect(f"{server}/postgres")
    try:
        rows = await connection.fetch("SELECT datname FROM pg_database")
    finally:
        await connection.close()
    return {row["datname"] for row in rows}


def test_up_status_down_from_the_command_line_leaves_no_process(tmp_path: Path) -> None:
    """``up`` returns with the nodes and proxies running on their own, ``status`` sees every
    node ready, ``down`` (another process) stops each one by PID and removes the directory."""
    directory = tmp_path / "cluster"
    started = breakwater(
        "cluster", "up", "--regions", "1", "--nodes-per-region", "2", "--dir", str(directory)
    )
    assert started.returncode == 0, started.stderr
    info = ClusterInfo.load(directory)
    processes = info.processes()
    try:
        assert len(processes) == 3 and all(p.alive for p in processes)
        assert "device URLs" in started.stdout and "eu-n2" in started.stderr
        region = info.regions["eu"]
        for url in region.device_urls() + region.node_urls():
            assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        assert (region.admin_key_file.stat().st_mode & 0o777) == 0o600
        headers = {"Authorization": f"ApiKey {region.admin_key()}"}
        admin = httpx.get(f"{region.node_urls()[0]}/v1/admin/keys", headers=headers, timeout=5)
        assert admin.status_code == 200, admin.text
        status = breakwater("cluster", "status", "--dir", str(directory))
        assert status.returncode == 0 and status.stdout.count(" ready ") == 2, status.stdout
        again = breakwater("cluster", "up", "--regions", "1", "--dir", str(directory))
        assert again.returncode != 0 and "already runs" in again.stderr
    finally:
        stopped = breakwater("cluster", "down", "--dir", str(directory))
    assert stopped.returncode == 0, stopped.stderr
    assert not any(p.alive for p in processes)
    assert not directory.exists()
    status = breakwater("cluster", "status", "--dir", str(directory))
    assert status.returncode != 0 and "no cluster" in status.stderr


async def test_postgres_cluster_creates_a_database_per_region_and_drops_them(
    tmp_path: Path,
) -> None:
    """``--store postgres``: each region's nodes share a database of its own on the server,
    and taking the cluster down drops them all and stops every process."""
    server = server_of(require_service(POSTGRES_URL))
    spec = ClusterSpec(regions=1, nodes_per_region=2, store="postgres", postgres=server)
    async with LocalCluster(spec, tmp_path / "pg") as cluster:
        region = cluster.region("eu")
        assert region.database is not None and region.database in await databases(server)
        processes = cluster.running.processes()
        async with httpx.AsyncClient(timeout=5) as http:
            one, two = region.node_urls()
            pushed = await http.post(
                f"{one}/v1/sync/push",
                json={
                    "mutations": [
                        {
                            "mutation_id": "m1",
                            "collection": "c",
                            "id": "x",
                            "op": "set",
                            "data": {"a": 1},
                        }
                    ]
                },
            )
            assert pushed.json()["results"][0]["status"] == "applied"
            read = await http.get(f"{two}/v1/collections/c/docs/x")
            assert read.json()["data"] == {"a": 1}  # one store under both nodes
    assert region.database not in await databases(server)
    assert not any(p.alive for p in processes)
    assert not (tmp_path / "pg").exists()


def test_bad_specs_are_refused_before_anything_starts() -> None:
    """Out-of-range options name the option."""
    for kwargs, words in (
        ({"regions": 0}, "--regions"),
        ({"nodes_per_region": 9}, "--nodes-per-region"),
        ({"store": "mysql"}, "--store"),
        ({"loss_pct": 120.0}, "--loss"),
        ({"latency_ms": -1.0}, "--latency"),
        ({"regions": 2, "standby": ("eu", "us")}, "active"),
        ({"regions": 2, "standby": ("mars",)}, "mars"),
    ):
        with pytest.raises(ValidationError, match=words):
            ClusterSpec(**kwargs)
