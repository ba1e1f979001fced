"""Scenario files: the shipped ones load; each mistake gets an error naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from breakwater.chaos.scenario import ScenarioError, load_scenario, parse_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def base(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": "t",
        "duration": 10,
        "topology": {"nodes": 2},
        "devices": {"count": 4},
        "faults": [{"at": 1, "kind": "latency", "target": "n1", "params": {"ms": 5}}],
    }
    raw.update(changes)
    return raw


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_scenarios_are_valid(path: Path) -> None:
    """Every scenario in scenarios/ loads, has faults and fits its duration."""
    scenario = load_scenario(path)
    assert scenario.faults
    assert all(step.at < scenario.duration for step in scenario.faults)


def test_ci_scenario_has_what_ci_promises() -> None:
    """The CI scenario: two nodes, 50 devices offline and online, kill, pause, latency, reset."""
    scenario = load_scenario(SCENARIOS / "ci.yaml")
    assert len(scenario.nodes) == 2
    assert scenario.devices.count == 50
    assert scenario.devices.offline
    assert {"kill", "pause", "latency", "reset_peer"} <= {step.kind for step in scenario.faults}


def test_defaults_and_shapes() -> None:
    """A node count names nodes n1..nN; a fraction of devices offline becomes a count."""
    scenario = parse_scenario(
        base(devices={"count": 10, "offline": [{"at": 2, "duration": 3, "devices": 0.3}]})
    )
    assert [node.name for node in scenario.nodes] == ["n1", "n2"]
    assert scenario.devices.offline[0].devices == 3
    assert scenario.bounds.convergence_s == 30.0
    assert scenario.faults[0].params == {"ms": 5}


@pytest.mark.parametrize(
    ("topology", "engines"),
    [
        ({"nodes": 2}, ()),
        ({"store": "postgresql"}, ("postgres",)),
        ({"store": "sqlite", "cache": "redis"}, ("redis",)),
        ({"store": "postgresql", "bus": "redis", "cache": "redis"}, ("postgres", "redis")),
        ({"store": "postgresql", "standby": "sync"}, ("postgres", "standby")),
        (
            {"store": "postgresql", "standby": "async", "bus": "redis"},
            ("postgres", "standby", "redis"),
        ),
    ],
)
def test_the_topology_names_its_private_engines(
    topology: dict[str, Any], engines: tuple[str, ...]
) -> None:
    """SQLite and in-node bus and cache by default; postgresql starts a private PostgreSQL and
    a redis bus or cache one private Redis, which engine_stop can then target."""
    scenario = parse_scenario(base(topology=topology, faults=[]))
    assert scenario.engines.engines == engines
    assert scenario.engines.store == topology.get("store", "sqlite")
    for engine in engines:
        step = {"at": 1, "kind": "engine_stop", "target": engine, "duration": 2}
        stop = parse_scenario(base(topology=topology, faults=[step])).faults[0]
        assert (stop.kind, stop.target, stop.duration) == ("engine_stop", engine, 2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"duration": "long"}, "duration = 'long' is not a number"),
        ({"name": None}, "name = None is not a string"),
        ({"colour": 1}, "unknown keys ['colour']"),
        ({"topology": {"nodes": 0}}, "topology.nodes = 0 must be between 1 and 16"),
        (
            {"topology": {"store": "postgresql://x"}},
            "topology.store = 'postgresql://x' is not one of ['sqlite', 'postgresql']",
        ),
        ({"topology": {"bus": "nats"}}, "topology.bus = 'nats' is not one of ['memory', 'redis']"),
        ({"topology": {"cache": 6379}}, "topology.cache = 6379 is not a string"),
        (
            {"faults": [{"at": 1, "kind": "engine_stop", "target": "postgres"}]},
            "faults[0].target = 'postgres' is not an engine of the topology; known: []",
        ),
        (
            {
                "topology": {"store": "postgresql"},
                "faults": [{"at": 1, "kind": "engine_stop", "target": "redis"}],
            },
            "faults[0].target = 'redis' is not an engine of the topology; known: ['postgres']",
        ),
        (
            {
                "topology": {"bus": "redis"},
                "faults": [{"at": 1, "kind": "engine_stop", "target": "n1"}],
            },
            "faults[0].target = 'n1' is not an engine of the topology; known: ['redis']",
        ),
        (
            {
                "topology": {"store": "postgresql"},
                "faults": [
                    {"at": 1, "kind": "engine_stop", "target": "postgres", "params": {"mode": "x"}}
                ],
            },
            "faults[0].params: engine_stop takes one optional mode, one of ['fast', 'immediate']",
        ),
        (
            {
                "topology": {"store": "postgresql"},
                "faults": [{"at": 1, "kind": "kill", "target": "postgres"}],
            },
            "faults[0].target = 'postgres' is not a node",
        ),
        ({"topology": {"standby": "sync"}}, "topology.standby needs store: postgresql"),
        (
            {"topology": {"store": "postgresql", "standby": "hot"}},
            "topology.standby = 'hot' is not one of ['none', 'sync', 'async']",
        ),
        (
            {
                "topology": {"store": "postgresql", "standby": "sync"},
                "faults": [{"at": 1, "kind": "promote", "target": "postgres"}],
            },
            "faults[0].target: only the standby can be promoted",
        ),
        (
            {
                "topology": {"store": "postgresql", "standby": "sync"},
                "faults": [{"at": 1, "kind": "promote", "target": "standby", "duration": 2}],
            },
            "faults[0].duration: a promotion is not undone",
        ),
        (
            {
                "topology": {"store": "postgresql", "bus": "redis"},
                "faults": [{"at": 1, "kind": "engine_kill", "target": "redis"}],
            },
            "faults[0].target: engine_kill acts on PostgreSQL only",
        ),
        (
            {
                "topology": {"store": "postgresql"},
                "faults": [
                    {"at": 1, "kind": "engine_kill", "target": "postgres", "params": {"wipe": 1}}
                ],
            },
            "faults[0].params: engine_kill takes one optional wipe, true or false",
        ),
        (
            {
                "topology": {"store": "postgresql"},
                "faults": [
                    {
                        "at": 1,
                        "kind": "engine_kill",
                        "target": "postgres",
                        "duration": 2,
                        "params": {"wipe": True},
                    }
                ],
            },
            "faults[0].duration: a wiped engine cannot come back; leave it out",
        ),
        ({"topology": {"nodes": [{"name": "a"}, {"name": "a"}]}}, "must be unique"),
        ({"topology": {"nodes": [{"name": "all"}]}}, "not a usable node id"),
        ({"devices": {"count": 2.5}}, "devices.count = 2.5 is not a whole number"),
        ({"devices": {"mix": {"note": 0}}}, "at least one positive weight"),
        ({"devices": {"mix": {"delete": 1}}}, "devices.mix: unknown keys ['delete']"),
        (
            {"devices": {"count": 2, "offline": [{"at": 1, "duration": 1, "devices": 5}]}},
            "devices.offline[0].devices = 5 is more than 2",
        ),
        ({"faults": [{"at": 1, "kind": "flood"}]}, "faults[0].kind = 'flood' is not a fault"),
        ({"faults": [{"at": 1, "kind": "pause", "target": "n7"}]}, "faults[0].target = 'n7'"),
        ({"faults": [{"at": 99, "kind": "pause"}]}, "faults[0].at = 99 is not within"),
        ({"faults": [{"at": -1, "kind": "pause"}]}, "faults[0].at = -1 must be at least 0"),
        (
            {"faults": [{"at": 1, "kind": "latency", "params": {"ms": -5}}]},
            "faults[0].params: latency.ms must be a finite number >= 0",
        ),
        (
            {"faults": [{"at": 1, "kind": "clock_skew", "params": {"offset_ms": "1s"}}]},
            "clock_skew takes one whole number",
        ),
        ({"faults": [{"at": 1, "kind": "kill", "params": {"x": 1}}]}, "kill takes no parameters"),
        ({"bounds": {"convergence_s": 0}}, "bounds.convergence_s = 0 must be at least 0.1"),
    ],
)
def test_mistakes_are_named(change: dict[str, Any], message: str) -> None:
    """Each invalid value raises ScenarioError with the source, the key path and the problem."""
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(base(**change), "s.yaml")
    assert caught.value.detail.startswith("s.yaml: ")
    assert message in caught.value.detail


def test_a_file_that_is_not_yaml(tmp_path: Path) -> None:
    """Broken YAML and missing files are ScenarioErrors naming the file."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(bad)
    with pytest.raises(ScenarioError, match="cannot be read"):
        load_scenario(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ScenarioError, match="scenario must be a mapping"):
        load_scenario(tmp_path / "list.yaml")


