"""The benchmarks run end to end with tiny parameters (their figures are not judged here)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.services import POSTGRES_URL, require_program, require_service

pytestmark = pytest.mark.slow


def bench(tmp_path: Path, *args: str) -> dict[str, object]:
    """Run `breakwater bench ...` and return its JSON report."""
    out = tmp_path / "report.json"
    subprocess.run(
        [sys.executable, "-m", "breakwater", "bench", *args, "--json", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    report: dict[str, object] = json.loads(out.read_text())
    return report


def test_bench_push_reports_every_scenario(tmp_path: Path) -> None:
    """bench push measures each scenario, the raw SQLite floor and the store alone."""
    report = bench(tmp_path, "push", "--runs", "1", "--seconds", "0.5")
    results = report["results"]
    assert isinstance(results, list) and len(results) == 3
    for row in results:
        assert row["docs_per_s"] > 0 and row["raw_sqlite_rows_per_s"] > 0
        assert row["errors"] == 0
    assert isinstance(report["store_only_batch_100_docs_per_s"], int)
    _check_store_rows(report, 0.40)


def test_bench_push_tracing_compares_off_on_and_a_baseline_tree(tmp_path: Path) -> None:
    """bench push --tracing serves every variant, and the traced ones export over OTLP."""
    src = Path(__file__).resolve().parents[1] / "src"
    report = bench(
        tmp_path, "push", "--tracing", "--runs", "1", "--seconds", "0.5", "--baseline-src", str(src)
    )
    results = report["results"]
    assert isinstance(results, list) and len(results) == 3 * 4
    assert {row["variant"] for row in results} == {
        "tracing off",
        "tracing on, all kept",
        "tracing on, 1% kept",
        "baseline",
    }
    for row in results:
        assert row["docs_per_s"] > 0 and row["cpu_us_per_doc"] > 0 and row["errors"] == 0
    exports = report["otlp_exports"]
    assert isinstance(exports, int) and exports > 0


def _check_store_rows(report: dict[str, object], target: float) -> None:
    """The store's rows were measured, and the per-document figures follow from the rates."""
    rows = report["store_rows_batch_100"]
    assert isinstance(rows, dict) and rows["docs_per_s"] > 0
    figures = rows["per_document"]
    assert figures["target"] == target
    assert figures["store_rows_us"] == pytest.approx(1e6 / rows["docs_per_s"], rel=0.01)


def test_bench_push_on_postgres_reports_one_and_two_nodes(tmp_path: Path) -> None:
    """bench push --store postgresql://… measures 1 and 2 nodes and raw asyncpg, then drops
    its schemas."""
    url = require_service(POSTGRES_URL)
    report = bench(tmp_path, "push", "--runs", "1", "--seconds", "0.5", "--store", url)
    results = report["results"]
    assert isinstance(results, list)
    assert {(row["nodes"], row["scenario"]) for row in results} == {
        (1, "batch 100, 1 connection"),
        (1, "batch 100, 4 connections"),
        (1, "batch 1, 16 connections"),
        (2, "batch 100, 4 connections"),
        (2, "batch 1, 16 connections"),
    }
    for row in results:
        assert row["docs_per_s"] > 0 and row["raw_asyncpg_rows_per_s"] > 0
        assert row["errors"] == 0
    store_only = report["store_only"]
    assert isinstance(store_only, list) and len(store_only) == 3
    assert all(row["docs_per_s"] > 0 for row in store_only)
    _check_store_rows(report, 0.50)
    dropped = report["schemas_dropped"]
    assert isinstance(dropped, list) and len(dropped) == 5  # 1 node, 2 nodes, store, rows, raw
    assert not set(dropped) & set(asyncio.run(_bench_schemas(url)))


