"""Making and changing subscriptions from an admin's input (the API and the CLI share it)."""

from __future__ import annotations

import dataclasses
import re
import secrets
from typing import Any

from breakwater.core.errors import ValidationError
from breakwater.core.mutation import check_collection
from breakwater.server.webhooks.records import OPERATIONS, Subscription
from breakwater.server.webhooks.targets import check_url

MAX_COLLECTIONS = 100
MAX_DESCRIPTION = 500
EDITABLE = ("url", "collections", "operations", "description")
GIVEN_AT_CREATION = ("id", "secret")
"""Chosen by the admin or made here: the same in every region, a subscription is delivered once
across them and a receiver checks one secret (docs/webhooks.md#several-regions)."""
ID_PATTERN = re.compile(r"wh_[A-Za-z0-9_-]{1,61}", re.ASCII)
SECRET_PATTERN = re.compile(r"whsec_[A-Za-z0-9_-]{32,250}", re.ASCII)


def new_secret() -> str:
    """A signing secret: 256 random bits."""
    return "whsec_" + secrets.token_urlsafe(32)


def new_subscription(fields: dict[str, Any], now_ms: int) -> Subscription:
    """A subscription from ``{url, collections?, operations?, description?, id?, secret?}``
    (a new id and secret unless given); ``ValidationError`` naming the bad field."""
    editable = {key: value for key, value in fields.items() if key not in GIVEN_AT_CREATION}
    unknown = set(editable) - set(EDITABLE)
    if unknown:
        allowed = [*EDITABLE, *GIVEN_AT_CREATION]
        raise ValidationError(f"unknown fields {sorted(unknown)}; use {allowed}")
    if "url" not in fields:
        raise ValidationError("url is required")
    sub_id = _given(fields, "id", ID_PATTERN) or "wh_" + secrets.token_hex(8)
    secret = _given(fields, "secret", SECRET_PATTERN) or new_secret()
    blank = Subscription(sub_id, "", (), OPERATIONS, secret, now_ms)
    return changed(blank, editable)


def _given(fields: dict[str, Any], key: str, pattern: re.Pattern[str]) -> str | None:
    if key not in fields:
        return None
    value = fields[key]
    if not isinstance(value, str) or not pattern.fullmatch(value):
        # Never echo the value: it may be a secret.
        raise ValidationError(f"{key} must match {pattern.pattern}", field=key)
    return value


def changed(subscription: Subscription, fields: dict[str, Any]) -> Subscription:
    """``subscription`` with the editable ``fields`` replaced (validated)."""
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise ValidationError(f"unknown fields {sorted(unknown)}; use {list(EDITABLE)}")
    updates: dict[str, Any] = {}
    if "url" in fields:
        updates["url"] = check_url(fields["url"])
    if "collections" in fields:
        updates["collections"] = _collections(fields["collections"])
    if "operations" in fields:
        updates["operations"] = _operations(fields["operations"])
    if "description" in fields:
        description = fields["description"]
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
            raise ValidationError(f"description must be a string of at most {MAX_DESCRIPTION}")
        updates["description"] = description
    return dataclasses.replace(subscription, **updates)


def _collections(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_COLLECTIONS:
        raise ValidationError(
            f"collections must be a list of at most {MAX_COLLECTIONS} names (empty: all)"
        )
    if not all(isinstance(name, str) for name in value):
        raise ValidationError("collections must be a list of collection names")
    return tuple(sorted({check_collection(name) for name in value}))


def _operations(value: Any) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(op, str) and op in OPERATIONS for op in value)
    ):
        raise ValidationError(f"operations must be a non-empty list from {list(OPERATIONS)}")
    return tuple(op for op in OPERATIONS if op in value)
