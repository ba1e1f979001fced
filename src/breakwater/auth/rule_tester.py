"""The admin console's rule tester: what a collection's rule decides for a given caller and
document, evaluated exactly as the data paths evaluate it (same compiled rule, same variables).

The input comes from an admin over HTTP, so its shape is checked here and refused with a
``ValidationError`` naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from breakwater.auth.identity import Identity
from breakwater.auth.policy import Policy
from breakwater.core.errors import ValidationError

WRITE_OPS = ("set", "patch", "delete", "increment")


@dataclass(frozen=True)
class Verdict:
    """Whether the rule allows, the rule's source (None: the collection has none) and why."""

    allowed: bool
    rule: str | None
    reason: str


def caller(raw: object) -> Identity | None:
    """The user a test is for: ``null`` (no credential) or ``{uid, roles, anonymous, mfa}``."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValidationError("auth must be null or an object", field="auth")
    uid = raw.get("uid")
    roles = raw.get("roles", [])
    if not isinstance(uid, str) or not uid:
        raise ValidationError("auth.uid must be a non-empty string", field="auth.uid")
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise ValidationError("auth.roles must be a list of strings", field="auth.roles")
    return Identity(
        uid=uid,
        roles=tuple(roles),
        anonymous=_flag(raw, "anonymous"),
        mfa=_flag(raw, "mfa"),
        email_verified=_flag(raw, "email_verified"),
    )


def _flag(raw: Mapping[str, Any], name: str) -> bool:
    value = raw.get(name, False)
    if not isinstance(value, bool):
        raise ValidationError(f"auth.{name} must be true or false", field=f"auth.{name}")
    return value


def _document(raw: object, name: str, required: bool) -> dict[str, Any] | None:
    if raw is None and not required:
        return None
    if not isinstance(raw, dict):
        raise ValidationError(f"{name} must be an object", field=name)
    return raw


def evaluate_rule(
    policy: Policy, collection: str, action: object, request: Mapping[str, Any]
) -> Verdict:
    """Evaluate ``collection``'s ``action`` rule for ``request``'s ``auth``, ``doc`` and, for a
    write, ``before`` and ``op``."""
    if action not in ("read", "write"):
        raise ValidationError("action must be read or write", field="action")
    identity = caller(request.get("auth"))
    doc = _document(request.get("doc"), "doc", required=True)
    rules = policy.rules.get(collection)
    rule = None if rules is None else (rules.read if action == "read" else rules.write)
    if rule is None:
        allowed = policy.mode != "enforce"
        reason = f"no {action} rule: mode {policy.mode} " + ("allows" if allowed else "refuses")
        return Verdict(allowed, None, reason)
    context: dict[str, Any] = {
        "auth": None if identity is None else identity.rule_context(),
        "doc": doc,
    }
    if action == "write":
        op = request.get("op", "set")
        if op not in WRITE_OPS:
            raise ValidationError(f"op must be one of {list(WRITE_OPS)}", field="op")
        context |= {"before": _document(request.get("before"), "before", False), "op": op}
    allowed = rule.allows(context)
    return Verdict(allowed, rule.source, "the rule is true" if allowed else "the rule is not true")
