"""Access tokens: short-lived JWTs, HS256 only, named keys; and the opaque refresh secrets.

The algorithm is pinned: ``decode`` accepts HS256 and nothing else, so ``alg: none`` and
algorithm-confusion tokens are refused before any signature is looked at. The header's ``kid``
picks the verifying key; an unknown ``kid`` is refused. ``aud``, ``iss``, ``exp``, ``iat`` and
``sub`` are required.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt

from breakwater.auth.identity import Identity
from breakwater.auth.signing_keys import SigningKeys
from breakwater.core.errors import Unauthorized

ALGORITHM = "HS256"
ISSUER = "breakwater"
LEEWAY_SECONDS = 5
REFRESH_BYTES = 32
VERIFIED_CACHE = 10_000
"""Tokens remembered after a successful verification (a client sends one token many times)."""


def hash_secret(secret: str) -> str:
    """SHA-256 of a high-entropy secret (refresh token, API key): what the store keeps."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_refresh_secret() -> str:
    """A fresh opaque refresh token (256 random bits)."""
    return secrets.token_urlsafe(REFRESH_BYTES)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What an access token says about its bearer."""

    uid: str
    anonymous: bool
    roles: tuple[str, ...]
    amr: tuple[str, ...]
    email_verified: bool = False


class TokenIssuer:
    """Signs and verifies access tokens for one audience."""

    def __init__(self, keys: SigningKeys, audience: str, ttl_seconds: float) -> None:
        self.keys = keys
        self.audience = audience
        self.ttl = ttl_seconds
        self._verified: OrderedDict[str, Identity] = OrderedDict()

    def issue(self, claims: AccessClaims, now: float | None = None) -> str:
        """A signed access token valid for ``ttl`` seconds."""
        issued = int(time.time() if now is None else now)
        key = self.keys.current
        payload = {
            "iss": ISSUER,
            "aud": self.audience,
            "sub": claims.uid,
            "iat": issued,
            "exp": issued + int(self.ttl),
            "jti": secrets.token_hex(8),
            "anon": claims.anonymous,
            "roles": list(claims.roles),
            "amr": list(claims.amr),
            "ev": claims.email_verified,
        }
        return jwt.encode(payload, key.secret, algorithm=ALGORITHM, headers={"kid": key.kid})

    def verify(self, token: str) -> Identity:
        """The identity of a valid token; ``Unauthorized`` for anything else.

        A token that verified before is answered from a bounded cache, checking only its
        expiry: PyJWT takes well over 100 µs per token here, and a client sends the same token
        with every request for its whole lifetime. Only tokens whose signature verified are
        cached, so forged tokens cannot fill it; keys never change while a process runs.
        """
        known = self._verified.get(token)
        if known is not None:
            assert known.expires is not None
            if known.expires + LEEWAY_SECONDS < time.time():
                del self._verified[token]
                raise Unauthorized("the access token has expired")
            self._verified.move_to_end(token)
            return known
        identity = self._decode(token)
        self._verified[token] = identity
        if len(self._verified) > VERIFIED_CACHE:
            self._verified.popitem(last=False)
        return identity

    def _decode(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("the access token is malformed") from None
        if header.get("alg") != ALGORITHM:
            raise Unauthorized(f"the access token must be signed with {ALGORITHM}")
        kid = header.get("kid")
        key = self.keys.find(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthorized("the access token was signed with an unknown key")
        try:
            claims = jwt.decode(
                token,
                key.secret,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=ISSUER,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the access token has expired") from None
        except jwt.PyJWTError:
            raise Unauthorized("the access token is invalid") from None
        if not _well_typed(claims):
            raise Unauthorized("the access token is invalid")
        return Identity(
            uid=claims["sub"],
            kind="user",
            anonymous=claims.get("anon", False),
            roles=tuple(claims.get("roles", [])),
            mfa="otp" in claims.get("amr", []),
            email_verified=claims.get("ev", False),
            expires=float(claims["exp"]),
        )


def _well_typed(claims: dict[str, Any]) -> bool:
    """Every claim has the JSON type this issuer writes.

    PyJWT reads ``exp``, ``iat`` and ``nbf`` with ``int()``, so ``"exp": "99999999999"`` (or
    ``true``, or a float) passes its checks; and ``bool("false")`` is True. A signed token
    with such claims was not written by this code, so it is refused whole.
    """
    times = [claims[name] for name in ("exp", "iat", "nbf") if name in claims]
    return (
        all(type(value) is int for value in times)
        and isinstance(claims["sub"], str)
        and bool(claims["sub"])
        and isinstance(claims.get("anon", False), bool)
        and isinstance(claims.get("ev", False), bool)
        and isinstance(claims.get("jti", ""), str)
        and _strings(claims.get("roles", []))
        and _strings(claims.get("amr", []))
    )


def _strings(values: object) -> bool:
    return isinstance(values, list) and all(isinstance(v, str) for v in values)
