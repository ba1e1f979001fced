"""``breakwater region``: this region's state (promote a standby), on its store directly.

Works while the region's nodes run: they re-read the state within a second, so one command
turns every node of the region active (docs/multi-region.md#promotion).
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Annotated

import typer

from breakwater.config import Config, load_config
from breakwater.core.engine import Engine
from breakwater.core.hlc import HybridClock
from breakwater.server.application.region import REGION_STATE_KEY
from breakwater.storage import open_store

app = typer.Typer(help="This region's state: show it, promote a standby.")

DataOption = Annotated[Path | None, typer.Option(help="Data directory (default ./data).")]
StoreOption = Annotated[str | None, typer.Option(help="Store URL (sqlite:///… or postgresql://…).")]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML config file (or BREAKWATER_CONFIG).")
]


async def _state(config: Config, promote: bool) -> tuple[str, str]:
    """The region's state before and after (promoting it when asked)."""
    engine = Engine(config.region, HybridClock(f"cli-{secrets.token_hex(3)}"))
    store = open_store(config.store_url, engine)
    await store.open()
    try:
        values = await store.replication_state()
        before = str(values.get(REGION_STATE_KEY, config.topology.state))
        if promote:
            await store.put_replication_state({REGION_STATE_KEY: "active"})
            return before, "active"
        return before, before
    finally:
        await store.aclose()


@app.command("promote")
def promote(
    data: DataOption = None, store: StoreOption = None, config: ConfigOption = None
) -> None:
    """Make this (standby) region active, durably and for all its nodes (idempotent)."""
    settings = load_config(config, overrides={"data": data, "store": store})
    before, _ = asyncio.run(_state(settings, promote=True))
    typer.echo(f"region {settings.region}: {before} -> active")


@app.command("status")
def status(data: DataOption = None, store: StoreOption = None, config: ConfigOption = None) -> None:
    """Print this region's state (active or standby) as its store keeps it."""
    settings = load_config(config, overrides={"data": data, "store": store})
    state, _ = asyncio.run(_state(settings, promote=False))
    typer.echo(f"region {settings.region}: {state}")