def test_engine_outage_scenario_has_what_it_promises() -> None:
    """Two nodes on a private PostgreSQL with a private Redis bus; PostgreSQL stopped cleanly
    and crashed, Redis stopped, a node killed."""
    scenario = load_scenario(SCENARIOS / "postgres-engine-outage.yaml")
    assert len(scenario.nodes) == 2
    assert (scenario.engines.store, scenario.engines.bus) == ("postgresql", "redis")
    stops = {(s.target, s.params.get("mode", "fast")) for s in scenario.faults
             if s.kind == "engine_stop"}  # fmt: skip
    assert stops == {("postgres", "fast"), ("postgres", "immediate"), ("redis", "fast")}
    assert "kill" in {step.kind for step in scenario.faults}


def regions(*faults: dict[str, Any], **topology: Any) -> dict[str, Any]:
    """A multi-region scenario: eu and ap active, us standby, with ``faults``."""
    shape: dict[str, Any] = {
        "regions": [{"name": "eu"}, {"name": "us", "state": "standby"}, {"name": "ap"}],
        "links": {"latency_ms": 20, "loss_pct": 1},
    }
    shape.update(topology)
    return base(topology=shape, faults=list(faults))


def test_multi_region_topology_names_regions_nodes_and_links() -> None:
    """Regions, nodes per region (named region-nI), link faults, and every kind of target."""
    scenario = parse_scenario(
        regions(
            {"at": 1, "kind": "partition", "target": "eu"},
            {"at": 1, "kind": "partition", "target": "eu/ap", "duration": 2},
            {"at": 2, "kind": "loss", "target": "ap>eu", "params": {"percent": 5}},
            {"at": 3, "kind": "kill", "target": "ap-n2", "duration": 1},
            {"at": 4, "kind": "region_loss", "target": "eu", "duration": 3},
            {"at": 5, "kind": "promote", "target": "us"},
            {"at": 6, "kind": "clock_skew", "target": "ap", "params": {"offset_ms": 5000}},
            nodes=2,
        )
    )
    assert scenario.regions is not None
    assert scenario.regions.names == ["eu", "us", "ap"]
    assert scenario.regions.latency_ms == 20 and scenario.regions.loss_pct == 1
    assert [n.name for n in scenario.nodes] == [
        "eu-n1",
        "eu-n2",
        "us-n1",
        "us-n2",
        "ap-n1",
        "ap-n2",
    ]
    assert [f.target for f in scenario.faults] == [
        "eu",
        "eu/ap",
        "ap>eu",
        "ap-n2",
        "eu",
        "us",
        "ap",
    ]
    counted = parse_scenario(base(topology={"regions": 3}, faults=[]))
    assert counted.regions is not None and counted.regions.names == ["eu", "us", "ap"]


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        (regions({"at": 1, "kind": "partition", "target": "eu>eu"}), "not a link between two"),
        (regions({"at": 1, "kind": "partition", "target": "mars"}), "is not a node, a region"),
        (regions({"at": 1, "kind": "kill", "target": "eu/ap"}), "kill does not act on a link"),
        (
            regions({"at": 1, "kind": "region_loss", "target": "eu-n1"}),
            "region_loss needs a region",
        ),
        (regions({"at": 1, "kind": "promote", "target": "eu"}), "not a standby region"),
        (regions({"at": 1, "kind": "promote", "target": "us", "duration": 2}), "not undone"),
        (regions({"at": 1, "kind": "engine_stop", "target": "postgres"}), "is not a fault"),
        (regions(bus="redis"), "leave out bus, cache and standby"),
        (regions(nodes=9), "nodes per region"),
        (regions(links={"loss_pct": 150}), "loss_pct is a percentage"),
        (
            regions(regions=[{"name": "eu", "state": "standby"}]),
            "at least one region must be active",
        ),
        (regions(regions=[{"name": "eu"}, {"name": "EU"}]), "names must be unique"),
        (regions(regions=[{"name": "e~u"}]), "is not a region name"),
        (base(topology={"nodes": 2, "links": {"latency_ms": 5}}), "links needs topology.regions"),
    ],
)
def test_multi_region_mistakes_are_named(scenario: dict[str, Any], message: str) -> None:
    """Each invalid multi-region setting or target is refused, naming the key and the reason."""
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(scenario, "r.yaml")
