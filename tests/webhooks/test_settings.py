"""The ``webhook_*`` settings: parsed from the environment and TOML, bad values stop the node."""

from __future__ import annotations

from pathlib import Path

import pytest

from breakwater.config import ConfigError, load_config


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("1", True), ("FALSE", False)])
def test_allow_private_reads_booleans_from_the_environment(raw: str, value: bool) -> None:
    """``BREAKWATER_WEBHOOK_ALLOW_PRIVATE`` takes true/false and 1/0."""
    config = load_config(env={"BREAKWATER_WEBHOOK_ALLOW_PRIVATE": raw})
    assert config.webhook_allow_private is value


def test_toml_sets_the_delivery_bounds(tmp_path: Path) -> None:
    """TOML keys reach the config with their types."""
    file = tmp_path / "b.toml"
    file.write_text("webhook_allow_private = true\nwebhook_max_attempts = 3\nwebhook_timeout = 2\n")
    config = load_config(file, env={})
    assert (config.webhook_allow_private, config.webhook_max_attempts) == (True, 3)
    assert config.webhook_timeout == 2.0


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"BREAKWATER_WEBHOOK_ALLOW_PRIVATE": "maybe"}, "WEBHOOK_ALLOW_PRIVATE"),
        ({"BREAKWATER_WEBHOOK_TIMEOUT": "0"}, "webhook_timeout"),
        ({"BREAKWATER_WEBHOOK_MAX_ATTEMPTS": "-1"}, "webhook_max_attempts"),
        ({"BREAKWATER_WEBHOOK_CONCURRENCY": "0"}, "webhook_concurrency"),
        (
            {"BREAKWATER_WEBHOOK_BACKOFF_BASE": "10", "BREAKWATER_WEBHOOK_BACKOFF_CAP": "5"},
            "webhook_backoff_cap",
        ),
    ],
)
def test_a_bad_value_stops_the_node_naming_the_key(env: dict[str, str], names: str) -> None:
    """Each bad value is a ConfigError that names its key."""
    with pytest.raises(ConfigError, match=names):
        load_config(env=env)
