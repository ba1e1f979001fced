"""Who is calling: the identity a verified credential (access token or API key) stands for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["user", "key"]
ADMIN_SCOPE = "admin"
REPLICATION_SCOPE = "replication"
"""The scope of the keys regions pull each other's changes with (and nothing else)."""
ADMIN_ROLE = "admin"


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified caller. ``expires`` is when its credential stops being valid (epoch seconds).

    Users are governed by the access rules; API keys by their scopes (``read:notes``,
    ``write:*``, ``admin``), within which the rules do not apply: keys are for trusted servers.
    """

    uid: str
    kind: Kind = "user"
    anonymous: bool = False
    roles: tuple[str, ...] = ()
    mfa: bool = False
    scopes: frozenset[str] = field(default_factory=frozenset)
    expires: float | None = None
    email_verified: bool = False

    def allows_scope(self, action: str, collection: str) -> bool:
        """True when an API key's scopes cover ``action`` (read or write) on ``collection``."""
        return bool(
            {ADMIN_SCOPE, f"{action}:*", f"{action}:{collection}"} & self.scopes
            or (action == "read" and {"write:*", f"write:{collection}"} & self.scopes)
        )

    @property
    def is_replicator(self) -> bool:
        """An API key with the ``replication`` scope (never a user, whatever its roles)."""
        return self.kind == "key" and REPLICATION_SCOPE in self.scopes

    @property
    def is_admin(self) -> bool:
        """An API key with the ``admin`` scope, or a user with the ``admin`` role."""
        if self.kind == "key":
            return ADMIN_SCOPE in self.scopes
        return ADMIN_ROLE in self.roles

    def rule_context(self) -> dict[str, Any]:
        """The ``auth`` variable of an access rule."""
        return {
            "uid": self.uid,
            "kind": self.kind,
            "anonymous": self.anonymous,
            "roles": list(self.roles),
            "mfa": self.mfa,
            "email_verified": self.email_verified,
        }
