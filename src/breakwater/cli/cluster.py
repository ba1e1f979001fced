"""``breakwater cluster up|status|down``: a local multi-region deployment on this machine."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from breakwater.cli import long_run
from breakwater.cli.output import report_console

if TYPE_CHECKING:
    from breakwater.chaos.cluster_spec import ClusterInfo

app = typer.Typer(
    help="A local multi-region cluster: regions of nodes, links through chaos proxies."
)

DEFAULT_DIR = Path(".breakwater-cluster")
DirOption = Annotated[Path, typer.Option("--dir", help="The cluster's state directory.")]


@app.command("up")
def up(
    regions: Annotated[int, typer.Option(help="Regions (eu, us, ap, ...), 1 to 8.")] = 3,
    nodes_per_region: Annotated[int, typer.Option(help="Nodes sharing each region's store.")] = 1,
    store: Annotated[
        str, typer.Option(help="sqlite (one file per region) or postgres (one database each).")
    ] = "sqlite",
    latency: Annotated[
        float, typer.Option(help="ms added each way on every cross-region link.")
    ] = 0.0,
    jitter: Annotated[float, typer.Option(help="± ms of jitter on that latency.")] = 0.0,
    loss: Annotated[
        float, typer.Option(help="% of chunks delayed by a TCP retransmission (200 ms).")
    ] = 0.0,
    standby: Annotated[
        list[str] | None, typer.Option(help="A region that starts as a read-only standby.")
    ] = None,
    postgres: Annotated[
        str, typer.Option(help="PostgreSQL server for --store postgres (no database).")
    ] = "postgresql://postgres@127.0.0.1:5432",
    tracing_endpoint: Annotated[
        str, typer.Option(help="An OTLP/HTTP traces URL: every node traces and exports there.")
    ] = "",
    directory: DirOption = DEFAULT_DIR,
) -> None:
    """Start the cluster and print its endpoints; it runs until ``breakwater cluster down``."""
    from breakwater.chaos.cluster import LocalCluster
    from breakwater.chaos.cluster_spec import ClusterSpec

    spec = ClusterSpec(
        regions=regions,
        nodes_per_region=nodes_per_region,
        store=store,  # type: ignore[arg-type]  # validated by ClusterSpec
        latency_ms=latency,
        jitter_ms=jitter,
        loss_pct=loss,
        standby=tuple(standby or ()),
        postgres=postgres.rstrip("/"),
        tracing_endpoint=tracing_endpoint,
    )
    long_run.stop_cleanly_on_signals()
    with long_run.progress("cluster: starting") as step:
        cluster = LocalCluster(spec, directory, step)

        async def start() -> ClusterInfo:
            try:
                return await cluster.up()
            except BaseException:
                step("start failed: stopping what was started")
                await cluster.down()
                raise

        info = asyncio.run(start())
    typer.echo(endpoints_text(info))


def endpoints_text(info: ClusterInfo) -> str:
    """Per region: state, device URLs, node URLs, link proxies and the admin key's file (plain
    lines, so that they can be copied whole from any terminal width)."""
    lines = [f"cluster of {len(info.regions)} region(s) on {info.spec.store}:"]
    for region in info.regions.values():
        lines.append(f"{region.name} ({region.state})")
        lines.append(f"  device URLs: {' '.join(region.device_urls())}")
        lines.append(f"  node URLs:   {' '.join(region.node_urls())}")
        for peer, proxies in region.links.items():
            ports = " ".join(f"{name} :{info.proxies[name][0]}" for name in proxies)
            lines.append(f"  to {peer} via: {ports}")
        lines.append(f"  admin key:   {region.admin_key_file}")
    lines.append(f"chaos proxies' control API: {info.control_url}")
    lines.append(f"cluster file: {info.file}")
    return "\n".join(lines)


@app.command("status")
def status(directory: DirOption = DEFAULT_DIR) -> None:
    """Each node of each region: running, ready, and what its ``/readyz`` says."""
    from breakwater.chaos.cluster import LocalCluster

    cluster = LocalCluster.attach(directory)
    report = asyncio.run(cluster.status())
    table = Table(title="breakwater cluster status")
    for column in ("region", "node", "url", "process", "readyz"):
        table.add_column(column)
    ready = True
    for region, rows in report.items():
        for row in rows:
            ready = ready and row["ready"]
            answer = row["readyz"]
            table.add_row(
                region,
                row["node"],
                row["url"],
                "running" if row["running"] else "[red]stopped[/]",
                "[green]ready[/]"
                if row["ready"]
                else f"[red]{answer.get('status') or answer.get('error')}[/]",
            )
    report_console().print(table)
    if not ready:
        raise typer.Exit(1)


@app.command("down")
def down(directory: DirOption = DEFAULT_DIR) -> None:
    """Stop every process the cluster started (by PID), drop its databases, remove its directory."""
    from breakwater.chaos.cluster import LocalCluster

    with long_run.progress("cluster: stopping") as step:
        cluster = LocalCluster.attach(directory, step)
        asyncio.run(cluster.down())
    typer.echo(f"cluster in {directory} is down")
