"""deploy/monitoring: the Prometheus rules pass promtool's checks and unit tests, every alert has
a case that fires and one that does not, and every metric the rules and the Grafana dashboard
name is one running nodes export (a node of a real two-region cluster for replication)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from breakwater.chaos.cluster import LocalCluster
from breakwater.chaos.cluster_spec import ClusterSpec
from tests.conftest import ServerProcess
from tests.services import require_program

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
RULES = MONITORING / "breakwater-rules.yml"
RULE_TESTS = MONITORING / "breakwater-rules.test.yml"
DASHBOARD = MONITORING / "breakwater-dashboard.json"
# Series Prometheus makes itself for every scrape target, not the node.
SCRAPE_SERIES = {"up"}
# Replication series a node has only after an event (a failed pull, a repair, a transfer):
# their families are declared from the start; every other replication series has samples.
EVENT_SERIES = {
    "breakwater_replication_retries_total",
    "breakwater_replication_repairs_total",
    "breakwater_replication_transfer_changes_total",
}
_KEYWORDS = {"bool", "and", "or", "unless", "offset"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool in the monitoring folder (rule files name each other relatively)."""
    command = [require_program("promtool"), *args]
    return subprocess.run(command, cwd=MONITORING, capture_output=True, text=True, timeout=120)


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (functions, keywords and labels left out)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*(?!\s*\()", expr):
        end = match.end()
        if end < len(expr) and (expr[end].isalnum() or expr[end] in "_:"):
            continue
        if expr[end:].lstrip().startswith("("):
            continue
        if match.group() not in _KEYWORDS:
            names.add(match.group())
    return names


def rules() -> list[dict[str, str]]:
    """Every rule of the rules file."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_exprs() -> Iterator[str]:
    """Every query of the dashboard: its panels' targets and its template variables."""
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", variable["query"]["query"])


def sampled(metrics_text: str) -> set[str]:
    """The series names with at least one sample in a /metrics text."""
    return {
        re.split(r"[{ ]", line, maxsplit=1)[0]
        for line in metrics_text.splitlines()
        if line and not line.startswith("#")
    }


def exported(metrics_text: str) -> set[str]:
    """The series names in a /metrics text: its samples, and the series every declared family
    has even before its first labelled sample."""
    names = set()
    for line in metrics_text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split()
            suffixes = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
            names |= {family + suffix for suffix in suffixes}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_metric_names_finds_series_but_not_functions_or_labels() -> None:
    """The expression parser keeps series names only."""
    expr = (
        'histogram_quantile(0.99, sum by (job, le) (rate(a_bucket{x="b c"}[5m])))'
        " / on (job) b:c unless up == bool 1"
    )
    assert metric_names(expr) == {"a_bucket", "b:c", "up"}


def test_rules_pass_promtool_check() -> None:
    """promtool check rules accepts the rules file."""
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_pass_their_promtool_unit_tests() -> None:
    """promtool test rules passes every case of the rule tests."""
    result = promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_case_that_fires_and_one_that_does_not() -> None:
    """The rule tests hold, for each alert, an expected firing and an expected silence."""
    fires: set[str] = set()
    silent: set[str] = set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check["exp_alerts"] else silent).add(check["alertname"])
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert alerts
    assert fires == alerts
    assert silent == alerts


def named_metrics() -> set[str]:
    """Every series name the rules and the dashboard use."""
    named: set[str] = set()
    for expr in [rule["expr"] for rule in rules()] + list(dashboard_exprs()):
        named |= metric_names(expr)
    return named


def scrape_single_node(start_server: Callable[..., ServerProcess], tmp_path: Path) -> str:
    """/metrics of a lone node after writes, reads, a query and 429s."""
    config = tmp_path / "breakwater.toml"
    config.write_text("[auth]\nrate_per_ip = 1.0\nburst_per_ip = 20\n")
    node = start_server(None, "--config", str(config))
    with httpx.Client(base_url=node.url, timeout=10) as client:
        for i in range(5):
            assert client.put(f"/v1/collections/todos/docs/t{i}", json={"i": i}).is_success
            assert client.get(f"/v1/collections/todos/docs/t{i}").is_success
        assert client.get("/v1/collections/todos/docs", params={"limit": 10}).is_success
        statuses = {client.get("/v1/collections/todos/docs/t0").status_code for _ in range(30)}
        assert 429 in statuses
        return client.get("/metrics").text


async def scrape_cluster_node(directory: Path) -> str:
    """/metrics of region us's node in a two-region cluster, once a write made in eu has
    replicated to us and the stable vector covers it."""
    async with LocalCluster(ClusterSpec(regions=2), directory) as cluster:
        eu, us = cluster.region("eu").nodes[0].url, cluster.region("us").nodes[0].url
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.put(f"{eu}/v1/collections/todos/docs/t1", json={"i": 1})).is_success
            deadline = time.monotonic() + 60
            while True:
                text = (await http.get(f"{us}/metrics")).text
                applied = re.search(
                    r'^breakwater_replication_applied_changes_total\{peer="eu"\} (\S+)$',
                    text,
                    re.MULTILINE,
                )
                stable = re.search(r"^breakwater_stable_seq\{origin=\"eu~", text, re.MULTILINE)
                if applied and float(applied.group(1)) >= 1 and stable:
                    return text
                assert time.monotonic() < deadline, "eu's write did not replicate to us"
                await asyncio.sleep(0.5)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_every_metric_the_rules_and_dashboard_name_is_exported(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Scraped from a lone node after some traffic (writes, reads, a query, 429s) and from a
    node of a running two-region cluster after a write replicated to it, the exported series
    cover every name the rules and the dashboard use; the replication series have samples
    there (a per-peer series exists from the node's start), and names with a colon are
    recording rules of the rules file."""
    single = scrape_single_node(start_server, tmp_path)
    cluster = asyncio.run(scrape_cluster_node(tmp_path / "cluster"))
    scraped = exported(single) | exported(cluster)
    assert "breakwater_rate_limited_total" in scraped
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    named = named_metrics()
    assert named
    assert {name for name in named if ":" in name} <= recorded
    missing = {name for name in named if ":" not in name} - scraped - SCRAPE_SERIES
    assert not missing, f"named but not exported: {sorted(missing)}"
    replication = {
        name for name in named if name.startswith(("breakwater_replication_", "breakwater_stable_"))
    }
    assert "breakwater_replication_lag_seconds" in replication
    assert "breakwater_stable_seq" in replication
    unsampled = replication - EVENT_SERIES - sampled(cluster)
    assert not unsampled, f"no samples on a replicating node: {sorted(unsampled)}"
