"""``breakwater restore``: the last step of every restore from a backup (docs/operations.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from breakwater.config import load_config
from breakwater.ops.restore import start_new_incarnation


def restore(
    data: Annotated[Path | None, typer.Option(help="Data directory (default ./data).")] = None,
    store: Annotated[
        str | None, typer.Option(help="Store URL (sqlite:///… or postgresql://…).")
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="The region the store serves (default local).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML config file (or BREAKWATER_CONFIG).")
    ] = None,
) -> None:
    """Mark the store as restored from a backup, with every node stopped: its new writes get a
    new origin, and devices that saw changes the backup lacks resync (cursor_unknown)."""
    settings = load_config(config, overrides={"data": data, "store": store, "region": region})
    origin = asyncio.run(start_new_incarnation(settings.store_url, settings.region))
    typer.echo(f"{settings.store_url_redacted}: restored; new writes get origin {origin}")
