"""The SSRF guard: which receiver URLs a subscription may name and which addresses are called."""

from __future__ import annotations

import pytest

from breakwater.core.errors import ValidationError
from breakwater.server.webhooks.targets import TargetRefused, check_target, check_url, is_public


@pytest.mark.parametrize(
    "url",
    [
        None,
        "",
        42,
        "ftp://example.com/hook",
        "/relative/path",
        "http://",
        "http://user:pw@example.com/hook",
        "http://example.com:99999/hook",
        "http://exa mple.com/hook",
        "http://bücher.example/hook",
        "http://example.com/" + "a" * 2100,
    ],
)
def test_a_url_that_is_not_an_absolute_http_url_is_refused(url: object) -> None:
    """Subscriptions name absolute http(s) URLs without credentials."""
    with pytest.raises(ValidationError):
        check_url(url)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # CGNAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fd00::1", False),
        ("fe80::1%eth0", False),
        ("::ffff:127.0.0.1", False),
        ("93.184.216.34", True),
        ("2606:4700:4700::1111", True),
    ],
)
def test_only_globally_routable_addresses_are_public(address: str, public: bool) -> None:
    """Loopback, private, link-local, CGNAT, multicast and mapped private addresses are not."""
    assert is_public(address) is public


async def test_a_loopback_receiver_is_refused_unless_private_targets_are_allowed() -> None:
    """By default the node does not call an address inside the network; the option allows it."""
    with pytest.raises(TargetRefused, match="non-public"):
        await check_target("http://127.0.0.1:9/hook", allow_private=False)
    await check_target("http://127.0.0.1:9/hook", allow_private=True)
