"""``breakwater verify``: run scenarios against real nodes and print one table of verdicts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

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
    console = Console()
    results: list[RunResult] = []
    for scenario in loaded:
        with console.status(f"{scenario.name}: starting") as status:

            def progress(text: str, name: str = scenario.name) -> None:
                status.update(f"{name}: {text}")

            result = asyncio.run(run_scenario(scenario, out / scenario.name, progress))
        results.append(result)
        if not result.verdict.passed:
            console.print(result.verdict.render(), markup=False, highlight=False)
    console.print(_table(results))
    if not all(result.verdict.passed for result in results):
        raise typer.Exit(1)


def _table(results: list[RunResult]) -> Table:
    table = Table(title="breakwater verify")
    for column in ("scenario", "check", "verdict", "checked", "anomalies"):
        table.add_column(column, justify="right" if column in ("checked", "anomalies") else "left")
    for result in results:
        for check in result.verdict.results:
            table.add_row(
                result.scenario.name,
                check.description,
                "[green]pass[/]" if check.passed else "[red]FAIL[/]",
                str(check.checked),
                str(len(check.anomalies)),
            )
        stats = result.stats
        table.add_row(
            result.scenario.name,
            f"ops {stats['operations']}, acked {stats['mutations_acknowledged']}, "
            f"pushes {stats['pushes']}, faults {stats['faults']}, "
            f"converged {stats['converged_after_s']}s after heal",
            "",
            "",
            "",
            end_section=True,
        )
    return table
