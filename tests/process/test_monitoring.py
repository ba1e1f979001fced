"""deploy/monitoring: the Prometheus rules pass promtool's checks and unit tests, every alert has
a case that fires and one that does not, and every metric the rules and the Grafana dashboard
name is one a running node exports."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import yaml

from tests.conftest import ServerProcess
from tests.services import require_program

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
RULES = MONITORING / "breakwater-rules.yml"
RULE_TESTS = MONITORING / "breakwater-rules.test.yml"
DASHBOARD = MONITORING / "breakwater-dashboard.json"
# Series Prometheus makes itself for every scrape target, not the node.
SCRAPE_SERIES = {"up"}
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


def test_every_metric_the_rules_and_dashboard_name_is_exported(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Scraped from a running node after some traffic (writes, reads, a query, 429s), the
    exported series cover every name the rules and the dashboard use; names with a colon are
    recording rules of the rules file."""
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
        scraped = exported(client.get("/metrics").text)
    assert "breakwater_rate_limited_total" in scraped
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    named: set[str] = set()
    for expr in [rule["expr"] for rule in rules()] + list(dashboard_exprs()):
        named |= metric_names(expr)
    assert named
    assert {name for name in named if ":" in name} <= recorded
    missing = {name for name in named if ":" not in name} - scraped - SCRAPE_SERIES
    assert not missing, f"named but not exported: {sorted(missing)}"
