"""The ``[auth]`` settings of a node (every key also reads from ``BREAKWATER_AUTH_<KEY>``)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal

from breakwater.auth.external_settings import ExternalIssuerSettings, OidcSettings
from breakwater.auth.policy import Mode

ModeSetting = Literal["auto", "open", "enforce"]
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


@dataclass(frozen=True)
class AuthSettings:
    """Authentication, token lifetimes and abuse limits. Rates are per second; 0 turns one off."""

    mode: ModeSetting = "auto"
    audience: str = "breakwater"
    access_ttl: float = 900.0
    refresh_ttl: float = 30 * 86_400.0
    signing_keys_file: str = ""
    mfa_roles: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    rate_per_ip: float = 1000.0
    burst_per_ip: int = 2000
    rate_per_user: float = 500.0
    burst_per_user: int = 1000
    rate_global: float = 0.0
    burst_global: int = 10_000
    rate_per_key: float = 1000.0
    burst_per_key: int = 2000
    rate_auth_per_ip: float = 5.0
    burst_auth_per_ip: int = 20
    rate_signin_failures_per_address: float = 1 / 300
    burst_signin_failures_per_address: int = 10
    rate_signin_failures_per_account: float = 1 / 60
    burst_signin_failures_per_account: int = 100
    signin_known_address_days: float = 30.0
    max_realtime_per_user: int = 20
    password_memory_kib: int = 19 * 1024
    password_time_cost: int = 2
    oidc: OidcSettings = field(default_factory=OidcSettings)
    """``[auth.oidc]``: OpenID Connect providers to sign in with."""
    external: tuple[ExternalIssuerSettings, ...] = ()
    """``[auth.external.NAME]``: issuers whose access tokens are accepted."""

    def resolved_mode(self, host: str) -> Mode:
        """``auto`` is ``open`` on a loopback address and ``enforce`` on any other."""
        if self.mode != "auto":
            return self.mode
        return "open" if is_loopback(host) else "enforce"


def proxy_networks(
    proxies: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The networks of ``trusted_proxies`` (a bare address is a one-address network).

    Raises ``ValueError`` naming the entry that is neither.
    """
    networks = []
    for entry in proxies:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(
                f"auth.trusted_proxies: {entry!r} is not an address or network"
            ) from None
    return tuple(networks)


def within(
    address: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> bool:
    """True when ``address`` is an IP address inside one of ``networks`` (e.g. a trusted proxy)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def is_loopback(host: str) -> bool:
    """True for ``127.0.0.0/8``, ``::1`` and ``localhost``."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
