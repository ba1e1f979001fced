"""The regions of a deployment as one node sees them: its own state and its peers.

A node replicates from every peer region by pulling (docs/adr/0022-replication.md). The
configuration names each peer, where to pull (``urls``), where its devices connect
(``public_urls``) and the replication key that peer issued to this region. The state given here
is only the region's *initial* state: a promotion is kept in the store, so it survives restarts
and every node of the region agrees on it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from breakwater.core.errors import ConfigError
from breakwater.core.incarnation import REGION_PATTERN

RegionState = Literal["active", "standby"]
REGION_STATES: tuple[RegionState, ...] = ("active", "standby")
MAX_PEERS = 32
MAX_BUCKETS = 4096
"""Anti-entropy buckets per collection at most (a digest answer stays below a megabyte)."""
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


@dataclass(frozen=True)
class Peer:
    """A peer region: where to pull its changes and the key that region issued to us."""

    name: str
    urls: tuple[str, ...]
    public_urls: tuple[str, ...]
    key: str = field(default="", repr=False)
    """Secret: never logged (``repr`` leaves it out)."""


@dataclass(frozen=True)
class Topology:
    """This region's initial state, its public URLs and its peers (empty: one region)."""

    state: RegionState = "active"
    public_urls: tuple[str, ...] = ()
    peers: Mapping[str, Peer] = field(default_factory=dict)
    pull_limit: int = 500
    """Changes per replication page a replicator asks for."""
    pull_wait: float = 10.0
    """Seconds a replication long-poll waits at a peer that has nothing new."""
    write_concern_timeout: float = 5.0
    """Longest wait of a write with ``write_concern = replicated`` before it is answered."""
    lease_ttl: float = 4.0
    """Seconds a replicator's lease lasts without renewal; another node takes over after it."""
    anti_entropy_interval: float = 600.0
    """Seconds between anti-entropy rounds with each peer (0: never)."""
    anti_entropy_buckets: int = 256
    """Hash buckets per collection that anti-entropy digests compare."""

    @property
    def peer_regions(self) -> frozenset[str]:
        """The names of the peer regions."""
        return frozenset(self.peers)


_TOPOLOGY_KEYS = {
    "state",
    "public_urls",
    "peers",
    "pull_limit",
    "pull_wait",
    "write_concern_timeout",
    "lease_ttl",
    "anti_entropy_interval",
    "anti_entropy_buckets",
}
_PEER_KEYS = {"urls", "public_urls", "key"}


def parse_topology(raw: Any, env: Mapping[str, str], region: str, host: str, port: int) -> Topology:
    """The ``[topology]`` table, checked against this node's ``region`` and ``host:port``.

    ``BREAKWATER_TOPOLOGY_PEERS_<NAME>_KEY`` (name upper-cased, ``-.:`` as ``_``) overrides a
    peer's key, so that secrets can stay out of the file.
    """
    if not isinstance(raw, dict):
        raise ConfigError("topology must be a table")
    unknown = set(raw) - _TOPOLOGY_KEYS
    if unknown:
        raise ConfigError(f"topology: unknown settings {sorted(unknown)}")
    state = raw.get("state", "active")
    if state not in REGION_STATES:
        raise ConfigError(f"topology.state = {state!r} is not active or standby")
    public_urls = _urls("topology.public_urls", raw.get("public_urls", []), required=False)
    raw_peers = raw.get("peers", {})
    if not isinstance(raw_peers, dict):
        raise ConfigError("topology.peers must be a table of tables, one per peer region")
    if len(raw_peers) > MAX_PEERS:
        raise ConfigError(f"topology.peers names {len(raw_peers)} regions; at most {MAX_PEERS}")
    peers: dict[str, Peer] = {}
    seen: dict[str, str] = {}
    for name, settings in raw_peers.items():
        if name.lower() == region.lower():
            raise ConfigError(f"topology.peers.{name}: a peer named like this region {region!r}")
        peers[name] = _peer(name, settings, env, seen, host, port)
    numbers = {}
    for key, default in (("pull_limit", 500), ("pull_wait", 10.0)):
        numbers[key] = _positive(f"topology.{key}", raw.get(key, default), type(default))
    for key, default in (("write_concern_timeout", 5.0), ("lease_ttl", 4.0)):
        numbers[key] = _positive(f"topology.{key}", raw.get(key, default), float)
    interval = raw.get("anti_entropy_interval", 600.0)
    if interval != 0:
        interval = _positive("topology.anti_entropy_interval", interval, float)
    buckets = _positive("topology.anti_entropy_buckets", raw.get("anti_entropy_buckets", 256), int)
    if buckets > MAX_BUCKETS:
        raise ConfigError(f"topology.anti_entropy_buckets = {buckets} is above {MAX_BUCKETS}")
    return Topology(
        state=state,
        public_urls=public_urls,
        peers=peers,
        anti_entropy_interval=float(interval),
        anti_entropy_buckets=buckets,
        **numbers,
    )


