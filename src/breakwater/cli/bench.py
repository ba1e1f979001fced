"""``breakwater bench``: benchmarks that report ratios against a physical limit in the same run."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from breakwater.cli import long_run
from breakwater.cli.output import report_console
from breakwater.core import codec

app = typer.Typer(
    help="Benchmarks: a table on stdout and, with --json, a JSON report.", no_args_is_help=True
)


@app.callback()
def _benchmarks() -> None:
    # Benchmarks start nodes and load processes: a SIGTERM must stop them too.
    long_run.stop_cleanly_on_signals()


def _node_settings(pairs: list[str] | None) -> dict[str, str]:
    """``--set key=value`` options as the node's ``BREAKWATER_*`` variables; a key that is no
    setting (docs/configuration.md) is refused before anything starts."""
    import dataclasses

    from breakwater.config import Config
    from breakwater.core.errors import ValidationError

    known = {f.name for f in dataclasses.fields(Config)}
    settings = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or key not in known:
            raise ValidationError(
                f"--set {pair!r}: expected key=value with a setting of docs/configuration.md"
            )
        settings[f"BREAKWATER_{key.upper()}"] = value
    return settings


def _write_json(report: dict[str, Any], path: Path | None) -> None:
    if path is not None:
        path.write_bytes(codec.dumps(report) + b"\n")


@app.command("push")
def push(
    runs: Annotated[int, typer.Option(min=1, max=20, help="Runs; medians are reported.")] = 3,
    seconds: Annotated[
        float, typer.Option(min=0.5, max=120, help="Seconds per scenario and run.")
    ] = 5.0,
    log_level: Annotated[str, typer.Option(help="The node's log level.")] = "info",
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="The node's worker processes (serve --workers).")
    ] = 1,
    store: Annotated[
        str | None,
        typer.Option(
            help="A postgresql:// URL: bench 1 and 2 nodes on it (fresh schemas, dropped after)"
            " against raw asyncpg; default: the embedded SQLite store against raw sqlite3."
        ),
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
    tracing: Annotated[
        bool,
        typer.Option(
            "--tracing",
            help="Compare tracing off, on, and on at 1% (exported to an OTLP sink) in one run.",
        ),
    ] = False,
    baseline_src: Annotated[
        Path | None,
        typer.Option(
            help="With --tracing: also serve the node from this src/ folder (e.g. main's)."
        ),
    ] = None,
) -> None:
    """Durable push throughput and latency of 1 KB documents against raw inserts."""
    if tracing:
        _push_tracing(runs, seconds, log_level, baseline_src, json_path)
        return
    if store is not None:
        _push_postgres(store, runs, seconds, log_level, workers, json_path)
        return
    from breakwater.bench import push as bench_push

    console = report_console()
    with long_run.progress() as step:
        report = asyncio.run(bench_push.run(runs, seconds, log_level, step, workers))
    table = Table(
        title=f"breakwater bench push, {workers} worker(s) (medians of {runs} runs,"
        f" {seconds:g} s each)"
    )
    for column in ("scenario", "docs/s", "p50 ms", "p99 ms", "raw sqlite rows/s", "ratio"):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for row in report["results"]:
        table.add_row(
            row["scenario"],
            f"{row['docs_per_s']:,}",
            f"{row['p50_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            f"{row['raw_sqlite_rows_per_s']:,}",
            f"{row['ratio_to_raw']:.2f}",
        )
    console.print(table)
    console.print(
        f"store only (engine + writer, no HTTP), batch 100: "
        f"{report['store_only_batch_100_docs_per_s']:,} docs/s"
    )
    _print_store_rows(console, report["store_rows_batch_100"])
    console.print(f"machine: {report['machine']}")
    _write_json(report, json_path)


def _push_tracing(
    runs: int, seconds: float, log_level: str, baseline_src: Path | None, json_path: Path | None
) -> None:
    """What tracing costs a push: off, on and on at 1%, and a baseline tree, in one run."""
    from breakwater.bench import push_tracing

    console = report_console()
    with long_run.progress() as step:
        report = asyncio.run(push_tracing.run(runs, seconds, log_level, step, baseline_src))
    table = Table(
        title=f"breakwater bench push --tracing (medians of {runs} runs, {seconds:g} s each)"
    )
    columns = ("scenario", "variant", "docs/s", "p50 ms", "p99 ms", "CPU µs/doc", "rate", "CPU")
    for column in columns:
        table.add_column(column, justify="left" if column in columns[:2] else "right")
    for row in report["results"]:
        table.add_row(
            row["scenario"],
            row["variant"],
            f"{row['docs_per_s']:,}",
            f"{row['p50_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            f"{row['cpu_us_per_doc']:.1f}",
            f"{row['rate_vs_off']:.3f}",
            f"{row['cpu_vs_off']:.3f}",
        )
    console.print(table)
    console.print("rate and CPU: ratios to tracing off in the same run")
    console.print(f"OTLP exports received: {report['otlp_exports']:,} ({report['otlp_bytes']:,} B)")
    console.print(f"machine: {report['machine']}")
    _write_json(report, json_path)


def _instructions_per_request(baseline_src: Path | None, json_path: Path | None, body: str) -> None:
    """Instructions per push through the whole node: tracing off, on, and a baseline tree
    (the peers' 1 KB body: tracing off only)."""
    from breakwater.bench import instructions_request

    console = report_console()
    with long_run.progress("counting instructions under callgrind (a few minutes)"):
        try:
            if body == "peers":
                report = instructions_request.run(baseline_src, ("off",), "peers")
            else:
                report = instructions_request.run(baseline_src)
        except RuntimeError as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(1) from error
    off = report["tracing_off"]
    for name in ("baseline", "tracing_off", "tracing_on", "tracing_dropped", "rest_put"):
        if name in report:
            console.print(
                f"{name.replace('_', ' ')}: {report[name]:,} instructions per write"
                f" ({report[name] / off:.3f} of tracing off)"
            )
    if "baseline_put" in report:
        console.print(
            f"baseline rest put: {report['baseline_put']:,} instructions"
            f" ({report['baseline_put'] / report['baseline']:.3f} of the baseline's push)"
        )
    _write_json(report, json_path)


def _print_store_rows(console: Console, rows: dict[str, Any]) -> None:
    """The floor of the data model, and what the target leaves the node per document."""
    us = rows["per_document"]
    console.print(
        f"the store's rows alone (its SQL on precomputed values), batch 100: "
        f"{rows['docs_per_s']:,} docs/s, {rows['ratio_to_raw']:.2f} of raw"
    )
    console.print(
        f"per document, batch 100 on 1 connection: raw {us['raw_us']:.1f} µs, the store's rows"
        f" {us['store_rows_us']:.1f} µs, the node {us['node_us']:.1f} µs; {us['target']:.2f} of"
        f" raw leaves {us['left_at_target_us']:.1f} µs beyond the rows, the node takes"
        f" {us['node_beyond_rows_us']:.1f} µs"
    )


def _push_postgres(
    url: str, runs: int, seconds: float, log_level: str, workers: int, json_path: Path | None
) -> None:
    from urllib.parse import urlsplit

    from breakwater.bench import push_postgres
    from breakwater.config import ConfigError

    if urlsplit(url).scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"--store must be a postgresql:// URL, not {url.split(':', 1)[0]!r}")
    console = report_console()
    with long_run.progress() as step:
        report = asyncio.run(push_postgres.run(url, runs, seconds, log_level, step, workers))
    table = Table(
        title=f"breakwater bench push on {report['store']} (medians of {runs} runs,"
        f" {seconds:g} s each)"
    )
    columns = ("scenario", "nodes", "docs/s", "p50 ms", "p99 ms", "raw asyncpg rows/s", "ratio")
    for column in columns:
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for row in report["results"]:
        table.add_row(
            row["scenario"],
            str(row["nodes"]),
            f"{row['docs_per_s']:,}",
            f"{row['p50_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            f"{row['raw_asyncpg_rows_per_s']:,}",
            f"{row['ratio_to_raw']:.2f}",
        )
    console.print(table)
    for row in report["store_only"]:
        console.print(
            f"store only (engine + writer, no HTTP), {row['scenario']}: "
            f"{row['docs_per_s']:,} docs/s, {row['ratio_to_raw']:.2f} of raw"
        )
    _print_store_rows(console, report["store_rows_batch_100"])
    console.print(f"machine: {report['machine']}")
    _write_json(report, json_path)


