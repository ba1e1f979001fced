"""[auth] settings: the default mode per address, trusted proxies, the example config."""

from __future__ import annotations

from pathlib import Path

import pytest

from breakwater.auth.settings import AuthSettings, proxy_networks
from breakwater.config import load_config
from breakwater.core.errors import ConfigError
from breakwater.server.access import client_ip

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "breakwater.toml"


@pytest.mark.parametrize(
    ("host", "mode"),
    [
        ("127.0.0.1", "open"),
        ("127.8.0.1", "open"),
        ("::1", "open"),
        ("localhost", "open"),
        ("0.0.0.0", "enforce"),
        ("::", "enforce"),
        ("10.0.0.5", "enforce"),
        ("node.example.com", "enforce"),
    ],
)
def test_auto_mode_is_open_only_on_loopback(host: str, mode: str) -> None:
    """``auto`` resolves to open on loopback addresses and to enforce on every other."""
    assert AuthSettings().resolved_mode(host) == mode


def test_an_explicit_mode_wins_over_the_address() -> None:
    """``open`` and ``enforce`` are taken as written."""
    assert AuthSettings(mode="enforce").resolved_mode("127.0.0.1") == "enforce"
    assert AuthSettings(mode="open").resolved_mode("0.0.0.0") == "open"


def _scope(peer: str, forwarded: str | None) -> dict[str, object]:
    headers = [] if forwarded is None else [(b"x-forwarded-for", forwarded.encode())]
    return {"client": (peer, 1234), "headers": headers}


def test_forwarded_for_counts_only_from_trusted_proxies() -> None:
    """The client address comes from X-Forwarded-For only when the peer is a trusted proxy."""
    trusted = proxy_networks(("10.0.0.0/8",))
    assert client_ip(_scope("10.0.0.2", "203.0.113.9"), trusted) == "203.0.113.9"
    assert client_ip(_scope("198.51.100.1", "203.0.113.9"), trusted) == "198.51.100.1"
    assert client_ip(_scope("10.0.0.2", "203.0.113.9"), ()) == "10.0.0.2"
    # A client cannot pick its own address by prepending entries: the nearest untrusted wins.
    spoofed = _scope("10.0.0.2", "1.2.3.4, 203.0.113.9, 10.0.0.7")
    assert client_ip(spoofed, trusted) == "203.0.113.9"


def test_a_bad_trusted_proxy_fails_at_startup(tmp_path: Path) -> None:
    """An entry that is no address or network is a ConfigError naming it."""
    file = tmp_path / "b.toml"
    file.write_text('[auth]\ntrusted_proxies = ["not-an-ip"]\n')
    with pytest.raises(ConfigError, match="not-an-ip"):
        load_config(file, env={})


def test_auth_settings_read_from_the_environment() -> None:
    """BREAKWATER_AUTH_<KEY> sets an [auth] key; lists are comma-separated."""
    config = load_config(
        None, env={"BREAKWATER_AUTH_MODE": "enforce", "BREAKWATER_AUTH_MFA_ROLES": "admin, ops"}
    )
    assert config.auth.mode == "enforce"
    assert config.auth.mfa_roles == ("admin", "ops")


def test_the_documented_example_config_loads() -> None:
    """docs/examples/breakwater.toml is valid, rules included."""
    config = load_config(EXAMPLE, env={})
    assert set(config.rules) == {"todos", "profiles"}
    assert config.rules["todos"].owner_field == "owner"


async def test_a_node_on_a_public_address_refuses_anonymous_access(make_client: object) -> None:
    """With no auth settings at all, a node bound to 0.0.0.0 enforces: 401 without a token,
    and a signed-in user still finds undeclared collections closed."""
    from collections.abc import Callable
    from typing import Any, cast

    client = await cast(Callable[..., Any], make_client)(host="0.0.0.0")
    assert (await client.get("/v1/collections/todos/docs/t1")).status_code == 401
    assert (await client.get("/v1/sync/pull")).status_code == 401
    signup = await client.post(
        "/v1/auth/signup", json={"email": "p@example.com", "password": "long enough"}
    )
    headers = {"Authorization": f"Bearer {signup.json()['access_token']}"}
    closed = await client.put("/v1/collections/todos/docs/t1", json={"a": 1}, headers=headers)
    assert closed.status_code == 403 and "no write rule" in closed.json()["detail"]
    assert (await client.get("/readyz")).status_code == 200
