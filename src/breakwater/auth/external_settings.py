"""The ``[auth.oidc]`` and ``[auth.external.NAME]`` settings: identity providers Breakwater trusts.

``[auth.oidc.providers.NAME]`` are OpenID Connect providers users sign in with (Breakwater
exchanges the code and issues its own tokens). ``[auth.external.NAME]`` are issuers whose own
access tokens Breakwater accepts as they are, verified through their JWKS. A provider's client
secret also reads from ``BREAKWATER_AUTH_OIDC_<NAME>_CLIENT_SECRET`` (so it need not sit in the
config file) and is never part of a ``repr``, so never of a log line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from breakwater.core.errors import ConfigError

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$", re.ASCII)
RESERVED_NAMES = frozenset({"key"})
"""``key:ID`` is the uid of an API key; an issuer called ``key`` could mint one."""
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""Public-key algorithms only: ``none`` and HMAC (HS*) with a public key are forgeries."""
DEFAULT_ALGORITHMS = ("RS256", "ES256")
MAX_FLOW_TTL = 3600.0
"""A sign-in is a minute of the user's time; the stores drop flows a day old."""


@dataclass(frozen=True)
class OidcProviderSettings:
    """One OpenID Connect provider users sign in with (authorization code + PKCE)."""

    name: str
    issuer: str
    client_id: str
    client_secret: str = field(default="", repr=False)
    scopes: tuple[str, ...] = ("openid", "email")
    redirect_uris: tuple[str, ...] = ()
    link_verified_email: bool = False
    """Sign a provider user into the existing account with the same email, when the provider
    says ``email_verified``. Off by default: see docs/security.md (account takeover)."""
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway: float = 30.0
    jwks_ttl: float = 600.0
    jwks_min_refresh: float = 30.0


@dataclass(frozen=True)
class OidcSettings:
    """The providers, and how long a started sign-in may take before its state expires."""

    providers: tuple[OidcProviderSettings, ...] = ()
    flow_ttl: float = 600.0

    def provider(self, name: str) -> OidcProviderSettings | None:
        """The provider called ``name``, if configured."""
        return next((p for p in self.providers if p.name == name), None)


@dataclass(frozen=True)
class ExternalIssuerSettings:
    """An issuer whose access tokens are accepted (Auth0, Keycloak, Firebase Auth, ...).

    A token's uid is ``NAME:<uid_claim>``: namespaced by the issuer's name here, so two issuers'
    subjects cannot collide with each other, with Breakwater's own uids (hex, no colon) or with
    API keys (``key:``).
    """

    name: str
    issuer: str
    audience: str
    jwks_uri: str = ""
    """Empty: read from the issuer's ``/.well-known/openid-configuration``."""
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    uid_claim: str = "sub"
    roles_claim: str = ""
    """A claim holding a list of role names (a top-level name such as
    ``https://example.com/roles``, or a dotted path such as ``realm_access.roles``)."""
    leeway: float = 30.0
    jwks_ttl: float = 600.0
    jwks_min_refresh: float = 30.0


_OIDC_PROVIDER_KEYS = {
    "issuer": str,
    "client_id": str,
    "client_secret": str,
    "scopes": tuple,
    "redirect_uris": tuple,
    "link_verified_email": bool,
    "algorithms": tuple,
    "leeway": float,
    "jwks_ttl": float,
    "jwks_min_refresh": float,
}
_EXTERNAL_KEYS = {
    "issuer": str,
    "audience": str,
    "jwks_uri": str,
    "algorithms": tuple,
    "uid_claim": str,
    "roles_claim": str,
    "leeway": float,
    "jwks_ttl": float,
    "jwks_min_refresh": float,
}


