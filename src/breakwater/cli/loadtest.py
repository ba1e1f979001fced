"""``breakwater loadtest``: simulated devices against real nodes; a JSON report and a plot."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


def loadtest(
    devices: Annotated[int, typer.Option(min=1, max=5000, help="Simulated devices.")] = 50,
    nodes: Annotated[int, typer.Option(min=1, max=8, help="Nodes on one SQLite file.")] = 1,
    duration: Annotated[float, typer.Option(min=2, max=3600, help="Seconds of load.")] = 30.0,
    interval: Annotated[
        float, typer.Option(min=0.001, help="Mean seconds between a device's writes.")
    ] = 0.5,
    workload: Annotated[
        str,
        typer.Option(
            help="scoped: each device syncs only its own collections (one user's data); "
            "shared: every device syncs every write."
        ),
    ] = "scoped",
    seed: Annotated[int, typer.Option(help="Seeds the devices' choices.")] = 1,
    out: Annotated[
        Path, typer.Option(help="Directory for report.json, plot.html and the history.")
    ] = Path("loadtest-run"),
) -> None:
    """Run DEVICES SDK clients writing for DURATION seconds; figures per second and overall."""
    from breakwater.chaos.loadtest import LoadSpec, run_load
    from breakwater.core.errors import ValidationError

    if workload not in ("scoped", "shared"):
        raise ValidationError(f"--workload {workload!r} is not one of ['scoped', 'shared']")
    spec = LoadSpec(
        nodes=nodes,
        devices=devices,
        duration=duration,
        interval=interval,
        seed=seed,
        workload="scoped" if workload == "scoped" else "shared",
    )
    console = Console()
    with console.status("starting") as status:
        report = asyncio.run(run_load(spec, out, lambda text: status.update(text)))
    figures = report["summary"]
    table = Table(
        title=f"breakwater loadtest: {devices} {workload} devices, {nodes} node(s), {duration:g} s"
    )
    # Latency: from the app's write call to the node's acknowledgement of it.
    for column in ("mutations/s", "write→ack p50 ms", "p99 ms", "max ms", "unacknowledged"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{figures['mutations_per_s']:,}",
        f"{figures['push_p50_ms']:.1f}",
        f"{figures['push_p99_ms']:.1f}",
        f"{figures['push_max_ms']:.1f}",
        str(figures["errors"]),
    )
    console.print(table)
    console.print(f"report: {out / 'report.json'}, plot: {out / 'plot.html'}")
