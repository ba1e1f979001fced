"""What the auth store keeps: accounts, refresh tokens, API keys and one-time tokens (secrets
only as hashes)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Account:
    """A user. Anonymous accounts have no email or password until they link one."""

    uid: str
    email: str | None
    password_hash: str | None
    anonymous: bool
    roles: tuple[str, ...] = ()
    created_ms: int = 0
    totp_secret: str | None = None
    totp_enabled: bool = False
    recovery_hashes: tuple[str, ...] = ()
    totp_last_step: int = 0
    email_verified: bool = False
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class OneTimeToken:
    """A single-use token mailed to a user (``purpose``: verify, reset or email); ``token_hash``
    is SHA-256 of the secret. ``email`` is the address it was sent to (the new one for an email
    change)."""

    token_hash: str
    purpose: str
    uid: str
    email: str
    created_ms: int
    expires_ms: int


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """One refresh token of a family (a sign-in); ``token_hash`` is SHA-256 of the secret."""

    token_hash: str
    family: str
    uid: str
    created_ms: int
    expires_ms: int
    amr: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A server or admin credential; ``secret_hash`` is SHA-256 of the secret part."""

    key_id: str
    name: str
    scopes: frozenset[str]
    secret_hash: str
    created_ms: int
    revoked_ms: int | None = None
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LinkedIdentity:
    """An account's identity at an OpenID Connect provider: that provider's ``sub`` is this user."""

    provider: str
    sub: str
    uid: str
    created_ms: int


@dataclass(frozen=True, slots=True)
class OidcFlow:
    """A started OpenID Connect sign-in, spent by its first callback; ``state_hash`` is the
    SHA-256 of the state the app carries through the browser."""

    state_hash: str
    provider: str
    nonce: str
    redirect_uri: str
    expires_ms: int