def _peer(
    name: str, settings: Any, env: Mapping[str, str], seen: dict[str, str], host: str, port: int
) -> Peer:
    where = f"topology.peers.{name}"
    if not REGION_PATTERN.fullmatch(name):
        raise ConfigError(f"{where}: the region name must match {REGION_PATTERN.pattern}")
    folded = name.lower()
    if folded in seen:
        raise ConfigError(f"{where}: two peers named {seen[folded]!r} and {name!r}")
    seen[folded] = name
    if not isinstance(settings, dict):
        raise ConfigError(f"{where} must be a table with keys {sorted(_PEER_KEYS)}")
    unknown = set(settings) - _PEER_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown settings {sorted(unknown)}")
    urls = _urls(f"{where}.urls", settings.get("urls"), required=True)
    for url in urls:
        if _is_own_address(url, host, port):
            raise ConfigError(f"{where}.urls names {url!r}: that is this node itself")
    public = _urls(f"{where}.public_urls", settings.get("public_urls", list(urls)), required=False)
    key = settings.get("key", "")
    env_key = f"BREAKWATER_TOPOLOGY_PEERS_{_env_name(name)}_KEY"
    if env.get(env_key):
        key = env[env_key]
    if not isinstance(key, str):
        raise ConfigError(f"{where}.key must be a string (the API key that region issued)")
    return Peer(name=name, urls=urls, public_urls=public or urls, key=key)


def _env_name(region: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in region).upper()


def _urls(where: str, value: Any, *, required: bool) -> tuple[str, ...]:
    if value is None or (required and value == []):
        raise ConfigError(f"{where} must list at least one http(s) URL")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of http(s) URLs")
    for url in value:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (raises ValueError on a bad port)
        except ValueError:
            raise ConfigError(f"{where} names {url!r}: not a valid URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{where} names {url!r}: not an http(s) URL with a host")
        if parts.query or parts.fragment or "@" in parts.netloc:
            raise ConfigError(f"{where} names {url!r}: no credentials, query or fragment")
    return tuple(url.rstrip("/") for url in value)


def _positive(where: str, value: Any, kind: type) -> Any:
    valid = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int and not isinstance(value, int):
        valid = False
    if not valid or value <= 0:
        raise ConfigError(f"{where} = {value!r} must be a positive {kind.__name__}")
    return kind(value)


def _is_own_address(url: str, host: str, port: int) -> bool:
    """True when ``url`` reaches this node's own listening socket (same port, same host)."""
    parts = urlsplit(url)
    url_port = parts.port or (443 if parts.scheme == "https" else 80)
    if url_port != port:
        return False
    target = (parts.hostname or "").lower()
    own = host.lower()
    if target == own:
        return True
    if own in ("0.0.0.0", "::", ""):
        return _is_loopback(target)
    return _is_loopback(target) and _is_loopback(own)


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
