"""Mailed one-time tokens in both auth stores: single use under concurrency, and a model of
issue and use (purpose, expiry, older links dying with a newer one) checked by hypothesis."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breakwater.auth.records import OneTimeToken
from breakwater.auth.store import AuthStore
from tests.auth.backends import AUTH_BACKENDS, opened_auth_store

PURPOSES = ("verify", "reset", "email")


@pytest.fixture(params=AUTH_BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AuthStore]:
    with opened_auth_store(request.param, tmp_path) as opened:
        yield opened


def test_of_racing_uses_of_one_token_exactly_one_wins(store: AuthStore) -> None:
    """Eight threads spend the same token at once: one gets its record, seven get None."""
    store.add_one_time(OneTimeToken("h", "reset", "u1", "a@x.io", 0, 10**13))
    barrier = threading.Barrier(8)
    results: list[OneTimeToken | None] = []

    def use() -> None:
        barrier.wait()
        results.append(store.use_one_time("h", "reset", 1))

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r is not None for r in results) == [False] * 7 + [True]


issue = st.tuples(
    st.just("issue"), st.sampled_from(["u1", "u2"]), st.sampled_from(PURPOSES), st.integers(0, 20)
)
use = st.tuples(st.just("use"), st.integers(0, 30), st.sampled_from(PURPOSES), st.integers(0, 20))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(st.one_of(issue, use), max_size=25))
def test_the_store_behaves_like_the_model(
    store: AuthStore, steps: list[tuple[str, object, str, int]]
) -> None:
    """A use gets the record only of a live token of its purpose; any use of an existing token
    of that purpose removes every token of that user and purpose (expired or not); a new token
    removes the user's expired ones of its purpose."""
    prefix = f"{uuid.uuid4().hex}-"  # the store outlives one example: names of this one only
    live: dict[str, OneTimeToken] = {}
    issued = 0
    for kind, who, purpose, time in steps:
        if kind == "issue":
            token = OneTimeToken(f"{prefix}{issued}", purpose, f"{prefix}{who}", "a@x.io", 0, time)
            issued += 1
            store.add_one_time(token)
            live = {
                h: t
                for h, t in live.items()
                if (t.uid, t.purpose) != (token.uid, purpose) or t.expires_ms > token.created_ms
            }
            live[token.token_hash] = token
            continue
        name = f"{prefix}{who}"
        found = live.get(name)
        expected = found if found and found.purpose == purpose and found.expires_ms > time else None
        assert store.use_one_time(name, purpose, time) == expected
        if found is not None and found.purpose == purpose:
            live = {h: t for h, t in live.items() if (t.uid, t.purpose) != (found.uid, purpose)}
    # What the model still holds is in the store: one use per user and purpose gets its token
    # (a time before every expiry), and takes the rest of its group with it.
    groups: dict[tuple[str, str], list[OneTimeToken]] = {}
    for token in live.values():
        groups.setdefault((token.uid, token.purpose), []).append(token)
    for first, *others in groups.values():
        assert store.use_one_time(first.token_hash, first.purpose, -1) == first
        for other in others:
            assert store.use_one_time(other.token_hash, other.purpose, -1) is None
