"""Which receiver URLs a node accepts and calls: the SSRF guard.

A webhook makes the node send requests to an address an admin typed, from inside the network.
By default only public (globally routable) addresses are called: loopback, private, link-local
(cloud metadata at 169.254.169.254), CGNAT, multicast and reserved ranges are refused, checked on
the addresses the name resolves to before every attempt. ``webhook_allow_private = true`` lifts
that for receivers inside the network (and tests on loopback). A name that resolves to a public
address at the check and to a private one at the connection (DNS rebinding) is not caught here:
docs/security.md says to put an egress proxy or firewall in front where that matters.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from breakwater.core.errors import ValidationError

MAX_URL_LENGTH = 2048


class TargetRefused(Exception):
    """The receiver's address is one this node does not call."""


def check_url(url: object) -> str:
    """``url`` if it is an absolute http(s) URL a subscription may name; else ValidationError."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise ValidationError(f"url must be an http(s) URL of at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        raise ValidationError("url is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("url must be an absolute http:// or https:// URL")
    if parts.username or parts.password:
        raise ValidationError("url must not carry credentials (the signature authenticates)")
    if not url.isascii() or any(c.isspace() for c in url):
        raise ValidationError("url must be ASCII without spaces (punycode a name)")
    return url


def is_public(address: str) -> bool:
    """True for a globally routable address (an IPv4-mapped IPv6 address is judged as IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def check_target(url: str, allow_private: bool) -> None:
    """Raise ``TargetRefused`` unless every address ``url``'s host resolves to may be called."""
    if allow_private:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TargetRefused(f"the receiver's host does not resolve ({exc.strerror})") from None
    for info in infos:
        address = str(info[4][0])
        if not is_public(address):
            raise TargetRefused(
                f"the receiver resolves to a non-public address {address}"
                " (set webhook_allow_private to call receivers inside the network)"
            )