@app.command("counters")
def counters(
    runs: Annotated[int, typer.Option(min=1, max=20, help="Runs; medians are reported.")] = 3,
    samples: Annotated[
        int, typer.Option(min=1, max=1000, help="Timed batches of 100 per checkpoint and run.")
    ] = 50,
    largest: Annotated[
        int, typer.Option(min=100, help="Earlier increments at the last checkpoint.")
    ] = 100_000,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Cost per increment of one field after 1, 10,000 and 100,000 earlier increments."""
    from breakwater.bench import counters as bench_counters

    console = report_console()
    with console.status("starting") as status:
        report = asyncio.run(
            bench_counters.run(runs, samples, largest, lambda text: status.update(text))
        )
    table = Table(
        title=f"breakwater bench counters (engine + SQLite store, batches of {report['batch']},"
        f" medians of {runs} runs)"
    )
    for column in ("earlier increments", "µs/increment", "p99 µs/increment", "state bytes"):
        table.add_column(column, justify="right")
    for row in report["results"]:
        table.add_row(
            f"{row['earlier_increments']:,}",
            f"{row['us_per_increment']:.1f}",
            f"{row['p99_us_per_increment']:.1f}",
            f"{row['state_bytes']:,}",
        )
    console.print(table)
    console.print(
        f"last / first: {report['last_over_first']:.2f} (target ≤"
        f" {report['target_last_over_first']})"
    )
    console.print(f"machine: {report['machine']}")
    _write_json(report, json_path)


@app.command("replication")
def replication(
    runs: Annotated[int, typer.Option(min=1, max=20, help="Runs; medians are reported.")] = 3,
    changes: Annotated[int, typer.Option(min=100, help="Backlog size per run.")] = 5000,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
    cluster: Annotated[
        bool, typer.Option("--cluster", help="Lag, partition healing and bytes on 3 regions.")
    ] = False,
    rate: Annotated[float, typer.Option(min=1, help="--cluster: writes/s over the regions.")] = 500,
    seconds: Annotated[float, typer.Option(min=1, help="--cluster: seconds of writes.")] = 20,
    partition_seconds: Annotated[
        float, typer.Option(min=1, help="--cluster: seconds every link stays cut.")
    ] = 60,
    latency_ms: Annotated[
        float, typer.Option(min=0, help="--cluster: ms added each way per cross-region link.")
    ] = 40,
    backlog: Annotated[
        int, typer.Option(min=0, help="--cluster: backlog a region catches up on (0: none).")
    ] = 100_000,
    writers: Annotated[
        int, typer.Option(min=1, max=8, help="--cluster: load generator processes.")
    ] = 1,
) -> None:
    """Catch-up rate on a peer's backlog vs the region's own batched push rate; wire bytes.
    With ``--cluster``: lag, convergence after a partition and bytes per change on
    ``breakwater cluster`` regions behind latency proxies."""
    console = report_console()
    if cluster:
        from breakwater.bench import replication_cluster

        with console.status("starting") as status:
            result = asyncio.run(
                replication_cluster.run(
                    rate,
                    seconds,
                    partition_seconds,
                    latency_ms,
                    lambda t: status.update(t),
                    backlog=backlog,
                    writers=writers,
                )
            )
        for key, value in result.items():
            console.print(f"{key}: {value}")
        _write_json(result, json_path)
        return
    from breakwater.bench import replication as bench_replication

    with console.status("starting") as status:
        report = asyncio.run(bench_replication.run(runs, changes, lambda text: status.update(text)))
    table = Table(
        title=f"breakwater bench replication (2 regions in-process, SQLite, {changes:,} changes,"
        f" medians of {runs} runs)"
    )
    columns = (
        "push/s (a)",
        "replicated/s (b)",
        "ratio",
        "transfer new/s (b)",
        "ratio",
        "AE round ms",
        "JSON B/change",
        "wire B/change",
    )
    for column in columns:
        table.add_column(column, justify="right")
    table.add_row(
        f"{report['push_per_second']:,.0f}",
        f"{report['replicate_per_second']:,.0f}",
        f"{report['replicate_over_push']:.2f}",
        f"{report['transfer_new_per_second']:,.0f}",
        f"{report['transfer_over_push']:.2f}",
        f"{report['anti_entropy_round_ms']:.0f}",
        f"{report['json_bytes_per_change']:.0f}",
        f"{report['wire_bytes_per_change']:.0f}",
    )
    console.print(table)
    console.print(f"target ratio ≥ {report['target_replicate_over_push']}")
    console.print(f"machine: {report['machine']}")
    _write_json(report, json_path)


@app.command("instructions")
def instructions(
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
    requests: Annotated[
        bool,
        typer.Option(
            "--requests",
            help="Per single-mutation push through the whole node in one process, tracing"
            " off and on, and per REST PUT (a few minutes).",
        ),
    ] = False,
    baseline_src: Annotated[
        Path | None,
        typer.Option(help="With --requests: also count a node served from this src/ folder."),
    ] = None,
    body: Annotated[
        str,
        typer.Option(
            help="With --requests: small (a one-field document) or peers (the peers' harness's"
            " 1 KB document as Python's json.dumps writes it; tracing off only)."
        ),
    ] = "small",
) -> None:
    """CPU instructions per pushed document (callgrind): the push path's cost, free of noise."""
    if body not in ("small", "peers"):
        raise typer.BadParameter("choose small or peers", param_hint="--body")
    if requests:
        _instructions_per_request(baseline_src, json_path, body)
        return
    from breakwater.bench import instructions as bench_instructions

    console = report_console()
    with long_run.progress("counting instructions under callgrind (about a minute)"):
        try:
            report = bench_instructions.run()
        except RuntimeError as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(1) from error
    console.print(
        f"push path (parse, merge, SQLite group commit, answer, feed read):"
        f" {report['instructions_per_doc']:,} instructions per 1 KB document"
    )
    _write_json(report, json_path)


@app.command("query")
def query(
    documents: Annotated[int, typer.Option(min=1000, help="Documents per collection.")] = 100_000,
    queries: Annotated[int, typer.Option(min=10, help="Queries on the indexed collection.")] = 500,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Range-query latency on an indexed and an unindexed collection, against raw SQLite."""
    from breakwater.bench import query as bench_query

    console = report_console()
    with long_run.progress() as step:
        report = asyncio.run(bench_query.run(documents, queries, step))
    table = Table(title=f"breakwater bench query ({documents:,} documents, {report['query']})")
    for column in ("case", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for case in ("indexed", "unindexed", "raw_sqlite_indexed"):
        table.add_row(case, f"{report[case]['p50_ms']:.3f}", f"{report[case]['p99_ms']:.3f}")
    console.print(table)
    console.print(f"indexed / raw sqlite: {report['indexed_over_raw']}x")
    _write_json(report, json_path)


@app.command("floor")
def floor(
    runs: Annotated[int, typer.Option(min=1, max=20, help="Rounds; medians are reported.")] = 3,
    seconds: Annotated[
        float, typer.Option(min=0.5, max=60, help="Seconds of load per server and round.")
    ] = 4.0,
    body: Annotated[
        str,
        typer.Option(
            help="The push sent: small (about 250 B, compact) or peers (the peers' harness's"
            " 1 KB document, as Python's json.dumps writes it)."
        ),
    ] = "small",
    server: Annotated[
        list[str] | None,
        typer.Option(
            help="Measure only this rung (repeatable): asgi, node_http, protocol, commit,"
            " group_commit or node."
        ),
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Server CPU per JSON write at concurrency 16: bare servers, a durable SQLite commit,
    and the node's one-mutation push, in one run (the floor under issue 22's target)."""
    from breakwater.bench import http_floor

    console = report_console()
    if body not in http_floor.BODIES:
        raise typer.BadParameter(
            f"choose one of {', '.join(http_floor.BODIES)}", param_hint="--body"
        )
    unknown = sorted(set(server or ()) - set(http_floor.KINDS))
    if unknown:
        raise typer.BadParameter(f"unknown rung {unknown[0]!r}", param_hint="--server")
    kinds = tuple(k for k in http_floor.KINDS if k in server) if server else http_floor.KINDS
    sent: http_floor.Body = "peers" if body == "peers" else "small"
    with long_run.progress() as step:
        report = asyncio.run(http_floor.run(runs, seconds, kinds, progress=step, sent=sent))
    table = Table(
        title=f"breakwater bench floor (concurrency {report['concurrency']}, {body} body,"
        f" medians of {runs} rounds, {seconds:g} s each)"
    )
    for column in ("server", "requests/s", "server CPU µs/request", "load generator µs/request"):
        table.add_column(column, justify="left" if column == "server" else "right")
    for row in report["results"]:
        table.add_row(
            row["kind"],
            f"{row['requests_per_s']:,}",
            f"{row['server_cpu_us']:.1f}",
            f"{row['client_cpu_us']:.1f}",
        )
    console.print(table)
    console.print(f"load average {report['load_average']:.2f}; machine: {report['machine']}")
    _write_json(report, json_path)


@app.command("disk")
def disk(
    documents: Annotated[int, typer.Option(min=100, help="Documents to store.")] = 5_000,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Bytes on disk per realistic 1 KB document after a checkpoint, against its raw JSON."""
    from breakwater.bench import disk as bench_disk

    console = report_console()
    with long_run.progress(f"storing {documents:,} documents"):
        report = bench_disk.run(documents)
    table = Table(title=f"breakwater bench disk ({documents:,} documents, SQLite)")
    for column in ("part", "bytes per document", "of which rows"):
        table.add_column(column, justify="left" if column == "part" else "right")
    for name, sizes in report["parts_bytes_per_doc"].items():
        table.add_row(name, f"{sizes['bytes']:,.0f}", f"{sizes['used']:,.0f}")
    console.print(table)
    raw = report["raw_json_bytes_per_doc"]
    console.print(
        f"raw JSON {raw:,.0f} B per document; the store {report['store_bytes_per_doc']:,.0f} B"
        f" ({report['store_over_raw']:.3f} of raw); one-table SQLite"
        f" {report['one_table_bytes_per_doc']:,.0f} B ({report['one_table_over_raw']:.3f});"
        f" zlib of the JSON {report['zlib_json_bytes_per_doc']:,.0f} B; stored bodies"
        f" {report['stored_body_bytes_per_doc']:,.0f} B"
    )
    _write_json(report, json_path)


@app.command("startup")
def startup(
    runs: Annotated[int, typer.Option(min=1, max=50, help="Starts; the median is reported.")] = 7,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Seconds from spawning `breakwater serve` to a healthy node, next to a bare `python`."""
    from breakwater.bench import startup as bench_startup

    console = report_console()
    with long_run.progress() as step:
        report = bench_startup.run(runs, step)
    console.print(
        f"to healthy: median {report['seconds_to_healthy_median']} s, "
        f"max {report['seconds_to_healthy_max']} s; bare python: {report['bare_python_median']} s"
    )
    _write_json(report, json_path)


@app.command("realtime")
def realtime(
    subscribers: Annotated[
        list[int] | None,
        typer.Option(
            "--subscribers", "-n", min=1, help="Subscriber counts to run (repeat the option)."
        ),
    ] = None,
    rate: Annotated[float, typer.Option(min=1, help="Writes per second.")] = 200.0,
    seconds: Annotated[float, typer.Option(min=1, max=120, help="Seconds of writes.")] = 10.0,
    runs: Annotated[int, typer.Option(min=1, max=10, help="Runs; medians are reported.")] = 3,
    deflate: Annotated[
        bool, typer.Option(help="Subscribers offer permessage-deflate (the node accepts it).")
    ] = False,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="The node's worker processes (serve --workers).")
    ] = 1,
    bus: Annotated[
        list[str] | None,
        typer.Option(
            "--bus",
            help="Also run across two nodes over this bus (redis://…, nats://…; repeat the"
            " option); the same-node memory bus is always run as the reference.",
        ),
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="A node setting as key=value, e.g. realtime_fanout_share=1 (repeat the option).",
        ),
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Write-to-delivery latency, deliveries/s and memory per idle WebSocket subscriber."""
    from breakwater.bench import realtime as bench_realtime
    from breakwater.bench.descriptors import BenchStopped

    node_settings = _node_settings(settings)

    counts = subscribers or [1, 100, 1000, 5000]
    console = report_console()
    try:
        with long_run.progress() as step:
            report = asyncio.run(
                bench_realtime.run(
                    counts, rate, seconds, runs, deflate, step, workers, bus, node_settings
                )
            )
    except BenchStopped as stopped:
        console.print(f"Error: {stopped}", style="bold red")
        raise typer.Exit(2) from None
    table = Table(
        title=f"breakwater bench realtime ({rate:g} writes/s for {seconds:g} s, {workers}"
        f" worker(s), medians of {runs} runs)"
    )
    columns = (
        "bus",
        "subscribers",
        "p50 ms",
        "p99 ms",
        "max ms",
        "deliveries/s",
        "delivered",
        "changes/msg",
        "KiB/idle conn",
        "notify p99 ≤ ms",
        "node CPU µs/delivery",
        "raw send round ms",
        "p99 ÷ raw round",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for row in report["results"]:
        idle = row["idle_kib_per_connection"]
        table.add_row(
            row["bus"],
            f"{row['subscribers']:,}",
            f"{row['p50_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            f"{row['max_ms']:.2f}",
            f"{row['deliveries_per_s']:,}",
            f"{row['delivered_fraction']:.1%}",
            f"{row['changes_per_message']:.1f}",
            "-" if idle is None else f"{idle:.1f}",
            "-" if row["notify_p99_ms_at_most"] is None else f"{row['notify_p99_ms_at_most']:g}",
            f"{row['node_cpu_us_per_delivery']:.2f}",
            f"{row['raw_send_round_ms']:.2f}",
            f"{row['p99_per_raw_round']:.1f}",
        )
    console.print(table)
    console.print(_realtime_floor_table(report))
    console.print(f"machine: {report['machine']}")
    _write_json(report, json_path)


def _realtime_floor_table(report: dict[str, Any]) -> Table:
    """The node against the fan-out floor (the same writes to the same subscriber process, served
    with no store and no app), with the subscriber process's CPU beside each."""
    table = Table(
        title="the same writes and subscribers, fanned out by a floor server (no store, no app):"
        " what any node could do here"
    )
    columns = (
        "bus",
        "subscribers",
        "floor p50 ms",
        "floor p99 ms",
        "floor changes/msg",
        "floor delivered",
        "floor p99 ÷ raw round",
        "node p99 ÷ raw round",
        "writes/s done (floor / node)",
        "node p99 ÷ floor p99",
        "subscriber CPU (floor / node)",
        "generator-bound",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for row in report["results"]:
        floor = row["floor"]
        bound = "; ".join(
            f"{who} run: {why}"
            for who, why in (("floor", floor["generator_bound"]), ("node", row["generator_bound"]))
            if why
        )
        table.add_row(
            row["bus"],
            f"{row['subscribers']:,}",
            f"{floor['p50_ms']:.2f}",
            f"{floor['p99_ms']:.2f}",
            f"{floor['changes_per_message']:.1f}",
            f"{floor['delivered_fraction']:.1%}",
            f"{floor['p99_per_raw_round']:.1f}",
            f"{row['p99_per_raw_round']:.1f}",
            f"{floor['writes_per_s_achieved']:g} / {row['writes_per_s_achieved']:g}",
            f"{row['node_p99_per_floor_p99']:.1f}",
            f"{floor['subscribers_cpu']:.0%} / {row['subscribers_cpu']:.0%}",
            bound or "no",
        )
    return table


@app.command("auth")
def auth(
    runs: Annotated[int, typer.Option(min=1, max=20, help="Runs; medians are reported.")] = 3,
    logins: Annotated[int, typer.Option(min=2, max=1000, help="Sign-ins per run.")] = 40,
    batches: Annotated[
        int, typer.Option(min=1, max=200, help="Pushes of 100 documents per run and node.")
    ] = 20,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Sign-in rate, token verification cost, and push/pull throughput with and without rules."""
    from breakwater.bench import auth as bench_auth

    console = report_console()
    with long_run.progress() as step:
        report = asyncio.run(bench_auth.run(runs, logins, batches, step))
    table = Table(title=f"breakwater bench auth (medians of {runs} runs)")
    for column in ("measure", "value", "same-run reference", "ratio"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    table.add_row(
        "sign-ins/s (argon2id, 2 threads)",
        f"{report['logins_per_s']:,}",
        f"{report['raw_argon2id_verifies_per_s']:,} bare verifies/s",
        f"{report['login_ratio_to_raw']:.2f}",
    )
    table.add_row(
        "token verification µs, first sight",
        f"{report['token_verify_first_us']:.1f}",
        f"{report['hmac_sha256_us']:.1f} µs bare HMAC",
        f"{report['token_verify_first_us'] / report['hmac_sha256_us']:.1f}x",
    )
    table.add_row(
        "token verification µs, seen before",
        f"{report['token_verify_again_us']:.1f}",
        f"{report['hmac_sha256_us']:.1f} µs bare HMAC",
        f"{report['token_verify_again_us'] / report['hmac_sha256_us']:.1f}x",
    )
    table.add_row(
        "token verification µs, seen before, with the disabled denylist",
        f"{report['token_verify_with_denylist_us']:.2f}",
        f"{report['auth_store_lookup_us']:.1f} µs auth-store lookup",
        f"{report['token_verify_with_denylist_us'] / report['auth_store_lookup_us']:.4f}",
    )
    table.add_row(
        "push docs/s with rules",
        f"{report['push_docs_per_s_with_rules']:,}",
        f"{report['push_docs_per_s_without_rules']:,} without",
        f"{report['push_ratio']:.2f}",
    )
    table.add_row(
        "pull changes/s with rules",
        f"{report['pull_changes_per_s_with_rules']:,}",
        f"{report['pull_changes_per_s_without_rules']:,} without",
        f"{report['pull_ratio']:.2f}",
    )
    console.print(table)
    console.print(f"machine: {report['machine']}")
    _write_json(report, json_path)


@app.command("sdk")
def sdk(
    runs: Annotated[int, typer.Option(min=1, max=20, help="Runs; medians are reported.")] = 3,
    writes: Annotated[
        int, typer.Option(min=10, max=100_000, help="Local writes timed per run.")
    ] = 2000,
    pending: Annotated[
        int, typer.Option(min=10, max=100_000, help="Pending writes to drain per run.")
    ] = 10_000,
    device_writes: Annotated[
        int, typer.Option(min=5, max=1000, help="Settled online writes counted per run.")
    ] = 20,
    device_pause: Annotated[
        float,
        typer.Option(min=0.0, max=5.0, help="Seconds between online writes (and floor runs)."),
    ] = 0.4,
    log_level: Annotated[str, typer.Option(help="The node's log level.")] = "warning",
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Client SDK: durable local write latency, outbox drain rate, reconnect to fully synced,
    and per online write the requests, frames, bytes and device CPU, beside CPython's floor."""
    from breakwater.bench import sdk as bench_sdk

    console = report_console()
    with long_run.progress() as step:
        report = asyncio.run(
            bench_sdk.run(runs, writes, pending, device_writes, log_level, step, device_pause)
        )
    table = Table(title=f"breakwater bench sdk (medians of {runs} runs)")
    for column in ("figure", "SDK", "floor", "ratio"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    table.add_row(
        "local write p50 / p99 ms (durable)",
        f"{report['local_write_p50_ms']:.3f} / {report['local_write_p99_ms']:.3f}",
        f"{report['raw_sqlite_commit_p50_ms']:.3f} / {report['raw_sqlite_commit_p99_ms']:.3f}",
        f"{report['local_write_ratio_to_raw_p50']:.2f}",
    )
    table.add_row(
        f"outbox drain, {pending:,} writes (mutations/s)",
        f"{report['drain_mutations_per_s']:,}",
        f"{report['raw_push_mutations_per_s']:,}",
        f"{report['drain_ratio_to_raw_push']:.2f}",
    )
    table.add_row(
        f"reconnect to fully synced, {pending:,} writes (s)",
        f"{report['reconnect_to_synced_s']:.2f}",
        "",
        "",
    )
    table.add_row(
        "per online write: round trips (HTTP requests / WebSocket frames out / in)",
        f"{report['write_round_trips']:.2f} ({report['write_requests']:.2f} / "
        f"{report['write_frames_out']:.2f} / {report['write_frames_in']:.2f})",
        "1",
        "",
    )
    table.add_row(
        "per online write: bytes on the wire (out + in)",
        f"{report['write_bytes_out']:.0f} + {report['write_bytes_in']:.0f}",
        f"{report['write_mutation_bytes']:.0f}",
        f"{report['write_bytes_ratio_to_mutation']:.2f}",
    )
    table.add_row(
        f"per online write: device CPU ms ({device_pause:g} s apart; target 1)",
        f"{report['write_cpu_ms']:.2f}",
        f"{report['floor_write_ms']:.2f}",
        f"{report['write_cpu_ratio_to_floor']:.2f}",
    )
    floor = {key.removeprefix("floor_"): value for key, value in report.items()}
    table.add_row("  floor: idle loop per pause (ms)", "", f"{floor['idle_ms']:.3f}", "")
    table.add_row("  floor: durable transaction (ms)", "", f"{floor['transaction_ms']:.3f}", "")
    table.add_row(
        "  floor: one exchange, deflate / none (ms)",
        "",
        f"{floor['exchange_ms']:.3f} / {floor['exchange_plain_ms']:.3f}",
        "",
    )
    table.add_row(
        "  floor back to back: exchange / write (ms)",
        "",
        f"{floor['exchange_b2b_ms']:.3f} / {floor['write_b2b_ms']:.3f}",
        "",
    )
    console.print(table)
    console.print(
        "floors: bare SQLite INSERT+COMMIT (WAL, FULL); bare HTTP pushes of 500; "
        "one round trip and the mutation's own encoded bytes per online write; CPU: a durable "
        "transaction, one WebSocket exchange (push out, answer and echo in) and the "
        "acknowledgement's transaction, in CPython with the SDK's libraries and settings"
    )
    console.print(f"machine: {report['machine']}")
    _write_json(report, json_path)


@app.command("webhooks")
def webhooks(
    rate: Annotated[float, typer.Option(min=1, max=5000, help="Writes per second.")] = 500,
    seconds: Annotated[float, typer.Option(min=1, max=120, help="Seconds of writes per run.")] = 10,
    runs: Annotated[int, typer.Option(min=1, max=20, help="Runs; medians are reported.")] = 3,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="A node setting key=value (e.g. webhook_concurrency=16)."),
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Webhook delivery latency p50/p99 at a fixed write rate, against write + POST floor."""
    from breakwater.bench import webhooks as bench_webhooks

    settings = _node_settings(set_)
    with long_run.progress(f"{runs} runs of {seconds:g} s at {rate:g} writes/s"):
        report = asyncio.run(bench_webhooks.run(rate, seconds, runs, settings))
    medians = report["median"]
    table = Table(title=f"breakwater bench webhooks ({rate:g} writes/s, medians of {runs} runs)")
    for column in (
        "achieved/s",
        "delivered",
        "p50 ms",
        "p99 ms",
        "write p50/p99 ms",
        "POST p50 ms",
        "p50 / floor",
    ):
        table.add_column(column, justify="right")
    table.add_row(
        f"{medians['rate']:.0f}",
        f"{medians['delivered']:.1%}",
        f"{medians['p50_ms']:.1f}",
        f"{medians['p99_ms']:.1f}",
        f"{medians['write_p50_ms']:.1f} / {medians['write_p99_ms']:.1f}",
        f"{medians['control_write_p50_ms']:.1f} / {medians['control_write_p99_ms']:.1f}",
        f"{medians['post_p50_ms']:.2f}",
        f"{report['p50_over_floor']:.1f}x",
    )
    report_console().print(table)
    _write_json(report, json_path)


@app.command("gateway")
def gateway(
    requests: Annotated[
        int, typer.Option(min=100, help="Sequential requests per run and kind, each way.")
    ] = 2000,
    runs: Annotated[int, typer.Option(min=1, max=50, help="Runs; medians are reported.")] = 5,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Latency HAProxy (breakwater gateway haproxy) adds in front of one node: p50 and p99 of
    reads and pushes through it, against the same requests sent straight to the node."""
    from breakwater.bench import gateway as bench_gateway

    console = report_console()
    with long_run.progress() as step:
        report = bench_gateway.run(requests, runs, step)
    table = Table(title=f"gateway overhead, median of {runs} runs (ms)")
    for column in ("kind", "direct p50", "gateway p50", "added p50", "direct p99", "added p99"):
        table.add_column(column)
    for kind, row in report["median_of_runs"].items():
        table.add_row(
            kind,
            *(
                str(row[key])
                for key in (
                    "direct_p50_ms",
                    "gateway_p50_ms",
                    "added_p50_ms",
                    "direct_p99_ms",
                    "added_p99_ms",
                )
            ),
        )
    console.print(table)
    _write_json(report, json_path)


@app.command("archive-lag")
def archive_lag(
    runs: Annotated[int, typer.Option(min=1, max=20, help="Runs; medians are reported.")] = 3,
    rate: Annotated[float, typer.Option(min=1, help="Writes per second.")] = 500.0,
    seconds: Annotated[
        float, typer.Option(min=1, max=300, help="Seconds of writes per run.")
    ] = 10.0,
    interval: Annotated[
        float, typer.Option(min=0.01, help="The archiver's read interval when idle.")
    ] = 0.1,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Commit-to-archived lag of ``breakwater archive`` under paced writes (target p99 ≤ 1 s)."""
    from breakwater.bench import backups as bench_backups

    console = report_console()
    with console.status("starting") as status:
        report = asyncio.run(
            bench_backups.archive_lag(runs, rate, seconds, interval, lambda t: status.update(t))
        )
    table = Table(title=f"breakwater bench archive-lag ({rate:.0f} writes/s, medians of {runs})")
    for column in ("writes/s", "lag p50 s", "lag p99 s", "lag max s", "floor s", "p99 / floor"):
        table.add_column(column, justify="right")
    m = report["median"]
    table.add_row(
        f"{m['achieved_writes_per_s']:,.0f}",
        f"{m['lag_p50_s']:.3f}",
        f"{m['lag_p99_s']:.3f}",
        f"{m['lag_max_s']:.3f}",
        f"{m['floor_s']:.3f}",
        f"{m['lag_p99_s'] / m['floor_s']:.1f}",
    )
    console.print(table)
    console.print(f"machine: {report['machine']}")
    _write_json(report, json_path)


@app.command("restore")
def restore(
    docs: Annotated[int, typer.Option(min=1, help="Documents in the store.")] = 1_000_000,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Time to restore ``docs`` documents from a backup, and by replaying the archive."""
    from breakwater.bench import backups as bench_backups

    console = report_console()
    with console.status("starting") as status:
        report = asyncio.run(bench_backups.restore(docs, lambda t: status.update(t)))
    table = Table(title=f"breakwater bench restore ({docs:,} documents, SQLite)")
    for column in ("path", "seconds", "documents/s"):
        table.add_column(column, justify="right")
    table.add_row(
        "backup put back",
        f"{report['from_backup_s']:.1f}",
        f"{report['from_backup_docs_per_s']:,.0f}",
    )
    table.add_row(
        "archive replayed", f"{report['replay_s']:.1f}", f"{report['replay_docs_per_s']:,.0f}"
    )
    table.add_row("copy of the backup (floor)", f"{report['copy_floor_s']:.1f}", "")
    console.print(table)
    console.print(f"backup: {report['backup_bytes']:,} bytes; machine: {report['machine']}")
    _write_json(report, json_path)


@app.command("files")
def files(
    size_mb: Annotated[int, typer.Option(min=1, max=4096, help="File size in MiB.")] = 100,
    runs: Annotated[int, typer.Option(min=1, max=20, help="Runs; medians are reported.")] = 3,
    chunk_mb: Annotated[int, typer.Option(min=1, max=4096, help="MiB per tus PATCH.")] = 32,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="A node setting key=value (e.g. files_store=s3://...)."),
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Upload (tus) and download throughput of one file, against a file copy on the same disk."""
    from breakwater.bench import files as bench_files

    settings = _node_settings(set_)
    with long_run.progress(f"{runs} runs of a {size_mb} MiB file"):
        report = asyncio.run(bench_files.run(size_mb, runs, chunk_mb, settings))
    table = Table(title=f"breakwater bench files ({size_mb} MiB, medians of {runs} runs)")
    for column in ("", "MB/s", "ratio to copy", "ratio to copy + SHA-256", "ratio to receive"):
        table.add_column(column, justify="right")
    table.add_row("file copy + fsync (floor)", f"{report['copy_mb_s']:,}", "1.00", "", "")
    table.add_row("copy + SHA-256 + fsync (floor)", f"{report['copy_hash_mb_s']:,}", "", "1.00", "")
    table.add_row(
        "loopback receive + splice + SHA-256 + fsync (floor)",
        f"{report['receive_mb_s']:,}",
        f"{report['receive_ratio_to_copy']:.2f}",
        "",
        "1.00",
    )
    table.add_row(
        f"tus upload ({chunk_mb} MiB PATCHes)",
        f"{report['upload_mb_s']:,}",
        f"{report['upload_ratio_to_copy']:.2f}",
        f"{report['upload_ratio_to_copy_hash']:.2f}",
        f"{report['upload_ratio_to_receive']:.2f}",
    )
    table.add_row(
        "download",
        f"{report['download_mb_s']:,}",
        f"{report['download_ratio_to_copy']:.2f}",
        "",
        "",
    )
    console = report_console()
    console.print(table)
    console.print(f"machine: {report['machine']}")
    _write_json(report, json_path)
