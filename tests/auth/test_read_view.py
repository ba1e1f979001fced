"""How a query leaves out what a caller may not read: an owner rule becomes a store filter that
selects exactly the documents the rule allows; other rules are evaluated row by row, and the
feed's view of a refused document depends on nothing in it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from breakwater.auth.identity import Identity
from breakwater.auth.policy import EVERYTHING, NOTHING, Policy
from breakwater.auth.rules import READ_VARIABLES, Rule, compile_rules
from breakwater.core.query import Filter

ALICE = Identity("a1b2c3")


def _policy(read: str, mode: Any = "enforce") -> Policy:
    return Policy(mode, {"notes": compile_rules("notes", {"read": read}, "owner")})


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ("doc.owner == auth.uid", "owner"),
        ("auth.uid == doc.owner", "owner"),
        ("  doc.author_1==auth.uid ", "author_1"),
        ("auth != null && doc.owner == auth.uid", "owner"),
        ("doc.owner == auth.uid || doc.public == true", None),
        ("doc.owner.id == auth.uid", None),
        ("doc.owner != auth.uid", None),
        ("auth.uid == doc.owner && doc.shared", None),
        ("doc.owner == auth.kind", None),
    ],
)
def test_only_a_bare_owner_comparison_is_an_owner_rule(source: str, field: str | None) -> None:
    """``uid_field`` is set for ``doc.F == auth.uid`` alone, never for a wider expression."""
    assert Rule(source, "test", READ_VARIABLES).uid_field == field


def test_an_owner_rule_is_a_store_filter_on_the_callers_uid() -> None:
    """The store selects the caller's documents; nothing is left to check row by row."""
    view = _policy("doc.owner == auth.uid").read_view(ALICE, "notes")
    assert view.filters == (Filter("owner", "eq", "a1b2c3"),)
    assert view.visible is None and view.key == "" and not view.nothing


def test_an_owner_rule_shows_a_caller_without_credentials_nothing() -> None:
    """Without ``auth`` the rule errs (denies) for every document: the store is not asked."""
    assert _policy("doc.owner == auth.uid", mode="open").read_view(None, "notes") is NOTHING


def test_a_uid_the_store_could_compare_differently_is_checked_row_by_row() -> None:
    """A uid that looks like JSON text falls back to the rule itself, which stays exact."""
    view = _policy("doc.owner == auth.uid").read_view(Identity('["x"]'), "notes")
    assert view.filters == () and view.visible is not None
    assert view.visible({"owner": '["x"]'}) and not view.visible({"owner": ["x"]})


def test_other_rules_run_in_the_scan_and_key_cached_pages_by_caller() -> None:
    """A wider rule is applied per row, and its cached pages are the caller's own."""
    policy = _policy("doc.owner == auth.uid || doc.public == true")
    view = policy.read_view(ALICE, "notes")
    assert view.filters == () and view.visible is not None
    assert view.visible({"owner": "zz", "public": True})
    assert not view.visible({"owner": "zz", "public": False})
    assert view.key != policy.read_view(Identity("other"), "notes").key


@pytest.mark.parametrize(
    ("policy", "identity", "expected"),
    [
        (_policy("true"), ALICE, EVERYTHING),
        (_policy("false"), ALICE, NOTHING),
        (
            _policy("auth != null && 'editor' in auth.roles"),
            Identity("e", roles=("editor",)),
            EVERYTHING,
        ),
        (_policy("auth != null && 'editor' in auth.roles"), ALICE, NOTHING),
        (Policy("open"), None, EVERYTHING),
        (Policy("enforce"), ALICE, NOTHING),
        (
            _policy("false"),
            Identity("key:k", kind="key", scopes=frozenset({"read:notes"})),
            EVERYTHING,
        ),
        (_policy("true"), Identity("key:k", kind="key", scopes=frozenset({"read:x"})), NOTHING),
    ],
)
def test_constant_answers_need_no_scan(
    policy: Policy, identity: Identity | None, expected: Any
) -> None:
    """Constant rules, rules on the caller alone, open collections and API key scopes decide
    for the whole collection."""
    assert policy.read_view(identity, "notes") is expected


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=2), inner),
    max_leaves=4,
)


@settings(max_examples=300, deadline=None)
@given(
    uid=st.from_regex(r"[A-Za-z0-9_.:-]{1,8}", fullmatch=True),
    owner=st.one_of(JSON_VALUES, st.just("SAME")),
    present=st.booleans(),
)
def test_the_owner_filter_selects_exactly_what_the_rule_allows(
    uid: str, owner: Any, present: bool
) -> None:
    """For any owner value, the rule allows a document exactly when the filter (the field is
    the string uid) selects it, so the store's answer is the rule's."""
    owner = uid if owner == "SAME" else owner
    rule = Rule("doc.owner == auth.uid", "test", READ_VARIABLES)
    doc = {"owner": owner} if present else {}
    allowed = rule.allows({"auth": Identity(uid).rule_context(), "doc": doc})
    assert allowed == (present and isinstance(owner, str) and owner == uid)


@settings(max_examples=200, deadline=None)
@given(first=st.dictionaries(st.text(max_size=3), JSON_VALUES, max_size=3), second=st.integers())
def test_the_feeds_view_of_a_refused_document_depends_on_nothing_in_it(
    first: dict[str, Any], second: int
) -> None:
    """Pulls and streams show a refused document as the same removal whatever its data."""
    view = _policy("doc.owner == auth.uid").viewer(ALICE, None)
    assert view is not None

    def change(data: dict[str, Any], version: str) -> dict[str, Any]:
        return {
            "origin": "r",
            "seq": 5,
            "collection": "notes",
            "id": "b1",
            "op": "set",
            "mutation_id": version,
            "hlc": version,
            "deleted": False,
            "version": version,
            "data": {**data, "owner": "bob"},
        }

    assert view(change(first, "v1")) == view(change({"n": second}, "v2"))
