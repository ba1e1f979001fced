"""The ``[topology]`` configuration: its shape, the key from the environment, and every
invalid topology stopping the node with a ConfigError that names the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from breakwater.config import ConfigError, load_config

TWO_PEERS = """
region = "eu"
port = 8080
[topology]
state = "standby"
public_urls = ["https://eu.example.com"]
[topology.peers.us]
urls = ["http://127.0.0.1:8180", "http://127.0.0.1:8181/"]
key = "from-file"
[topology.peers.ap]
urls = ["http://10.0.0.9:8080"]
public_urls = ["https://ap.example.com"]
"""


def write(tmp_path: Path, text: str) -> Path:
    """A TOML file with ``text``."""
    path = tmp_path / "breakwater.toml"
    path.write_text(text)
    return path


def test_the_documented_shape_loads(tmp_path: Path) -> None:
    """Peers keep their URLs (trailing slash dropped); public URLs default to the pull URLs."""
    config = load_config(write(tmp_path, TWO_PEERS), env={})
    topology = config.topology
    assert topology.state == "standby"
    assert topology.public_urls == ("https://eu.example.com",)
    assert topology.peer_regions == {"us", "ap"}
    assert topology.peers["us"].urls == ("http://127.0.0.1:8180", "http://127.0.0.1:8181")
    assert topology.peers["us"].public_urls == topology.peers["us"].urls
    assert topology.peers["ap"].public_urls == ("https://ap.example.com",)
    assert topology.peers["us"].key == "from-file"


def test_no_topology_is_one_active_region() -> None:
    """Without the table a node is an active region of its own, as before replication."""
    config = load_config(None, env={})
    assert config.topology.state == "active"
    assert not config.topology.peers


def test_the_environment_overrides_a_peer_key_which_repr_never_shows(tmp_path: Path) -> None:
    """BREAKWATER_TOPOLOGY_PEERS_<NAME>_KEY wins over the file; the key stays out of repr."""
    env = {"BREAKWATER_TOPOLOGY_PEERS_US_KEY": "from-env-secret"}
    config = load_config(write(tmp_path, TWO_PEERS), env=env)
    assert config.topology.peers["us"].key == "from-env-secret"
    assert "from-env-secret" not in repr(config)
    assert "from-file" not in repr(load_config(write(tmp_path, TWO_PEERS), env={}))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[topology.peers.EU]\nurls = ["http://10.0.0.1:1"]', "named like this region"),
        (
            '[topology.peers.us]\nurls = ["http://10.0.0.1:1"]\n'
            '[topology.peers.US]\nurls = ["http://10.0.0.2:1"]',
            "two peers",
        ),
        ('[topology.peers.us]\nurls = ["http://127.0.0.1:8080"]', "this node itself"),
        ('[topology.peers.us]\nurls = ["http://localhost:8080/"]', "this node itself"),
        ('[topology.peers.us]\nurls = ["ftp://10.0.0.1:1"]', "not an http(s) URL"),
        ('[topology.peers.us]\nurls = ["http://10.0.0.1:99999"]', "not a valid URL"),
        ('[topology.peers.us]\nurls = ["http://u:p@10.0.0.1:1"]', "no credentials"),
        ("[topology.peers.us]\nurls = []", "at least one"),
        ("[topology.peers.us]\nkey = 'k'", "at least one"),
        ('[topology.peers."u~s"]\nurls = ["http://10.0.0.1:1"]', "must match"),
        ('[topology.peers.us]\nurls = ["http://10.0.0.1:1"]\nport = 1', "unknown settings"),
        ('[topology]\nstate = "passive"', "not active or standby"),
        ("[topology]\npull_limit = 0", "positive"),
        ('[topology]\nwrite_concern_timeout = "5"', "positive"),
        ("[topology]\nmirrors = 1", "unknown settings"),
        ("[topology]\npeers = 1", "table of tables"),
    ],
)
def test_invalid_topologies_stop_the_node(tmp_path: Path, text: str, message: str) -> None:
    """Each broken topology is a ConfigError naming what is wrong."""
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(write(tmp_path, f'region = "eu"\nport = 8080\n{text}\n'), env={})


def test_a_peer_on_this_host_but_another_port_is_fine(tmp_path: Path) -> None:
    """Regions of a local cluster share 127.0.0.1; only the node's own port is refused."""
    text = 'region = "eu"\nport = 8080\n[topology.peers.us]\nurls = ["http://127.0.0.1:8081"]\n'
    assert load_config(write(tmp_path, text), env={}).topology.peers["us"].urls


def test_the_own_address_check_uses_the_port_flag(tmp_path: Path) -> None:
    """A peer URL that becomes this node only through --port is still refused."""
    text = 'region = "eu"\n[topology.peers.us]\nurls = ["http://127.0.0.1:9000"]\n'
    with pytest.raises(ConfigError, match="this node itself"):
        load_config(write(tmp_path, text), env={}, overrides={"port": 9000})
