"""``breakwater verify``: run scenarios against real nodes and print one table of verdicts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from breakwater.cli import long_run
from breakwater.cli.output import report_console

if TYPE_CHECKING:
    from breakwater.chaos.runner import RunResult

DEFAULT_DIR = Path("scenarios")


def verify(
    scenarios: Annotated[
        list[Path] | None,
        typer.Argument(help="Scenario files (default: every scenarios/*.yaml here)."),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Directory for each run's history, report and node logs.")
    ] = Path("verify-runs"),
) -> None:
    """Run each scenario in turn (nodes, proxies, devices, faults) and check its history."""
    from breakwater.chaos.runner import run_scenario
    from breakwater.chaos.scenario import ScenarioError, load_scenario

    paths = scenarios or sorted(DEFAULT_DIR.glob("*.yaml"))
    if not paths:
        raise ScenarioError(f"no scenario given and none in {DEFAULT_DIR}/")
    loaded = [load_scenario(path) for path in paths]  # all validated before anything runs
    long_run.stop_cleanly_on_signals()
    console = report_console()
    results: list[RunResult] = []
    for scenario in loaded:
        with long_run.progress(f"{scenario.name}: starting") as step:

            def progress(text: str, name: str = scenario.name) -> None:
                step(f"{name}: {text}")

            result = asyncio.run(run_scenario(scenario, out / scenario.name, progress))
        results.append(result)
        if not result.verdict.passed:
            console.print(result.verdict.render(), markup=False, highlight=False)
    console.print(_table(results))
    for result in results:
        console.print(_figures(result), markup=False, highlight=False)
    if not all(result.verdict.passed for result in results):
        raise typer.Exit(1)


CHECK_TITLES = {
    "no_lost_writes": "(a) no acknowledged write lost",
    "exactly_once": "(b) exactly-once effects",
    "convergence": "(c) convergence",
    "read_your_writes": "(d) read-your-writes",
    "gap_free_feed": "(e) gap-free feeds",
    "device_cursors": "(f) gap-free device cursors",
}


def converged(result: RunResult) -> str:
    """Seconds from the final heal until every node and device agreed, or ``never``."""
    seconds = result.stats["converged_after_s"]
    return "never" if seconds is None else f"{seconds:.1f} s"


def _table(results: list[RunResult]) -> Table:
    """One row per scenario and check: its verdict, what it checked, what it found; with each
    scenario, the time its replicas took to agree after the final heal."""
    table = Table(title="breakwater verify")
    table.add_column("scenario", no_wrap=True)
    table.add_column("agreed", justify="right", no_wrap=True)
    table.add_column("check")
    table.add_column("verdict", no_wrap=True)
    table.add_column("checked", justify="right", no_wrap=True)
    table.add_column("found", justify="right", no_wrap=True)
    for result in results:
        for index, check in enumerate(result.verdict.results):
            table.add_row(
                result.scenario.name if index == 0 else "",
                converged(result) if index == 0 else "",
                CHECK_TITLES.get(check.name, check.name),
                "[green]pass[/]" if check.passed else "[red]FAIL[/]",
                str(check.checked),
                str(len(check.anomalies)),
                end_section=index == len(result.verdict.results) - 1,
            )
    return table


def _figures(result: RunResult) -> str:
    stats = result.stats
    pushes = stats["pushes"]
    return (
        f"{result.scenario.name}: {stats['operations']} operations, "
        f"{stats['mutations_acknowledged']} mutations acknowledged, pushes ok/failed/unknown "
        f"{pushes['ok']}/{pushes['failed']}/{pushes['unknown']}, {stats['faults']} faults, "
        f"replicas agreed after the heal: {converged(result)}; {result.out}"
    )
