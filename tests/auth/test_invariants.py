"""Invariants under concurrency and over generated inputs: one refresh wins a race; a reader's
view of the feed never carries a document the rules refuse it."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from breakwater.auth.identity import Identity
from breakwater.auth.policy import Policy
from breakwater.auth.records import RefreshToken
from breakwater.auth.rules import compile_rules
from breakwater.auth.store import AuthStore
from tests.auth.backends import AUTH_BACKENDS, opened_auth_store, token_flags


@pytest.fixture(params=AUTH_BACKENDS)
def auth_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AuthStore]:
    """An open auth store of each backend."""
    with opened_auth_store(request.param, tmp_path) as store:
        yield store


def test_concurrent_rotations_of_one_token_let_exactly_one_through(auth_store: AuthStore) -> None:
    """Of 8 threads refreshing one token at once, one rotates; the rest see reuse."""
    store = auth_store
    store.add_refresh(RefreshToken("old", "fam", "u1", 0, 10**15))
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def rotate(index: int) -> None:
        barrier.wait()
        outcome, _ = store.rotate_refresh("old", RefreshToken(f"new{index}", "", "", 1, 10**15), 1)
        outcomes.append(outcome)

    threads = [threading.Thread(target=rotate, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["reused"] * 7 + ["rotated"]
    # The reuse revoked the family: the winner's new token is dead too.
    winner = next(f"new{i}" for i in range(8) if store.family_of(f"new{i}") is not None)
    assert store.rotate_refresh(winner, None, 2)[0] == "reused"


RULES = compile_rules(
    "notes",
    {"read": "auth.uid == doc.owner || (has(doc.public) && doc.public == true)"},
    "owner",
)
USERS = ["alice", "bob", "carol"]
documents = st.fixed_dictionaries(
    {"owner": st.sampled_from(USERS)},
    optional={"public": st.one_of(st.booleans(), st.integers(), st.text(max_size=3))},
)


def _change(index: int, data: dict[str, Any] | None, collection: str = "notes") -> dict[str, Any]:
    return {
        "origin": "r",
        "seq": index,
        "collection": collection,
        "id": f"d{index}",
        "op": "set" if data is not None else "delete",
        "mutation_id": f"m{index}",
        "hlc": "h",
        "deleted": data is None,
        "version": "v",
        "data": data,
    }


@settings(max_examples=200, deadline=None)
@given(
    reader=st.sampled_from([*USERS, None]),
    docs=st.lists(st.one_of(documents, st.none()), max_size=20),
    mode=st.sampled_from(["open", "enforce"]),
)
def test_a_readers_view_never_carries_a_refused_document(
    reader: str | None, docs: list[dict[str, Any] | None], mode: Any
) -> None:
    """Every change shown with data is one the oracle allows; refused ones become removals."""
    policy = Policy(mode, {"notes": RULES})
    identity = None if reader is None else Identity(reader)
    view = policy.viewer(identity, None)
    assert view is not None
    changes = [_change(i, d) for i, d in enumerate(docs)]
    changes.append(_change(len(docs), {"owner": "x"}, collection="other"))
    for change in changes:
        shown = view(change)
        data = change["data"]
        if change["collection"] == "other":
            assert (shown is not None) == (mode == "open")
            continue
        allowed = data is not None and (data["owner"] == reader or data.get("public") is True)
        assert shown is not None
        if data is None or allowed:
            assert shown == change
        else:
            assert shown["op"] == "remove" and shown["data"] is None and "owner" not in str(shown)


class RefreshModel(RuleBasedStateMachine):
    """The auth store's refresh tokens against a model: a token rotates once; any later use,
    or use after its family was revoked, is reuse and revokes the family; a token never issued
    is unknown."""

    backend = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.opened = opened_auth_store(self.backend, Path(self.tmp.name))
        self.store = self.opened.__enter__()
        self.family_of: dict[str, str] = {}
        self.used: set[str] = set()
        self.revoked: set[str] = set()
        self.counter = 0

    tokens = Bundle("tokens")

    def _name(self) -> str:
        self.counter += 1
        return f"t{self.counter}"

    @rule(target=tokens)
    def sign_in(self) -> str:
        token, family = self._name(), f"f{self.counter}"
        self.store.add_refresh(RefreshToken(token, family, "u", 0, 10**15))
        self.family_of[token] = family
        return token

    @rule(target=tokens, token=tokens)
    def refresh(self, token: str) -> str:
        new = self._name()
        outcome, _ = self.store.rotate_refresh(token, RefreshToken(new, "", "", 1, 10**15), 1)
        if token not in self.family_of:  # issued by nobody (a refused refresh's would-be token)
            assert outcome == "unknown"
            return new
        family = self.family_of[token]
        if token in self.used or family in self.revoked:
            assert outcome == "reused"
            self.revoked.add(family)
        else:
            assert outcome == "rotated"
            self.used.add(token)
            self.family_of[new] = family
        return new

    @rule(token=tokens)
    def sign_out(self, token: str) -> None:
        family = self.store.family_of(token)
        if token in self.family_of:
            assert family == self.family_of[token]
            self.store.revoke_family(family)
            self.revoked.add(family)

    @invariant()
    def live_tokens_match(self) -> None:
        for token, family in self.family_of.items():
            live = token not in self.used and family not in self.revoked
            # A live token is one that would rotate; probe without changing state.
            used, revoked = token_flags(self.store, token)
            assert live == (not used and not revoked)

    def teardown(self) -> None:
        self.opened.__exit__(None, None, None)
        self.tmp.cleanup()


class PostgresRefreshModel(RefreshModel):
    """The same model against the PostgreSQL auth store."""

    backend = "postgres"


RefreshModel.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
PostgresRefreshModel.TestCase.settings = settings(
    max_examples=10, stateful_step_count=25, deadline=None
)
test_refresh_tokens_follow_the_model = RefreshModel.TestCase
test_postgres_refresh_tokens_follow_the_model = PostgresRefreshModel.TestCase
