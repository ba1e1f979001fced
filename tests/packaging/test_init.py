"""``breakwater init``: each layout's file is accepted by the configuration loader as written,
and starts a node that answers /readyz (the region layouts on the test PostgreSQL, with a schema
of their own, and Redis)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from breakwater.cli.init import Layout
from breakwater.cli.main import app
from breakwater.config import load_config
from tests.conftest import free_port
from tests.services import REDIS_URL, require_service
from tests.storage.backends import drop_schema, postgres_url


def write(layout: Layout, path: Path, *args: str) -> Path:
    """Run ``breakwater init`` for ``layout`` into ``path``; the file written."""
    result = CliRunner().invoke(app, ["init", layout.value, "--out", str(path), *args])
    assert result.exit_code == 0, result.output
    return path


@pytest.mark.parametrize("layout", list(Layout))
def test_every_layout_loads_as_written(layout: Layout, tmp_path: Path) -> None:
    """The file loads without an error and holds the values given to init."""
    store = "postgresql://app@db.internal:5432/app?schema=eu"
    path = write(layout, tmp_path / "b.toml", "--region", "eu-west", "--store", store)
    config = load_config(path, env={})
    assert config.region == "eu-west"
    if layout is Layout.SINGLE_NODE:
        assert config.store_url.startswith("sqlite:///")
    else:
        assert config.store == store
        assert config.bus.startswith("redis://")


def test_multi_region_shows_where_peers_go(tmp_path: Path) -> None:
    """The multi-region file has a [topology] table and says how peers and keys are set; the
    command points there."""
    result = CliRunner().invoke(app, ["init", "multi-region", "--out", str(tmp_path / "m.toml")])
    assert "[topology.peers]" in result.output
    text = (tmp_path / "m.toml").read_text()
    assert "[topology]" in text and "--scope replication" in text


def test_init_keeps_an_existing_file(tmp_path: Path) -> None:
    """An existing file is not overwritten without --force (usage error, exit 2)."""
    path = tmp_path / "b.toml"
    path.write_text("port = 1\n")
    result = CliRunner().invoke(app, ["init", "single-node", "--out", str(path)])
    assert result.exit_code == 2
    assert path.read_text() == "port = 1\n"


@pytest.fixture
async def store_url() -> AsyncIterator[str]:
    """A PostgreSQL store URL with a schema of this test's own."""
    url, schema = postgres_url(pool_size="2")
    yield url
    await drop_schema(schema)


@pytest.mark.slow
@pytest.mark.parametrize("layout", list(Layout))
def test_every_layout_starts_a_node_that_is_ready(
    layout: Layout, tmp_path: Path, store_url: str
) -> None:
    """``serve --config`` with the file as written: /readyz answers 200, SIGTERM stops it."""
    args = ["--data", str(tmp_path / "data")]
    if layout is not Layout.SINGLE_NODE:
        redis = require_service(REDIS_URL)
        args += ["--store", store_url, "--bus", redis, "--cache", redis]
    path = write(layout, tmp_path / "breakwater.toml", *args)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BREAKWATER_")}
    env["BREAKWATER_PORT"] = str(port)  # the one value not from the file: a free port
    log = tmp_path / "node.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "breakwater", "serve", "--config", str(path)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        status = 0
        for _ in range(300):
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(httpx.HTTPError):
                status = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code
                if status == 200:
                    break
            time.sleep(0.1)
        assert status == 200, log.read_text()
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0, log.read_text()
