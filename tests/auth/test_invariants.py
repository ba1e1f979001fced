"""Invariants under concurrency and over generated inputs: one refresh wins a race; a reader's
view of the feed never carries a document the rules refuse it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from breakwater.auth.identity import Identity
from breakwater.auth.policy import Policy
from breakwater.auth.records import RefreshToken
from breakwater.auth.rules import compile_rules
from breakwater.auth.sqlite_store import SqliteAuthStore


def test_concurrent_rotations_of_one_token_let_exactly_one_through(tmp_path: Path) -> None:
    """Of 8 threads refreshing one token at once, one rotates; the rest see reuse."""
    store = SqliteAuthStore(tmp_path / "auth.db")
    store.open()
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
    store.close()


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