async def _bench_schemas(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bw_bench_%'")
    finally:
        await conn.close()
    return [row[0] for row in rows]


def test_bench_query_reports_indexed_and_unindexed(tmp_path: Path) -> None:
    """bench query loads documents and times both collections and raw SQLite."""
    report = bench(tmp_path, "query", "--documents", "2000", "--queries", "20")
    for case in ("indexed", "unindexed", "raw_sqlite_indexed"):
        assert report[case]["p50_ms"] > 0  # type: ignore[index]


def test_bench_disk_reports_bytes_per_document_against_raw_json(tmp_path: Path) -> None:
    """bench disk stores documents through the store and weighs the file after a checkpoint:
    more than the bodies it keeps (compressed, ADR 0050), which are less than the raw JSON."""
    report: Any = bench(tmp_path, "disk", "--documents", "300")
    assert report["documents"] == 300
    raw = report["raw_json_bytes_per_doc"]
    assert report["one_table_bytes_per_doc"] > raw > report["stored_body_bytes_per_doc"]
    assert report["store_bytes_per_doc"] > report["stored_body_bytes_per_doc"]
    assert report["store_over_raw"] == pytest.approx(report["store_bytes_per_doc"] / raw, rel=0.01)
    parts = report["parts_bytes_per_doc"]
    assert {"docs", "changes"} <= set(parts)
    assert sum(part["bytes"] for part in parts.values()) <= report["store_bytes_per_doc"] + 1


def test_bench_disk_documents_are_realistic_not_padding() -> None:
    """About 1 KB each, all different, and compressing like prose (not like repeated filler)."""
    import zlib

    from breakwater.bench.disk import realistic_documents
    from breakwater.core import codec

    bodies = [codec.dumps(doc) for doc in realistic_documents(200)]
    assert len(set(bodies)) == 200
    assert 700 < sum(map(len, bodies)) / 200 <= 1024
    assert all(len(zlib.compress(body)) > len(body) / 3 for body in bodies)


def test_bench_startup_reports_seconds_to_healthy(tmp_path: Path) -> None:
    """bench startup starts a node and times it."""
    report = bench(tmp_path, "startup", "--runs", "1")
    assert 0 < report["seconds_to_healthy_median"] < 30  # type: ignore[operator]


def test_bench_realtime_runs_across_two_nodes_over_a_broker(tmp_path: Path) -> None:
    """bench realtime --bus measures the same-node memory bus and the two-node broker bus."""
    from tests.services import REDIS_URL, require_service

    bus = require_service(REDIS_URL)
    report = bench(
        tmp_path,
        "realtime",
        "-n",
        "2",
        "--rate",
        "20",
        "--seconds",
        "1",
        "--runs",
        "1",
        "--bus",
        bus,
    )
    results = report["results"]
    assert isinstance(results, list)
    assert [row["bus"] for row in results] == ["memory, same node", "redis, node A to node B"]
    for row in results:
        assert row["delivered_fraction"] == 1.0 and row["write_errors"] == 0
        # The node did work for its deliveries, and the figure says how much per delivery.
        assert row["node_cpu_us_per_delivery"] > 0


def test_bench_auth_reports_every_figure(tmp_path: Path) -> None:
    """bench auth measures sign-ins, token checks, and push and pull with and without rules."""
    report = bench(tmp_path, "auth", "--runs", "1", "--logins", "2", "--batches", "1")
    for key in (
        "logins_per_s",
        "raw_argon2id_verifies_per_s",
        "token_verify_first_us",
        "token_verify_again_us",
        "token_verify_with_denylist_us",
        "auth_store_lookup_us",
        "push_docs_per_s_with_rules",
        "push_docs_per_s_without_rules",
        "pull_changes_per_s_with_rules",
        "pull_changes_per_s_without_rules",
    ):
        value = report[key]
        assert isinstance(value, int | float) and value > 0, key


def test_bench_sdk_reports_latency_drain_and_reconnect(tmp_path: Path) -> None:
    """bench sdk times local writes, drains an outbox and reconnects, with their floors, and
    counts what a settled online write costs: one push on the socket, no HTTP request, and
    its device CPU beside CPython's floor at the same pace."""
    report = bench(
        tmp_path,
        "sdk",
        *("--runs", "1", "--writes", "20", "--pending", "50"),
        *("--device-writes", "5", "--device-pause", "0.05"),
    )
    assert report["write_requests"] == 0
    assert 1 <= report["write_round_trips"] < 1.5  # type: ignore[operator]  # a pong, rarely
    assert report["write_mutation_bytes"] > 0 and report["write_bytes_out"] > 0  # type: ignore[operator]
    assert report["write_bytes_in"] > 0 and report["write_cpu_ms"] > 0  # type: ignore[operator]
    assert report["local_write_p50_ms"] > 0 and report["raw_sqlite_commit_p50_ms"] > 0  # type: ignore[operator]
    assert report["drain_mutations_per_s"] > 0 and report["raw_push_mutations_per_s"] > 0  # type: ignore[operator]
    assert report["reconnect_to_synced_s"] > 0  # type: ignore[operator]
    assert report["device_pause_s"] == 0.05
    assert report["floor_write_ms"] > 0 and report["floor_exchange_plain_ms"] > 0  # type: ignore[operator]
    ratio = report["write_cpu_ms"] / report["floor_write_ms"]  # type: ignore[operator]
    assert report["write_cpu_ratio_to_floor"] == pytest.approx(ratio, abs=0.02)


def test_bench_instructions_measures_the_push_path_and_reads_callgrinds_totals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The measured program pushes and reads back what it pushed; the totals come from
    callgrind's summary line (a stand-in valgrind here: a real run takes a minute)."""
    from breakwater.bench import instructions

    asyncio.run(instructions.push_path(2, tmp_path))
    fake = tmp_path / "valgrind"
    fake.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do case "$a" in 1) n=1000;; 3) n=61000;; esac; done\n'
        'echo "==1== Collected : $n" >&2\n'
    )
    fake.chmod(0o755)
    monkeypatch.setattr("breakwater.bench.instructions.shutil.which", lambda _name: str(fake))
    report = instructions.run(1, 3)
    assert report == {
        "instructions_per_doc": 300,
        "batches": [1, 3],
        "instructions": [1000, 61000],
    }


