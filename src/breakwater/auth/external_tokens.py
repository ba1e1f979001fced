"""Access tokens issued by an external identity provider (Auth0, Keycloak, Firebase Auth,
Supabase Auth, ...), accepted through its JWKS as if Breakwater had issued them.

The bearer's uid is ``NAME:<uid claim>`` (``NAME`` is the ``[auth.external.NAME]`` table), so
two issuers' subjects never collide; roles come from a configured claim.
"""

from __future__ import annotations

from typing import Any

from breakwater.auth import foreign_jwt
from breakwater.auth.external_settings import ExternalIssuerSettings
from breakwater.auth.identity import Identity
from breakwater.auth.jwks import Discovery, FetchJson, JwksCache, fetch_json
from breakwater.core.errors import Unauthorized

MAX_ROLES = 32


class ExternalIssuer:
    """Verifies the tokens of one external issuer."""

    def __init__(self, settings: ExternalIssuerSettings, fetch: FetchJson = fetch_json) -> None:
        self.settings = settings
        self.expect = foreign_jwt.Expectations(
            settings.issuer, settings.audience, settings.algorithms, settings.leeway
        )
        discovery = Discovery(settings.issuer, settings.jwks_ttl, fetch)

        async def locate() -> str:
            return settings.jwks_uri or await discovery.endpoint("jwks_uri")

        self.keys = JwksCache(locate, settings.jwks_ttl, settings.jwks_min_refresh, fetch)

    async def verify(self, token: str) -> Identity:
        """The identity of a valid token; ``Unauthorized`` otherwise."""
        return self._identity(await foreign_jwt.verify(token, self.keys, self.expect))

    def verify_cached(self, token: str) -> Identity:
        """:meth:`verify` without fetching keys (a realtime session's re-authentication)."""
        return self._identity(foreign_jwt.verify_cached(token, self.keys, self.expect))

    def _identity(self, claims: dict[str, Any]) -> Identity:
        subject = _claim(claims, self.settings.uid_claim)
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise Unauthorized(f"the token has no usable {self.settings.uid_claim!r} claim")
        roles: object = []
        if self.settings.roles_claim:
            roles = _claim(claims, self.settings.roles_claim) or []
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise Unauthorized(f"the token's {self.settings.roles_claim!r} is not a list of names")
        return Identity(
            uid=f"{self.settings.name}:{subject}",
            roles=tuple(dict.fromkeys(roles))[:MAX_ROLES],
            expires=float(claims["exp"]),
        )


def _claim(claims: dict[str, Any], name: str) -> object:
    """A claim by its exact name (``https://example.com/roles``), else by a dotted path."""
    if name in claims:
        return claims[name]
    value: object = claims
    for part in name.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
