"""``breakwater init``: a commented configuration file for a chosen layout.

The templates (``layouts/*.toml``) hold only settings that exist, so ``serve --config`` accepts
the file as written; the values a layout needs from its operator (store, bus, region) come from
the flags and are written as TOML strings.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from importlib import resources
from pathlib import Path
from string import Template
from typing import Annotated

import typer

from breakwater.core.hlc import NODE_PATTERN


class Layout(StrEnum):
    """The deployments ``init`` writes a configuration for."""

    SINGLE_NODE = "single-node"
    REGION_POSTGRES = "region-postgres"
    MULTI_REGION = "multi-region"


MULTI_REGION_WARNING = (
    "Note: list every other region under [topology.peers] with the replication key it issued"
    " (see the file and docs/multi-region.md); state transfer and anti-entropy are not built yet."
)


def render(layout: Layout, *, region: str, data: str, store: str, bus: str, cache: str) -> str:
    """The layout's configuration text with the given values."""
    template = resources.files("breakwater.cli").joinpath(f"layouts/{layout.value}.toml")
    values = {"region": region, "data": data, "store": store, "bus": bus, "cache": cache}
    quoted = {key: json.dumps(value) for key, value in values.items()}  # a TOML basic string
    return Template(template.read_text()).substitute(quoted, region_name=region)


def init(
    layout: Annotated[Layout, typer.Argument(help="What to configure.")],
    out: Annotated[Path, typer.Option(help="File to write.")] = Path("breakwater.toml"),
    region: Annotated[str | None, typer.Option(help="Region name (default local, or eu).")] = None,
    data: Annotated[str, typer.Option(help="Data directory.")] = "data",
    store: Annotated[
        str, typer.Option(help="PostgreSQL store URL (region layouts).")
    ] = "postgresql://breakwater@127.0.0.1:5432/breakwater?schema=breakwater",
    bus: Annotated[
        str, typer.Option(help="Bus URL between nodes (region layouts).")
    ] = "redis://127.0.0.1:6379/0",
    cache: Annotated[
        str, typer.Option(help="Cache URL (region layouts).")
    ] = "redis://127.0.0.1:6379/0",
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented configuration for LAYOUT that `breakwater serve --config` accepts."""
    if out.exists() and not force:
        raise typer.BadParameter(f"{out} exists; pass --force to overwrite it", param_hint="--out")
    region = region or ("local" if layout is Layout.SINGLE_NODE else "eu")
    if not NODE_PATTERN.fullmatch(region):
        raise typer.BadParameter(f"must match {NODE_PATTERN.pattern}", param_hint="--region")
    text = render(layout, region=region, data=data, store=store, bus=bus, cache=cache)
    out.write_text(text)
    print(f"Wrote {out} ({layout.value}). Start a node: breakwater serve --config {out}")
    if layout is Layout.MULTI_REGION:
        print(MULTI_REGION_WARNING, file=sys.stderr)
