"""The access policy of a node: who may touch which collection, and which documents in it.

Two modes (docs/adr/0007-auth-defaults.md):

- ``enforce``: every data request needs a credential (401 without one); a collection is closed
  for an action unless its config declares a rule for that action (``"true"`` opens it).
- ``open``: credentials are optional (but a bad one is still 401); collections without a rule
  for an action are open to everyone, and declared rules are enforced as in ``enforce``.

API keys are checked against their scopes only. Users are checked against the rules; a user
whose role requires MFA and who did not sign in with it is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from breakwater.auth.identity import Identity
from breakwater.auth.rules import CollectionRules, Rule
from breakwater.core.canonical import dumps_canonical
from breakwater.core.errors import Forbidden, Unauthorized
from breakwater.core.query import Filter, Visible

UID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}", re.ASCII)
"""A uid a store compares exactly as the rule does (no NUL, nothing that looks like JSON)."""

Mode = Literal["open", "enforce"]
Action = Literal["read", "write"]
Change = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReadView:
    """What one caller may read of one collection, in the forms a query needs
    (docs/adr/0016-queries-under-read-rules.md).

    A query runs with ``filters`` added (conditions every readable document meets, so the
    store selects only those rows) and ``visible`` applied to each remaining row inside the
    scan (``None``: every selected row is readable). ``nothing``: the caller may read no
    document, so the store is not asked. ``key`` names the caller's view for cached pages: it
    is empty when the page depends on the query alone, else the caller's rule context.
    """

    filters: tuple[Filter, ...] = ()
    visible: Visible | None = None
    nothing: bool = False
    key: str = ""


EVERYTHING = ReadView()
NOTHING = ReadView(nothing=True)


@dataclass(frozen=True)
class Policy:
    """The resolved mode, the rules per collection and the roles that must use MFA."""

    mode: Mode = "open"
    rules: Mapping[str, CollectionRules] = field(default_factory=dict)
    mfa_roles: frozenset[str] = frozenset()

    def _rule(self, collection: str, action: Action) -> Rule | None:
        rules = self.rules.get(collection)
        if rules is None:
            return None
        return rules.read if action == "read" else rules.write

    def admit(self, identity: Identity | None, collection: str, action: Action) -> None:
        """Refuse a request that may not touch ``collection`` for ``action`` at all."""
        self.admit_caller(identity)
        if identity is not None and identity.kind == "key":
            if not identity.allows_scope(action, collection):
                raise Forbidden(f"the API key has no {action} scope on {collection!r}")
            return
        if self.mode == "enforce" and self._rule(collection, action) is None:
            raise Forbidden(f"collection {collection!r} has no {action} rule; access is closed")

    def admit_caller(self, identity: Identity | None) -> None:
        """Refuse a caller that may not use data endpoints at all (no credential, MFA missing)."""
        if identity is None:
            if self.mode == "enforce":
                raise Unauthorized("this node requires a bearer token or an API key")
            return
        if identity.kind == "user" and not identity.mfa and self.mfa_roles & set(identity.roles):
            raise Forbidden("your role requires multi-factor sign-in", mfa_required=True)

    def admit_admin(self, identity: Identity | None) -> Identity:
        """The caller, if it may use the admin endpoints (an admin key or an admin user)."""
        if identity is None:
            raise Unauthorized("the admin endpoints require an admin API key or an admin's token")
        self.admit_caller(identity)
        if not identity.is_admin:
            raise Forbidden("the admin endpoints are for admin API keys and the admin role")
        return identity

    def may_read(self, identity: Identity | None, collection: str, data: Mapping[str, Any]) -> bool:
        """True when the caller may read this document (the collection already admitted)."""
        return self.reader(identity, collection)(data)

    def reader(
        self, identity: Identity | None, collection: str
    ) -> Callable[[Mapping[str, Any]], bool]:
        """``may_read`` for many documents of one collection (the caller converted once)."""
        if identity is not None and identity.kind == "key":
            allowed = identity.allows_scope("read", collection)
            return lambda data: allowed
        rule = self._rule(collection, "read")
        if rule is None:
            return lambda data: self.mode == "open"
        bound = rule.bind({"auth": _auth(identity)})
        return lambda data: bound.allows({"doc": data})

    def filters_reads(self, identity: Identity | None, collection: str) -> bool:
        """True when the read rule may hide some documents of ``collection`` from the caller."""
        if identity is not None and identity.kind == "key":
            return False
        rule = self._rule(collection, "read")
        return rule is not None and rule.constant is not True

    def read_view(self, identity: Identity | None, collection: str) -> ReadView:
        """How a query of ``collection`` by the caller leaves out what it may not read."""
        if identity is not None and identity.kind == "key":
            return EVERYTHING if identity.allows_scope("read", collection) else NOTHING
        rule = self._rule(collection, "read")
        if rule is None:
            return EVERYTHING if self.mode == "open" else NOTHING
        auth = _auth(identity)
        bound = rule.bind({"auth": auth})
        if not rule.reads_doc:  # ``true``, ``false``, or a rule on the caller alone
            return EVERYTHING if bound.allows({}) else NOTHING
        if rule.uid_field is not None:
            # ``doc.F == auth.uid``: without a caller the rule allows nothing; with one, the
            # store selects exactly the caller's documents.
            if identity is None:
                return NOTHING
            if UID_PATTERN.fullmatch(identity.uid):
                return ReadView(filters=(Filter(rule.uid_field, "eq", identity.uid),))
        return ReadView(
            visible=lambda data: bound.allows({"doc": data}),
            key=dumps_canonical(auth).decode(),
        )

    def guard(self, identity: Identity | None, collection: str) -> WriteCheck | None:
        """The write guard for a mutation on ``collection`` (``None``: nothing to check)."""
        if identity is not None and identity.kind == "key":
            return None
        rules = self.rules.get(collection)
        if rules is None or (rules.write is None and rules.owner_field is None):
            return None
        return WriteCheck(identity, rules)

    def viewer(
        self, identity: Identity | None, collections: Collection[str] | None
    ) -> Callable[[Change], Change | None] | None:
        """What a reader of the feed gets of each change (``None``: every change as it is).

        A change of a collection the caller may not read at all is dropped; a change of a
        document the caller may not read is replaced by a *removal* (so that a document that
        leaves the caller's view is removed from the device); tombstones pass.
        """
        if identity is not None and identity.kind == "key":
            if ADMIN in identity.scopes or "read:*" in identity.scopes:
                return None
            return lambda change: (
                change if identity.allows_scope("read", change["collection"]) else None
            )
        if self.mode == "open" and not any(r.read is not None for r in self.rules.values()):
            return None
        auth = {"auth": _auth(identity)}
        bound = {name: rules.read.bind(auth) for name, rules in self.rules.items() if rules.read}

        def view(change: Change) -> Change | None:
            rule = bound.get(change["collection"])
            if rule is None:
                return change if self.mode == "open" else None
            data = change["data"]
            if data is None or rule.allows({"doc": data}):
                return change
            return removal(change)

        return view


ADMIN = "admin"


def removal(change: Change) -> Change:
    """A change that tells a reader to drop a document it may no longer see (nothing of it)."""
    return {
        "origin": change["origin"],
        "seq": change["seq"],
        "collection": change["collection"],
        "id": change["id"],
        "op": "remove",
        "mutation_id": "",
        "hlc": "",
        "deleted": True,
        "version": "",
        "data": None,
    }


def _auth(identity: Identity | None) -> dict[str, Any] | None:
    return None if identity is None else identity.rule_context()


class WriteCheck:
    """The :class:`~breakwater.core.mutation.WriteGuard` of one user's write."""

    __slots__ = ("identity", "rules")

    def __init__(self, identity: Identity | None, rules: CollectionRules) -> None:
        self.identity = identity
        self.rules = rules

    def prepare(
        self, before: dict[str, Any] | None, op: str, data: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """Fill the owner field on create, keep it on update; refuse a client-set value."""
        owner = self.rules.owner_field
        if owner is None or data is None:
            return data
        if before is not None and owner in before:
            expected: Any = before[owner]
        elif self.identity is not None:
            expected = self.identity.uid
        else:
            raise Forbidden(f"{owner!r} is set from the signed-in user; sign in to create")
        if owner in data and (op == "increment" or data[owner] != expected):
            raise Forbidden(f"{owner!r} is set by the server and cannot be changed", field=owner)
        if op == "set" or (op == "patch" and before is None):
            return {**data, owner: expected}
        return data

    def check(self, before: dict[str, Any] | None, after: dict[str, Any] | None, op: str) -> None:
        """Evaluate the collection's write rule on the document after the write."""
        rule = self.rules.write
        if rule is None:
            return
        context = {
            "auth": _auth(self.identity),
            "doc": after if after is not None else before,
            "before": before,
            "op": op,
        }
        if not rule.allows(context):
            raise Forbidden("the collection's write rule refuses this change")
