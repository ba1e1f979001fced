"""``breakwater loadtest``: simulated devices against real nodes; a JSON report and a plot, or
with ``--find-max`` the highest rate that keeps p99 under a bound. ``--device wire`` runs
thousands of protocol-level devices over worker processes instead of SDK clients in one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from breakwater.cli import long_run
from breakwater.cli.output import report_console

if TYPE_CHECKING:
    from breakwater.bench.population import Target
    from breakwater.chaos.loadtest import LoadSpec
    from breakwater.chaos.maxrate import SearchSpec, Step
    from breakwater.chaos.population import PopulationSpec, StepPlan


def loadtest(
    devices: Annotated[
        int, typer.Option(min=1, max=50_000, help="Simulated devices (SDK: at most 5,000).")
    ] = 50,
    device: Annotated[
        str,
        typer.Option(
            help="sdk: full SDK clients in this process (realism); wire: protocol-level devices "
            "(a subscription, heartbeats, one-mutation pushes) over --workers processes, "
            "always with the --find-max search (scale)."
        ),
    ] = "sdk",
    workers: Annotated[int, typer.Option(min=1, max=64, help="wire: worker processes.")] = 4,
    writer_share: Annotated[
        float, typer.Option(min=0.0001, max=1, help="wire: the share of devices that write.")
    ] = 0.1,
    connect_rate: Annotated[
        float,
        typer.Option(
            min=1,
            help="wire: devices connecting per second (staggered; the node admits 200/s).",
        ),
    ] = 150.0,
    heartbeat_s: Annotated[
        float, typer.Option(min=0.1, help="wire: seconds between a device's pings.")
    ] = 15.0,
    step_samples: Annotated[
        int, typer.Option(min=100, help="wire: writes a step measures at least (p99 rests on 1%).")
    ] = 2000,
    step_min_s: Annotated[float, typer.Option(min=1, help="wire: shortest step.")] = 10.0,
    step_max_s: Annotated[float, typer.Option(min=1, help="wire: longest step.")] = 120.0,
    step_warmup_s: Annotated[
        float, typer.Option(min=0, help="wire: seconds of each step left out of its figures.")
    ] = 3.0,
    pool: Annotated[
        int, typer.Option(min=1, max=2000, help="wire: push connections per worker, at most.")
    ] = 256,
    node_port: Annotated[
        int | None, typer.Option(help="wire: load this running node (default: start one).")
    ] = None,
    node_pid: Annotated[
        int | None, typer.Option(help="wire: the PID of --node-port's node, for its CPU.")
    ] = None,
    nodes: Annotated[int, typer.Option(min=1, max=8, help="Nodes sharing one store.")] = 1,
    duration: Annotated[
        float, typer.Option(min=2, max=3600, help="Seconds of load (of each step with --find-max).")
    ] = 30.0,
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
    store: Annotated[
        str,
        typer.Option(
            help="sqlite: one file the nodes share; postgresql: a private PostgreSQL started "
            "for the run (and each step)."
        ),
    ] = "sqlite",
    find_max: Annotated[
        bool,
        typer.Option(
            "--find-max",
            help="Search for the highest write rate with p99 write→ack under --p99-bound-ms "
            "(doubling, then bisection; --interval is then chosen per step).",
        ),
    ] = False,
    p99_bound_ms: Annotated[
        float, typer.Option(min=1, help="--find-max: the p99 latency bound.")
    ] = 100.0,
    start_rate: Annotated[
        float, typer.Option(min=1, help="--find-max: the first rate tried (mutations/s).")
    ] = 25.0,
    max_steps: Annotated[int, typer.Option(min=1, max=30, help="--find-max: at most.")] = 12,
    max_seconds: Annotated[
        float, typer.Option(min=10, help="--find-max: no step starts that would end later.")
    ] = 900.0,
    warmup: Annotated[
        float | None,
        typer.Option(min=0, help="Seconds left out of the figures (default 2, or duration/5)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds the devices' choices.")] = 1,
    out: Annotated[
        Path, typer.Option(help="Directory for report.json, plot.html and the history.")
    ] = Path("loadtest-run"),
) -> None:
    """Run DEVICES SDK clients writing for DURATION seconds; figures per second and overall."""
    from breakwater.chaos.loadtest import LoadSpec, run_load
    from breakwater.chaos.maxrate import SearchSpec
    from breakwater.core.errors import ValidationError

    for option, value, known in (
        ("--workload", workload, ("scoped", "shared")),
        ("--store", store, ("sqlite", "postgresql")),
    ):
        if value not in known:
            raise ValidationError(f"{option} {value!r} is not one of {list(known)}")
    if device not in ("sdk", "wire"):
        raise ValidationError(f"--device {device!r} is not one of ['sdk', 'wire']")
    if (node_port is None) != (node_pid is None):
        raise ValidationError("--node-port and --node-pid go together")
    if device == "sdk" and devices > 5000:
        raise ValidationError(f"--devices {devices} SDK devices: at most 5,000 (or --device wire)")
    if warmup is not None and warmup >= duration:
        raise ValidationError(f"--warmup {warmup:g} must be shorter than --duration {duration:g}")
    long_run.stop_cleanly_on_signals()
    spec = LoadSpec(
        nodes=nodes,
        devices=devices,
        duration=duration,
        interval=interval,
        seed=seed,
        workload="scoped" if workload == "scoped" else "shared",
        store="sqlite" if store == "sqlite" else "postgresql",
        warmup_s=warmup,
    )
    console = report_console()
    title = f"{devices} {workload} devices, {nodes} node(s) on {store}"
    if device == "wire":
        from breakwater.bench.population import Target
        from breakwater.chaos.population import PopulationSpec, StepPlan

        population = PopulationSpec(
            devices=devices,
            workers=workers,
            writer_share=writer_share,
            connect_rate=connect_rate,
            heartbeat_s=heartbeat_s,
            seed=seed,
        )
        plan = StepPlan(
            samples=step_samples, min_s=step_min_s, max_s=step_max_s, warmup_s=step_warmup_s
        )
        if plan.warmup_s >= plan.min_s:
            raise ValidationError("--step-warmup-s must be shorter than --step-min-s")
        search = SearchSpec(
            bound_ms=p99_bound_ms, start=start_rate, max_steps=max_steps, max_seconds=max_seconds
        )
        _wire(console, population, plan, search, Target(node_port, node_pid, pool), out)
        return
    if find_max:
        search = SearchSpec(
            bound_ms=p99_bound_ms,
            start=start_rate,
            max_steps=max_steps,
            max_seconds=max_seconds,
        )
        _find_max(console, spec, search, out, title)
        return
    with long_run.progress() as step:
        report = asyncio.run(run_load(spec, out, step))
    figures = report["summary"]
    table = Table(title=f"breakwater loadtest: {title}, {duration:g} s")
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


def _find_max(console: Console, spec: LoadSpec, search: SearchSpec, out: Path, title: str) -> None:
    """Run the search with a progress bar of steps and a line per step; print the result."""
    from breakwater.chaos.loadtest import run_find_max

    columns = (
        TextColumn("[bold]find-max"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("starting", total=search.max_steps)

        def on_step(step: Step) -> None:
            progress.advance(task)
            progress.console.print(_step_line(step.result.__dict__, step.passed))

        report = asyncio.run(
            run_find_max(
                spec, search, out, lambda text: progress.update(task, description=text), on_step
            )
        )
    result = report["find_max"]
    table = Table(title=f"breakwater loadtest --find-max: {title}, {spec.duration:g} s a step")
    for column in ("max mutations/s", "offered/s", "p99 ms", "devices", "steps", "stopped"):
        table.add_column(column, justify="right")
    found = result["max_mutations_per_s"] is not None
    table.add_row(
        f"{result['max_mutations_per_s']:,}" if found else f"none under {search.bound_ms:g} ms",
        f"{result['offered_per_s']:g}" if found else "",
        f"{result['p99_ms']:.1f}" if found else "",
        str(result["devices"] or ""),
        str(len(result["steps"])),
        result["stopped"],
    )
    console.print(table)
    console.print(f"report: {out / 'report.json'}, each step under {out / 'steps'}/")


def _wire(
    console: Console,
    population: PopulationSpec,
    plan: StepPlan,
    search: SearchSpec,
    target: Target,
    out: Path,
) -> None:
    """Connect the population with a progress bar of devices, search with one of steps, and
    print the result with the node's and the generator's CPU beside every step."""
    from breakwater.bench.population import Progress as Callbacks
    from breakwater.bench.population import run_population

    columns = (
        TextColumn("[bold]{task.fields[what]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=console) as progress:
        devices = progress.add_task("", total=population.devices, what="subscribed")
        steps = progress.add_task("waiting", total=search.max_steps, what="find-max")

        def connecting(connected: int, subscribed: int) -> None:
            progress.update(devices, completed=subscribed, description=f"{connected:,} connected")

        def stepped(step: Step) -> None:
            progress.advance(steps)
            line = _step_line(step.result.__dict__, step.passed)
            bound = step.result.generator_bound
            progress.console.print(
                line + (f" [yellow]generator-bound: {bound}[/]" if bound else "")
            )

        callbacks = Callbacks(
            connecting, lambda text: progress.update(steps, description=text), stepped
        )
        report = asyncio.run(
            run_population(population, search, plan, out, target, progress=callbacks)
        )
    result = report["find_max"]
    title = f"{population.devices:,} wire devices over {population.workers} workers"
    table = Table(title=f"breakwater loadtest --device wire: {title}, p99 < {search.bound_ms:g} ms")
    for column in ("offered/s", "acked/s", "p50 ms", "p99 ms", "samples", "unacked",
                   "node CPU", "generator CPU", "verdict"):  # fmt: skip
        table.add_column(column, justify="right")
    for step, detail in zip(result["steps"], report["steps"], strict=True):
        verdict = "pass" if step["passed"] else "fail"
        table.add_row(
            f"{step['offered']:g}",
            f"{step['achieved']:g}",
            f"{detail['p50_ms']:.1f}",
            f"{step['p99_ms']:.1f}",
            f"{detail['samples']:,}",
            str(step["errors"]),
            f"{detail['node_cpu']:.0%}",
            f"{detail['generator_cpu']:.0%}",
            verdict + (" (generator-bound)" if detail["generator_bound"] else ""),
        )
    console.print(table)
    found = result["max_mutations_per_s"]
    limited = (
        " (limited by the generator: a lower bound)" if result["limited_by"] == "generator" else ""
    )
    console.print(
        f"max mutations/s with p99 < {search.bound_ms:g} ms: "
        + (f"{found:,}{limited}" if found is not None else "none")
        + f"; stopped: {result['stopped']}"
    )
    console.print(f"report: {out / 'report.json'}, plot: {out / 'search.svg'}")


def _step_line(step: dict[str, Any], passed: bool) -> str:
    verdict = "[green]pass[/]" if passed else "[red]fail[/]"
    return (
        f"{step['offered']:g}/s offered: {step['achieved']:g}/s acked, p99 "
        f"{step['p99_ms']:.1f} ms, {step['errors']} unacked: {verdict}"
    )
