"""Which buckets a request takes from, and that a signed-in caller's needs no address pseudonym."""

from __future__ import annotations

from collections.abc import Sequence

from breakwater.auth.identity import Identity
from breakwater.auth.settings import AuthSettings
from breakwater.cache.buckets import Limit, MemoryBuckets
from breakwater.obs.metrics import Metrics
from breakwater.server.rate_limit import REMEMBERED_NAMES, Pseudonyms, RateLimiter


class CountingPseudonyms(Pseudonyms):
    """Pseudonyms that count how often one is computed (each is an HMAC)."""

    def __init__(self) -> None:
        super().__init__(b"k" * 32)
        self.computed = 0

    def of(self, kind: str, value: str) -> str:
        self.computed += 1
        return super().of(kind, value)


def limiter() -> tuple[RateLimiter, CountingPseudonyms]:
    names = CountingPseudonyms()
    return RateLimiter(AuthSettings(), Metrics(), MemoryBuckets(), names), names


def keys(limits: Sequence[tuple[str, Limit]]) -> list[tuple[str, str]]:
    """Scope and bucket key of each limit but the global one (off by default)."""
    return [(scope, limit.key) for scope, limit in limits if scope != "global"]


def test_a_signed_in_callers_request_takes_no_address_pseudonym() -> None:
    rate_limiter, names = limiter()
    user, key = Identity("u1"), Identity("svc", kind="key")
    assert keys(rate_limiter.limits(user, "10.0.0.1", "/v1/sync/push")) == [("user", "u:u1")]
    assert keys(rate_limiter.limits(key, "10.0.0.1", "/v1/sync/push")) == [("key", "k:svc")]
    auth = rate_limiter.limits(user, "10.0.0.1", "/v1/auth/sessions")
    assert keys(auth) == [("user", "u:u1"), ("auth", "a:u:u1")]
    assert names.computed == 0


def test_anonymous_and_sign_in_requests_are_keyed_by_the_address_pseudonym() -> None:
    rate_limiter, names = limiter()
    address = names.of("ip", "10.0.0.1")
    anonymous = rate_limiter.limits(None, "10.0.0.1", "/v1/sync/push")
    assert keys(anonymous) == [("ip", f"ip:{address}")]
    sign_in = rate_limiter.limits(Identity("u1"), "10.0.0.1", "/v1/auth/login")
    assert keys(sign_in) == [
        ("ip", f"ip:{address}"),
        ("auth", f"a:ip:{address}"),
    ]


class CountingDigests(Pseudonyms):
    """Pseudonyms that count the HMACs they compute."""

    def __init__(self) -> None:
        super().__init__(b"k" * 32)
        self.digests = 0

    def _digest(self, kind: str, value: str) -> str:
        self.digests += 1
        return super()._digest(kind, value)


def test_an_address_heard_again_reuses_its_pseudonym() -> None:
    """A second request from one address computes no second HMAC, and gets the same name."""
    names = CountingDigests()
    first = names.of("ip", "10.0.0.1")
    assert names.of("ip", "10.0.0.1") == first
    assert names.digests == 1
    assert names.of("email", "10.0.0.1") != first  # the kind is part of the name
    assert names.digests == 2


def test_remembered_pseudonyms_are_bounded_and_stay_the_same() -> None:
    """Past the bound the names are computed again, and come out the same."""
    names = CountingDigests()
    first = names.of("ip", "a0")
    for index in range(1, REMEMBERED_NAMES + 1):
        names.of("ip", f"a{index}")
    assert names.digests == REMEMBERED_NAMES + 1
    assert names.of("ip", "a0") == first
    assert names.digests == REMEMBERED_NAMES + 2
    assert Pseudonyms(b"k" * 32).of("ip", "a0") == first


def test_a_repeat_callers_limits_are_built_once() -> None:
    """A second request of the same caller to the same kind of path reuses the first's list."""
    rate_limiter, names = limiter()
    first = rate_limiter.limits(None, "10.0.0.1", "/v1/sync/push")
    assert rate_limiter.limits(None, "10.0.0.1", "/v1/docs/a") is first
    assert names.computed == 1
    user = rate_limiter.limits(Identity("u1"), "10.0.0.1", "/v1/sync/push")
    assert rate_limiter.limits(Identity("u1"), "10.0.0.2", "/v1/sync/push") is user


def test_remembered_limits_follow_the_callers_kind_address_and_path() -> None:
    """The same uid as a user and as an API key, an auth path or not, another address: each
    is remembered apart, with the buckets a list built per request would have."""
    rate_limiter, _ = limiter()
    callers = [
        (Identity("u1"), "10.0.0.1", "/v1/sync/push", [("user", "u:u1")]),
        (Identity("u1", kind="key"), "10.0.0.1", "/v1/sync/push", [("key", "k:u1")]),
        (Identity("u1"), "10.0.0.1", "/v1/auth/sessions", [("user", "u:u1"), ("auth", "a:u:u1")]),
    ]
    for caller, ip, path, expected in callers * 2:
        assert keys(rate_limiter.limits(caller, ip, path)) == expected
    one = rate_limiter.limits(None, "10.0.0.1", "/v1/sync/push")
    other = rate_limiter.limits(None, "10.0.0.2", "/v1/sync/push")
    assert keys(one) != keys(other)
    assert rate_limiter.limits(None, "10.0.0.2", "/v1/sync/push") is other


def test_remembered_limits_are_bounded_and_stay_the_same() -> None:
    """Past the bound the lists are built again, with the same buckets."""
    rate_limiter, _ = limiter()
    first = rate_limiter.limits(None, "a0", "/v1/sync/push")
    assert rate_limiter.limits(None, "a0", "/v1/sync/push") is first
    for index in range(1, REMEMBERED_NAMES + 1):
        rate_limiter.limits(None, f"a{index}", "/v1/sync/push")
    again = rate_limiter.limits(None, "a0", "/v1/sync/push")
    assert again is not first
    assert again == first