@pytest.mark.parametrize(("mode", "body"), [("off", "small"), ("put", "small"), ("off", "peers")])
def test_bench_instructions_per_request_program_writes_through_the_node(
    mode: str, body: str
) -> None:
    """The program callgrind counts (here run without it) makes its pushes (small or the peers'
    1 KB documents) or REST ``PUT``s through the whole app, logs each as ``serve`` does (one
    JSON access line) and fails on any answer that is not a success."""
    from breakwater.bench.instructions_request import PROGRAM

    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, "3", mode, body],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    requests = [line for line in lines if line["event"] == "request"]
    expected = "/v1/collections/{collection}/docs/{doc_id}" if mode == "put" else "/v1/sync/push"
    assert {line["route"] for line in requests} == {expected}
    assert len(requests) == 3


def test_bench_instructions_without_valgrind_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from breakwater.bench import instructions

    monkeypatch.setattr("breakwater.bench.instructions.shutil.which", lambda _name: None)
    with pytest.raises(RuntimeError, match="valgrind is not installed"):
        instructions.count(1)


def test_bench_realtime_counts_every_change_at_the_counting_subscribers(tmp_path: Path) -> None:
    """With more subscribers than sampled ones (spread over the connection order), the rest
    only count: every change of every subscriber is still counted (delivered 100 %)."""
    report = bench(
        tmp_path, "realtime", "-n", "80", "--rate", "50", "--seconds", "1", "--runs", "1"
    )
    results = report["results"]
    assert isinstance(results, list)
    [row] = results
    assert row["delivered_fraction"] == 1.0 and row["write_errors"] == 0
    assert row["changes_per_message"] >= 1.0
    # The floor was measured in the same run, and the p99 is expressed against it.
    assert row["raw_send_round_ms"] > 0
    assert row["p99_per_raw_round"] == pytest.approx(
        row["p99_ms"] / row["raw_send_round_ms"], rel=0.5
    )
    # So was the fan-out floor, with the same writes to the same subscriber process.
    floor = row["floor"]
    assert floor["delivered_fraction"] == 1.0 and floor["write_errors"] == 0
    assert row["node_p99_per_floor_p99"] == pytest.approx(row["p99_ms"] / floor["p99_ms"], rel=0.5)


def test_a_raw_send_round_costs_more_with_more_sockets() -> None:
    """The floor is a real measurement: 200 sockets cost far more than one."""
    from breakwater.bench._raw_sends import raw_send_round_ms

    assert 0 < raw_send_round_ms(1) * 20 < raw_send_round_ms(200)


def test_bench_counters_reports_each_checkpoint(tmp_path: Path) -> None:
    """bench counters times increments at each checkpoint, with the counter's exact value."""
    report = bench(tmp_path, "counters", "--runs", "1", "--samples", "2", "--largest", "1000")
    results = report["results"]
    assert isinstance(results, list)
    assert [row["earlier_increments"] for row in results] == [1, 100, 1000]
    assert all(row["us_per_increment"] > 0 and row["state_bytes"] > 0 for row in results)
    assert isinstance(report["last_over_first"], float)


def test_bench_webhooks_delivers_every_change_and_reports_its_floor(tmp_path: Path) -> None:
    """bench webhooks delivers every paced write and reports latency, floor and peer."""
    report = bench(tmp_path, "webhooks", "--runs", "1", "--seconds", "1", "--rate", "50")
    medians = report["median"]
    assert isinstance(medians, dict)
    assert medians["writes"] == 50 and medians["delivered"] == 1.0
    assert 0 < medians["p50_ms"] <= medians["p99_ms"]
    assert medians["post_p50_ms"] > 0 and medians["control_write_p50_ms"] > 0


