"""Rendered configurations: HAProxy accepts each strategy's; bad plans fail before rendering."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from breakwater.gateway import (
    STRATEGIES,
    GatewayError,
    GatewayPlan,
    HealthChecks,
    Node,
    Strategy,
    Timeouts,
    check_config,
    render,
)
from tests.services import require_program


def region_nodes(strategy: Strategy) -> tuple[Node, ...]:
    """Two nodes (weighted 1:3 for ``weighted``) and a backup in another region."""
    heavy = 3 if strategy == "weighted" else 1
    return (
        Node.from_url("http://10.0.0.1:8080", name="a"),
        Node.from_url("http://10.0.0.2:8080", name="b", weight=heavy),
        Node.from_url("http://10.1.0.1:8080", name="other-region", backup=True),
    )


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_haproxy_accepts_the_configuration_of_each_strategy(
    haproxy: str, strategy: Strategy, tmp_path: Path
) -> None:
    """``haproxy -c`` accepts what every strategy renders, with a stats socket and backups."""
    plan = GatewayPlan(region_nodes(strategy), strategy=strategy, stats_socket=tmp_path / "s")
    check_config(render(plan), haproxy)


def test_a_configuration_haproxy_refuses_raises_with_its_words(haproxy: str) -> None:
    """A broken configuration is a GatewayError quoting HAProxy, not a silent success."""
    text = render(GatewayPlan(region_nodes("roundrobin"))).replace("balance", "balanse")
    with pytest.raises(GatewayError, match="balanse"):
        check_config(text, haproxy)


@dataclass(frozen=True)
class BadNode:
    url: str
    weight: int
    problem: str


@pytest.mark.parametrize(
    "case",
    [
        BadNode("https://10.0.0.1:8443", 1, "expected http://host:port"),
        BadNode("10.0.0.1:8080", 1, "expected http://host:port"),
        BadNode("http://10.0.0.1:80x", 1, "port is not a number"),
        BadNode("http://10.0.0.1:8080/v1", 1, "no path"),
        BadNode("http://10.0.0.1:8080", 0, "weight 0"),
        BadNode("http://10.0.0.1:8080", 257, "weight 257"),
    ],
)
def test_a_bad_node_is_refused_naming_it(case: BadNode) -> None:
    """A node URL or weight HAProxy could not use fails when the plan is built."""
    with pytest.raises(GatewayError, match=case.problem):
        Node.from_url(case.url, weight=case.weight)


def test_weights_need_the_weighted_strategy() -> None:
    """Weights under round robin would be a silent surprise: refused."""
    with pytest.raises(GatewayError, match="weighted"):
        GatewayPlan(region_nodes("weighted"), strategy="roundrobin")


@pytest.mark.parametrize(
    "build",
    [
        lambda: HealthChecks(interval=0),
        lambda: HealthChecks(fall=0),
        lambda: Timeouts(request=-1),
    ],
    ids=["interval 0", "fall 0", "negative request timeout"],
)
def test_checks_and_timeouts_that_never_end_or_never_fire_are_refused(
    build: Callable[[], object],
) -> None:
    """A zero interval, a zero fall or a negative timeout fails when the plan is built."""
    with pytest.raises(GatewayError):
        build()


def test_a_gateway_of_backups_only_is_refused() -> None:
    """Backups serve only when the region's nodes are down, so a region needs a node."""
    with pytest.raises(GatewayError, match="not a backup"):
        GatewayPlan((Node.from_url("http://10.1.0.1:8080", backup=True),))


