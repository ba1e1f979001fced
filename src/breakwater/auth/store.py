"""The ``AuthStore`` protocol: where accounts, refresh tokens and API keys live.

Contract for every backend:

- Emails are unique (case-insensitive, stored lower-cased): ``create_account`` and ``link_email``
  raise :class:`EmailTaken` for a taken one and change nothing.
- ``rotate_refresh`` is atomic: of concurrent rotations of one token, exactly one succeeds. A
  token that was already used or revoked is *reuse*: the store revokes its whole family and
  answers ``"reused"``; nothing is issued.
- A provider's ``sub`` belongs to one account at most: ``add_identity`` and
  ``create_linked_account`` raise :class:`IdentityTaken` when it is linked already.
- ``take_flow`` is atomic: a started OpenID Connect sign-in is spent by exactly one callback.
- ``use_one_time`` is atomic: of concurrent uses of one token, exactly one gets its record; a
  used token is gone, and so are the other live tokens of that user and purpose.
- Secrets are never stored, only their hashes. Backend errors never escape as driver errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from breakwater.auth.records import (
    Account,
    ApiKey,
    LinkedIdentity,
    OidcFlow,
    OneTimeToken,
    RefreshToken,
)
from breakwater.core.errors import BreakwaterError

RotateOutcome = Literal["rotated", "reused", "unknown", "expired"]


class EmailTaken(BreakwaterError):
    """Another account already has this email."""

    type = "email_taken"
    status = 409
    title = "Email taken"


class IdentityTaken(BreakwaterError):
    """The provider's identity is already linked to an account."""

    type = "identity_taken"
    status = 409
    title = "Identity taken"


class AuthStore(Protocol):
    """Persistence of the auth service. Lifecycle: ``open()`` … ``close()``."""

    def open(self) -> None:
        """Create or migrate the schema."""

    def close(self) -> None:
        """Release the database. Idempotent."""

    def create_account(self, account: Account) -> None:
        """Insert a new account; ``EmailTaken`` if its email is taken."""

    def account(self, uid: str) -> Account | None:
        """The account ``uid``, if any."""

    def account_by_email(self, email: str) -> Account | None:
        """The account with ``email`` (compared lower-cased), if any."""

    def update_account(self, account: Account) -> None:
        """Replace every field of an existing account; ``EmailTaken`` on a taken email."""

    def delete_account(self, uid: str, now_ms: int) -> bool:
        """Erase the account ``uid`` at once: its refresh and one-time tokens and its linked
        identities go, and its row keeps only the uid, disabled (a tombstone no read method
        returns); False if there was no account."""

    def disabled_uids(self) -> frozenset[str]:
        """The uids of every disabled account, erased ones included (a node keeps them in
        memory to refuse their access tokens)."""

    def find_accounts(self, text: str, limit: int) -> Sequence[Account]:
        """Up to ``limit`` accounts whose uid is ``text`` or whose email starts with it
        (lower-cased; an empty ``text`` matches every account with an email), by email."""

    def add_refresh(self, token: RefreshToken) -> None:
        """Store a newly issued refresh token."""

    def rotate_refresh(
        self, old_hash: str, new: RefreshToken | None, now_ms: int
    ) -> tuple[RotateOutcome, RefreshToken | None]:
        """Use ``old_hash`` once and store ``new`` in its family (see module docstring).

        ``new`` may be built without knowing the family: the store stores it with the old
        token's family and uid. Returns the outcome and the old token's record.
        """

    def revoke_family(self, family: str) -> None:
        """Revoke every token of a family (sign-out, reuse). Idempotent."""

    def revoke_user(self, uid: str) -> None:
        """Revoke every refresh token of a user (password change)."""

    def family_of(self, token_hash: str) -> str | None:
        """The family of a stored refresh token."""

    def add_one_time(self, token: OneTimeToken) -> None:
        """Store a newly mailed one-time token; the user's tokens of that purpose that expired
        by its ``created_ms`` are removed (so expired tokens never pile up)."""

    def use_one_time(self, token_hash: str, purpose: str, now_ms: int) -> OneTimeToken | None:
        """Spend a live token of ``purpose``: its record, or None when it is unknown, of another
        purpose, expired or already used. Spending removes every token of that user and
        purpose (an older link dies with the newer one)."""

    def add_key(self, key: ApiKey) -> None:
        """Store a new API key."""

    def key(self, key_id: str) -> ApiKey | None:
        """The API key ``key_id`` (revoked ones too)."""

    def keys(self) -> Sequence[ApiKey]:
        """Every API key, oldest first."""

    def revoke_key(self, key_id: str, now_ms: int) -> bool:
        """Revoke a key; False if there is no live key with that id."""

    # OpenID Connect ----------------------------------------------------------------------------

    def create_linked_account(self, account: Account, identity: LinkedIdentity) -> None:
        """Insert a new account and its first linked identity in one transaction."""

    def add_identity(self, identity: LinkedIdentity) -> None:
        """Link a provider's ``sub`` to an existing account; ``IdentityTaken`` if linked."""

    def identity_owner(self, provider: str, sub: str) -> str | None:
        """The uid the provider's ``sub`` is linked to, if any."""

    def identities(self, uid: str) -> Sequence[LinkedIdentity]:
        """The identities linked to ``uid``, oldest first."""

    def add_flow(self, flow: OidcFlow) -> None:
        """Store a started sign-in (and drop the expired ones)."""

    def take_flow(self, state_hash: str, now_ms: int) -> OidcFlow | None:
        """Remove and return the unexpired flow ``state_hash``; None if unknown, spent or
        expired."""