def test_bench_gateway_reports_direct_and_gateway_percentiles(tmp_path: Path) -> None:
    """bench gateway measures reads and pushes both ways through a real HAProxy."""
    require_program("haproxy")
    report = bench(tmp_path, "gateway", "--requests", "100", "--runs", "1")
    summary = report["median_of_runs"]
    for kind in ("read", "push"):
        row = summary[kind]  # type: ignore[index]
        assert row["direct_p50_ms"] > 0 and row["gateway_p50_ms"] > 0
    assert str(report["machine"]["haproxy"]).startswith("2.")  # type: ignore[index]


def test_bench_archive_lag_measures_every_archived_change(tmp_path: Path) -> None:
    """bench archive-lag runs ``breakwater archive`` beside paced writes and reports the lag of
    every change it wrote (it fails if the archive misses one) against its floor."""
    report = bench(tmp_path, "archive-lag", "--runs", "1", "--seconds", "1", "--rate", "50")
    runs = report["runs"]
    assert isinstance(runs, list) and len(runs) == 1
    run: dict[str, float] = runs[0]
    assert run["segments"] >= 1 and 0 < run["lag_p50_s"] <= run["lag_max_s"] < 30
    assert run["floor_s"] >= 0.1  # the read interval at least


def test_bench_restore_times_both_paths(tmp_path: Path) -> None:
    """bench restore puts a backup back and replays an archive of the same documents."""
    report = bench(tmp_path, "restore", "--docs", "3000")
    assert report["docs"] == 3000
    assert report["from_backup_s"] > 0 and report["replay_s"] > 0  # type: ignore[operator]


def test_bench_replication_measures_catch_up_transfer_and_a_round(tmp_path: Path) -> None:
    """bench replication: the feed catch-up, a full state transfer after a 410 and an
    anti-entropy round in sync, in one run."""
    report = bench(tmp_path, "replication", "--runs", "1", "--changes", "200")
    for key in ("push_per_second", "replicate_per_second", "transfer_new_per_second"):
        value = report[key]
        assert isinstance(value, float) and value > 0, key
    round_ms = report["anti_entropy_round_ms"]
    assert isinstance(round_ms, float) and round_ms > 0


def test_bench_files_uploads_downloads_and_reports_the_floors(tmp_path: Path) -> None:
    """bench files reports upload, download, the copy floors and the receive floor, with two
    runs' samples."""
    report = bench(tmp_path, "files", "--size-mb", "3", "--runs", "2", "--chunk-mb", "1")
    samples = report["samples_s"]
    assert isinstance(samples, dict)
    assert {len(values) for values in samples.values()} == {2}
    for key in ("copy_mb_s", "copy_hash_mb_s", "receive_mb_s", "upload_mb_s", "download_mb_s"):
        value = report[key]
        assert isinstance(value, float) and value > 0, key


def test_bench_replication_cluster_reports_lag_convergence_backlog_and_cpu(
    tmp_path: Path,
) -> None:
    """bench replication --cluster: paced writes arrive in the other regions, the partition
    heals into convergence, a backlog is caught up, and every process's CPU is reported."""
    report = bench(
        tmp_path,
        "replication",
        "--cluster",
        "--rate",
        "30",
        "--seconds",
        "2",
        "--partition-seconds",
        "2",
        "--latency-ms",
        "20",
        "--backlog",
        "300",
    )
    assert 0 < report["push_ack_p50_ms"] <= report["push_ack_p99_ms"]  # type: ignore[operator]
    acknowledged = report["writes_acknowledged"]
    assert isinstance(acknowledged, int) and acknowledged >= 50
    assert isinstance(report["writes_resent"], int)
    assert report["arrivals"] == report["expected_arrivals"] == 2 * acknowledged
    # a change crosses a link one way at least: 20 ms
    assert 20 <= report["lag_p50_ms"] <= report["lag_p99_ms"] <= report["lag_max_ms"]  # type: ignore[operator]
    # the link proxy adds 20 ms each way to whatever the node takes
    assert report["link_rtt_ms"] >= 40 and report["node_rtt_ms"] > 0  # type: ignore[operator]
    cores = report["cpu_cores"]
    assert isinstance(cores, dict)
    assert set(cores) == {"generator", "watchers", "proxies", "eu-n1", "us-n1", "ap-n1"}
    assert all(value > 0 for value in cores.values())
    assert report["partition_writes_crossed_before_heal"] == 0
    assert report["partition_writes"] > 0  # type: ignore[operator]
    assert 0 < report["converged_after_heal_s"] < 60  # type: ignore[operator]
    assert report["backlog_changes"] == 300
    for key in ("backlog_receiver_push_per_s", "backlog_catch_up_per_s"):
        value = report[key]
        assert isinstance(value, float) and value > 0, key
    wire, plain = report["backlog_wire_bytes_per_change"], report["backlog_json_bytes_per_change"]
    assert 0 < wire < plain  # type: ignore[operator]