def test_the_command_prints_a_checked_configuration(haproxy: str, tmp_path: Path) -> None:
    """``breakwater gateway haproxy`` prints a configuration that HAProxy accepts."""
    result = subprocess.run(
        [
            *(sys.executable, "-m", "breakwater", "gateway", "haproxy"),
            *("--node", "http://127.0.0.1:8001", "--node", "http://127.0.0.1:8002"),
            *("--strategy", "weighted", "--weight", "1", "--weight", "4"),
            *("--backup", "http://10.1.0.1:8080", "--bind", "127.0.0.1:9000"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "server node2 127.0.0.1:8002 weight 4" in result.stdout
    assert "drain_grace >= " in result.stderr
    check_config(result.stdout, haproxy)


def test_the_command_refuses_a_bad_node_with_exit_2() -> None:
    """A bad node URL ends with an Error: line and a Try: hint, exit code 2."""
    result = subprocess.run(
        [sys.executable, "-m", "breakwater", "gateway", "haproxy", "--node", "ftp://x:1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "Error: node 'ftp://x:1': expected http://host:port" in result.stderr
    assert "Try:" in result.stderr


def test_the_configuration_shown_in_the_docs_is_what_the_command_renders() -> None:
    """docs/gateway.md's rendered example is the command's output for its two nodes."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "gateway.md").read_text()
    shown = docs.split("```text\n", 1)[1].split("```", 1)[0]
    plan = GatewayPlan(
        (
            Node.from_url("http://10.0.0.11:8080", name="node1"),
            Node.from_url("http://10.0.0.12:8080", name="node2"),
        ),
        bind_host="0.0.0.0",
        stats_socket=Path("/run/haproxy/breakwater.sock"),
    )
    rendered = render(plan)
    assert rendered.split("\n", 2)[2] == shown


def test_the_command_reads_its_options_from_the_environment(haproxy: str) -> None:
    """BREAKWATER_GATEWAY_<OPTION> gives an option; a list takes addresses separated by spaces."""
    env = dict(
        os.environ,
        BREAKWATER_GATEWAY_NODE="http://127.0.0.1:8001 http://127.0.0.1:8002",
        BREAKWATER_GATEWAY_STRATEGY="leastconn",
    )
    result = subprocess.run(
        [sys.executable, "-m", "breakwater", "gateway", "haproxy"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert "    balance leastconn\n" in result.stdout
    assert "server node2 127.0.0.1:8002" in result.stdout


@st.composite
def plans(draw: st.DrawFn) -> GatewayPlan:
    """Any valid plan: 1-5 nodes (weighted or not), up to 2 backups, any checks and bounds."""
    strategy = draw(st.sampled_from(STRATEGIES))
    count = draw(st.integers(1, 5))
    weights = st.integers(1, 256) if strategy == "weighted" else st.just(1)
    nodes = [
        Node.from_url(f"http://10.0.0.{i + 1}:{8000 + i}", weight=draw(weights), name=f"n{i}")
        for i in range(count)
    ]
    nodes += [
        Node.from_url(f"http://10.1.0.{i + 1}:8080", backup=True)
        for i in range(draw(st.integers(0, 2)))
    ]
    seconds = st.floats(0.05, 120, allow_nan=False)
    return GatewayPlan(
        tuple(nodes),
        strategy=strategy,
        bind_port=draw(st.integers(1, 65535)),
        checks=HealthChecks(
            interval=draw(seconds),
            fast_interval=draw(seconds),
            down_interval=draw(seconds),
            fall=draw(st.integers(1, 10)),
            rise=draw(st.integers(1, 10)),
            timeout=draw(seconds),
        ),
        timeouts=Timeouts(request=draw(seconds), stream=draw(seconds)),
        retries=draw(st.integers(0, 10)),
        error_limit=draw(st.integers(1, 1000)),
        max_connections=draw(st.none() | st.integers(1, 1000)),
    )


@settings(max_examples=25, deadline=None)
@given(plan=plans())
def test_haproxy_accepts_every_valid_plan_with_one_server_line_per_node(
    plan: GatewayPlan,
) -> None:
    """Whatever a valid plan holds, HAProxy accepts its configuration, every node is a server
    with its weight, and only backups are marked backup."""
    text = render(plan)
    check_config(text, require_program("haproxy"))
    servers = [line.split() for line in text.splitlines() if line.startswith("    server ")]
    assert [(s[1], int(s[4]), s[-1] == "backup") for s in servers] == [
        (node.name, node.weight, node.backup) for node in plan.nodes
    ]
