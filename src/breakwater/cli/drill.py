"""``breakwater drill``: named disasters, measured; one subcommand per drill.

``standby-promotion`` is the first (docs/deploy.md, "Failover to a standby"); the routing issue
adds node, store and region loss beside it.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from breakwater.cli import long_run
from breakwater.cli.output import report_console

if TYPE_CHECKING:
    from breakwater.chaos.promotion_drill import DrillResult

app = typer.Typer(help="Run a named disaster against private engines and measure the recovery.")


@app.command("standby-promotion")
def standby_promotion(
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
    with long_run.progress("standby-promotion: starting") as step:
        for index in range(runs):
            for mode in modes:  # interleaved, so both modes meet the same machine load
                step(f"standby-promotion: drill {index + 1}/{runs}, {mode} standby")
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

    table = Table(title="breakwater drill standby-promotion")
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
