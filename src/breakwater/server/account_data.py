"""A user's data across the document store: exported (GDPR access) or deleted with the account.

What is "the user's" is what the access rules already say: the documents of every collection
with an ``owner`` field whose owner is the user's uid. Deletion goes through the node's write
path, so each leaves a tombstone that devices, peers and realtime subscribers see like any
delete; the account itself goes last, so a deletion cut short can be run again. The policy,
and what stays, is written down in docs/security.md#account-deletion.
"""

from __future__ import annotations

import uuid
from typing import Any

from breakwater.auth.records import Account
from breakwater.auth.service import AccountDisabled
from breakwater.core.engine import StoredDoc
from breakwater.core.mutation import Mutation
from breakwater.core.query import Filter, Query, decode_page_token
from breakwater.server.node import Node

PAGE = 500
EXPORT_FORMAT = "breakwater-account-export/1"


def owned_collections(node: Node) -> list[tuple[str, str]]:
    """``(collection, owner field)`` of every collection whose documents have an owner."""
    return sorted(
        (name, rules.owner_field)
        for name, rules in node.policy.rules.items()
        if rules.owner_field is not None
    )


async def _owned(node: Node, collection: str, field: str, uid: str) -> list[StoredDoc]:
    """Every live document of ``collection`` whose ``field`` is ``uid``."""
    docs: list[StoredDoc] = []
    after = None
    while True:
        page = await node.store.query(
            Query(collection, (Filter(field, "eq", uid),), limit=PAGE, after=after)
        )
        docs.extend(page.docs)
        if page.next_token is None:
            return docs
        after = decode_page_token(page.next_token)


def account_json(account: Account) -> dict[str, Any]:
    """An account as its owner and admins see it: never a hash, secret or recovery code."""
    return {
        "uid": account.uid,
        "email": account.email,
        "email_verified": account.email_verified,
        "anonymous": account.anonymous,
        "roles": list(account.roles),
        "mfa": account.totp_enabled,
        "disabled": account.disabled,
        "created_ms": account.created_ms,
    }


async def export_user(node: Node, account: Account) -> dict[str, Any]:
    """The account record and every document it owns, as one JSON object."""
    collections: dict[str, list[dict[str, Any]]] = {}
    for name, field in owned_collections(node):
        docs = await _owned(node, name, field, account.uid)
        collections[name] = [
            {"id": doc.doc_id, "version": doc.version, "data": doc.data} for doc in docs
        ]
    return {
        "format": EXPORT_FORMAT,
        "account": account_json(account),
        "collections": collections,
    }


async def disable_user(node: Node, uid: str) -> Account:
    """Disable the account and close its open realtime connections on this node (the other
    nodes close theirs at their next reload of the disabled accounts)."""
    account = await node.auth.set_disabled(uid, True)
    node.realtime.end_sessions_of(frozenset({uid}), AccountDisabled("this account is disabled"))
    return account


async def delete_user(node: Node, uid: str) -> int:
    """Disable the account (no new writes while its documents go), delete every document it
    owns (tombstones through the write path), then erase the account and its tokens; returns
    how many documents were deleted. ``NotFound`` when there is no such account."""
    await disable_user(node, uid)
    deleted = 0
    for name, field in owned_collections(node):
        while docs := await _owned_page(node, name, field, uid):
            mutations = [
                Mutation(uuid.uuid4().hex, name, doc.doc_id, "delete", None) for doc in docs
            ]
            results = await node.writes.apply(mutations, "rest")
            deleted += sum(result.status == "applied" for result in results)
            if not any(result.status == "applied" for result in results):
                break  # nothing more can go (deleted meanwhile): never spin
    await node.auth.delete_account(uid)
    return deleted


async def _owned_page(node: Node, collection: str, field: str, uid: str) -> list[StoredDoc]:
    page = await node.store.query(Query(collection, (Filter(field, "eq", uid),), limit=PAGE))
    return page.docs
