"""``breakwater drill``: named disasters, measured; one subcommand per drill.

``database-promotion`` loses a PostgreSQL primary under pushes (docs/deploy.md, "Failover to a
standby"); ``node-loss``, ``region-loss``, ``store-loss``, ``region-silence``,
``region-partition`` and ``standby-promotion`` hit a local multi-region cluster (or one given by
its cluster file) while SDK devices write, and report RTO, RPO, app errors, convergence and a
plot (docs/operations.md#drills).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from breakwater.cli import long_run
from breakwater.cli.output import report_console

if TYPE_CHECKING:
    from breakwater.chaos.promotion_drill import DrillResult
    from breakwater.chaos.region_drill import DrillPlan, DrillReport

app = typer.Typer(help="Run a named disaster against private engines and measure the recovery.")


@app.command("database-promotion")
def database_promotion(
    runs: Annotated[int, typer.Option(min=1, help="Drills per standby mode.")] = 5,
    standby: Annotated[
        list[str] | None,
        typer.Option(help="sync and/or async (repeat the option); default both, interleaved."),
    ] = None,
    writers: Annotated[int, typer.Option(min=1, help="Concurrent pushing clients.")] = 8,
    warmup: Annotated[float, typer.Option(min=1.5, help="Seconds of load before the loss.")] = 4.0,
    promote_after: Annotated[
        float, typer.Option(min=0.0, help="Seconds from the loss to pg_ctl promote.")
    ] = 1.0,
    settle: Annotated[float, typer.Option(min=1.0, help="Seconds of load after it.")] = 4.0,
    out: Annotated[
        Path | None, typer.Option(help="Write the results as JSON to this file.")
    ] = None,
) -> None:
    """Lose a PostgreSQL primary (SIGKILL, data folder removed) under a load of pushes, promote
    its standby, and report the failover time, throughput and every acknowledged write lost."""
    from breakwater.chaos.promotion_drill import STANDBY_MODES, DrillPlan, StandbyMode, run_drill

    known: dict[str, StandbyMode] = {mode: mode for mode in STANDBY_MODES}
    for mode in standby or ():
        if mode not in known:
            raise typer.BadParameter(
                f"{mode!r} is not one of {list(known)}", param_hint="--standby"
            )
    modes = [known[mode] for mode in standby or STANDBY_MODES]
    long_run.stop_cleanly_on_signals()
    results: list[DrillResult] = []
    with long_run.progress("database-promotion: starting") as step:
        for index in range(runs):
            for mode in modes:  # interleaved, so both modes meet the same machine load
                step(f"database-promotion: drill {index + 1}/{runs}, {mode} standby")
                plan = DrillPlan(mode, writers, warmup, promote_after, settle)
                with tempfile.TemporaryDirectory(prefix="breakwater-drill-") as work:
                    results.append(asyncio.run(run_drill(plan, Path(work))))
    report_console().print(_table(results, modes))
    if out is not None:
        out.write_text(json.dumps([result.to_json() for result in results], indent=2) + "\n")


def _table(results: list[DrillResult], modes: Sequence[str]) -> Table:
    """One row per standby mode: the median throughput and the failover times' percentiles
    over its drills, and the totals of acknowledged, lost, twice-applied, skipped and reused."""
    from breakwater.bench.stats import median, percentile  # breakwater-tools, like the drill

    table = Table(title="breakwater drill database-promotion")
    for column in ("standby", "drills", "pushes/s", "loss→write p50/p99",
                   "promotion→write p50/p99", "acked", "lost", "twice", "skipped",
                   "reused"):  # fmt: skip
        table.add_column(column, justify="left" if column == "standby" else "right")
    for mode in modes:
        mine = [result for result in results if result.standby == mode]
        death = [r.death_to_write_s for r in mine if r.death_to_write_s is not None]
        promotion = [r.promotion_to_write_s for r in mine if r.promotion_to_write_s is not None]
        never = len(mine) - len(death)
        table.add_row(
            mode,
            str(len(mine)) + (f" ({never} never wrote again)" if never else ""),
            f"{median([r.pushes_per_s for r in mine]):,.0f}",
            f"{percentile(death, 0.5):.2f}/{percentile(death, 0.99):.2f} s",
            f"{percentile(promotion, 0.5):.2f}/{percentile(promotion, 0.99):.2f} s",
            f"{sum(r.acknowledged for r in mine):,}",
            str(sum(r.lost for r in mine)),
            str(sum(r.applied_twice for r in mine)),
            str(sum(r.seqs_skipped for r in mine)),
            str(sum(r.seqs_reused for r in mine)),
        )
    return table


DRILL_HELP = {
    "node-loss": "SIGKILL the target region's node most devices are on; they move to the other.",
    "region-loss": "SIGKILL every node of the target region, restart it after the outage.",
    "store-loss": "Lose the target region with its store; rebuild it empty after the outage.",
    "region-silence": "Black-hole the target region's device links (accepting, never answering).",
    "region-partition": "Cut the target region off from the others; heal after the outage.",
    "standby-promotion": "SIGKILL the active region, promote the standby after --promote-after.",
}


async def _run_region_drill(
    plan: DrillPlan, regions: int, cluster_dir: Path | None, work: Path, step: Any
) -> DrillReport:
    from breakwater.chaos.cluster import LocalCluster
    from breakwater.chaos.cluster_spec import REGION_NAMES, ClusterSpec
    from breakwater.chaos.region_drill import run_drill

    if cluster_dir is not None:
        return await run_drill(plan, LocalCluster.attach(cluster_dir, step), work, step)
    nodes = 2 if plan.drill == "node-loss" else 1
    if plan.drill == "standby-promotion":
        # The target active, the rest standby: the devices have nowhere to go but the promoted.
        names = REGION_NAMES[:regions]
        spec = ClusterSpec(regions=regions, nodes_per_region=nodes, standby=names[1:])
    else:
        spec = ClusterSpec(regions=regions, nodes_per_region=nodes)
    async with LocalCluster(spec, work / "cluster", step) as cluster:
        return await run_drill(plan, cluster, work, step)


def _region_table(report: DrillReport) -> Table:
    table = Table(title=f"breakwater drill {report.drill} (region {report.target})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in report.to_json().items():
        if key != "acks_per_second":
            table.add_row(key, f"{value:.2f}" if isinstance(value, float) else str(value))
    return table


def _write_region_report(report: DrillReport, directory: Path, command: str) -> None:
    from breakwater.chaos.drill_plot import acks_svg
    from breakwater.chaos.region_drill import report_markdown

    directory.mkdir(parents=True, exist_ok=True)
    name = f"drill-{report.drill}"
    title = f"drill {report.drill}: acknowledged writes per second"
    plot = acks_svg(report.acks_per_second, report.fault_at_s, report.heal_at_s, title)
    (directory / f"{name}.svg").write_text(plot)
    (directory / f"{name}.md").write_text(report_markdown(report, f"{name}.svg", command))
    (directory / f"{name}.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")


def _register_region_drill(name: str) -> None:
    """``breakwater drill NAME`` for one drill of :mod:`breakwater.chaos.region_drill`."""

    def command(
        devices: Annotated[int, typer.Option(min=1, help="Simulated SDK devices.")] = 12,
        warmup: Annotated[float, typer.Option(min=1.0, help="Seconds before the fault.")] = 5.0,
        outage: Annotated[float, typer.Option(min=0.5, help="Seconds of fault.")] = 8.0,
        settle: Annotated[float, typer.Option(min=1.0, help="Seconds after the heal.")] = 6.0,
        regions: Annotated[int, typer.Option(min=2, help="Regions of the local cluster.")] = 3,
        write_interval: Annotated[
            float, typer.Option(min=0.01, help="Seconds between two writes of a device.")
        ] = 0.25,
        target: Annotated[str, typer.Option(help="Region to hit (default: the first).")] = "",
        processes: Annotated[
            int, typer.Option(min=1, help="Processes the devices are spread over.")
        ] = 5,
        failover_timeout: Annotated[
            float, typer.Option(min=0.1, help="The SDK's failover_timeout (seconds).")
        ] = 1.0,
        promote_after: Annotated[
            float, typer.Option(min=0.0, help="standby-promotion: seconds from loss to promote.")
        ] = 1.0,
        cluster_dir: Annotated[
            Path | None,
            typer.Option(help="Drill the cluster running there (its cluster.json)."),
        ] = None,
        report_dir: Annotated[
            Path | None, typer.Option(help="Write drill-NAME.md, .svg and .json there.")
        ] = None,
    ) -> None:
        from breakwater.chaos.region_drill import DrillPlan

        plan = DrillPlan(
            name,  # type: ignore[arg-type]  # one of DRILL_HELP's names
            devices,
            warmup,
            outage,
            settle,
            write_interval,
            target,
            processes,
            failover_timeout,
            promote_after,
        )
        long_run.stop_cleanly_on_signals()
        with (
            long_run.progress(f"{name}: starting") as step,
            tempfile.TemporaryDirectory(prefix="breakwater-drill-") as work,
        ):
            report = asyncio.run(_run_region_drill(plan, regions, cluster_dir, Path(work), step))
        report_console().print(_region_table(report))
        if report_dir is not None:
            command_line = (
                f"breakwater drill {name} --devices {devices} --warmup {warmup:g}"
                f" --outage {outage:g} --settle {settle:g} --write-interval {write_interval:g}"
                f" --processes {processes} --failover-timeout {failover_timeout:g}"
                + (f" --promote-after {promote_after:g}" if name == "standby-promotion" else "")
                + (" --cluster-dir DIR" if cluster_dir else f" --regions {regions}")
            )
            _write_region_report(report, report_dir, command_line)
        if report.lost:
            raise typer.Exit(1)  # RPO must be 0

    command.__doc__ = DRILL_HELP[name]
    app.command(name)(command)


for _drill in DRILL_HELP:
    _register_region_drill(_drill)