def parse_oidc(raw: object, env: Mapping[str, str]) -> OidcSettings:
    """``[auth.oidc]``: ``flow_ttl`` and ``providers.NAME`` tables."""
    table = _table("auth.oidc", raw, {"providers", "flow_ttl"})
    flow_ttl = _value("auth.oidc.flow_ttl", table.get("flow_ttl", 600.0), float)
    if not 0 < flow_ttl <= MAX_FLOW_TTL:
        raise ConfigError(f"auth.oidc.flow_ttl must be more than 0 and at most {MAX_FLOW_TTL}")
    providers = []
    for name, body in _table("auth.oidc.providers", table.get("providers", {}), None).items():
        where = f"auth.oidc.providers.{name}"
        values = _values(where, _name(where, name), body, _OIDC_PROVIDER_KEYS)
        secret = env.get(f"BREAKWATER_AUTH_OIDC_{name.upper()}_CLIENT_SECRET")
        if secret:
            values["client_secret"] = secret
        _require(where, values, ("issuer", "client_id", "redirect_uris"))
        provider = OidcProviderSettings(name=name, **values)
        if "openid" not in provider.scopes:
            raise ConfigError(f"{where}.scopes must include openid")
        providers.append(provider)
    return OidcSettings(tuple(providers), flow_ttl)


def parse_external(raw: object) -> tuple[ExternalIssuerSettings, ...]:
    """``[auth.external.NAME]`` tables; two of them may not name the same issuer."""
    issuers = []
    for name, body in _table("auth.external", raw, None).items():
        where = f"auth.external.{name}"
        values = _values(where, _name(where, name), body, _EXTERNAL_KEYS)
        _require(where, values, ("issuer", "audience"))
        if values.get("jwks_uri"):
            _url(f"{where}.jwks_uri", values["jwks_uri"])
        issuers.append(ExternalIssuerSettings(name=name, **values))
    seen = [i.issuer for i in issuers]
    if len(set(seen)) != len(seen):
        raise ConfigError("auth.external: two issuers have the same issuer URL")
    return tuple(issuers)


def _table(where: str, raw: object, keys: set[str] | None) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    if keys is not None and set(raw) - keys:
        raise ConfigError(f"{where}: unknown settings {sorted(set(raw) - keys)}")
    return raw


def _name(where: str, name: str) -> str:
    if not NAME_PATTERN.fullmatch(name) or name in RESERVED_NAMES:
        raise ConfigError(f"{where}: the name must match {NAME_PATTERN.pattern} and not be 'key'")
    return name


def _values(where: str, name: str, body: object, kinds: dict[str, type]) -> dict[str, Any]:
    table = _table(where, body, set(kinds))
    values = {key: _value(f"{where}.{key}", value, kinds[key]) for key, value in table.items()}
    for key in ("leeway", "jwks_ttl", "jwks_min_refresh"):
        if key in values and values[key] < 0:
            raise ConfigError(f"{where}.{key} must not be negative")
    if "issuer" in values:
        _url(f"{where}.issuer", values["issuer"])
    for uri in values.get("redirect_uris", ()):
        if ":" not in uri or uri.startswith(("javascript:", "data:")):
            raise ConfigError(f"{where}.redirect_uris: {uri!r} is not a redirect URI")
    algorithms = values.get("algorithms")
    if algorithms is not None and (not algorithms or set(algorithms) - ASYMMETRIC_ALGORITHMS):
        raise ConfigError(
            f"{where}.algorithms must be public-key algorithms from"
            f" {sorted(ASYMMETRIC_ALGORITHMS)} (never none or HS*)"
        )
    return values


def _value(where: str, value: object, kind: type) -> Any:
    if kind is tuple and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind in (str, bool) and isinstance(value, kind):
        return value
    raise ConfigError(f"{where} = {value!r} is not a valid {kind.__name__}")


def _require(where: str, values: dict[str, Any], keys: tuple[str, ...]) -> None:
    missing = [key for key in keys if not values.get(key)]
    if missing:
        raise ConfigError(f"{where}: {', '.join(missing)} must be set")


def _url(where: str, url: str) -> None:
    """https, or http on loopback only (a local provider in development and tests)."""
    parts = urlsplit(url)
    local = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "::1", "localhost")
    if not parts.hostname or not (parts.scheme == "https" or local):
        raise ConfigError(f"{where} = {url!r} must be an https:// URL (http on loopback only)")
