"""One OpenID Connect provider, spoken to as a client: the authorize URL, the code exchange
(with the app's PKCE verifier) and the checks of the ID token it returns.

The ID token is verified with the provider's JWKS (signature, allowed algorithm, ``iss``,
``aud`` = our client id, ``exp``), then its ``nonce`` must be the one this sign-in started with,
and when it has several audiences ``azp`` must be our client id (OpenID Connect Core 3.1.3.7).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from breakwater.auth import foreign_jwt
from breakwater.auth.external_settings import OidcProviderSettings
from breakwater.auth.jwks import FETCH_TIMEOUT_SECONDS, Discovery, FetchJson, JwksCache, fetch_json
from breakwater.core.errors import Unauthorized, Unavailable


@dataclass(frozen=True)
class ProviderUser:
    """Who the provider says signed in."""

    sub: str
    email: str | None
    email_verified: bool


class OidcClient:
    """Breakwater as the client of one provider."""

    def __init__(self, settings: OidcProviderSettings, fetch: FetchJson = fetch_json) -> None:
        self.settings = settings
        self.discovery = Discovery(settings.issuer, settings.jwks_ttl, fetch)
        self.keys = JwksCache(
            lambda: self.discovery.endpoint("jwks_uri"),
            settings.jwks_ttl,
            settings.jwks_min_refresh,
            fetch,
        )
        self.expect = foreign_jwt.Expectations(
            settings.issuer, settings.client_id, settings.algorithms, settings.leeway
        )

    async def authorize_url(
        self, redirect_uri: str, state: str, nonce: str, code_challenge: str
    ) -> str:
        """Where the app sends the user's browser."""
        query = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.settings.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        endpoint = await self.discovery.endpoint("authorization_endpoint")
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}"

    async def exchange(
        self, code: str, code_verifier: str, redirect_uri: str, nonce: str
    ) -> ProviderUser:
        """Trade the code for an ID token and check it; ``Unauthorized`` when anything is off."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": code_verifier,
            "redirect_uri": redirect_uri,
            "client_id": self.settings.client_id,
        }
        if self.settings.client_secret:
            form["client_secret"] = self.settings.client_secret
        endpoint = await self.discovery.endpoint("token_endpoint")
        try:
            async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_SECONDS) as client:
                response = await client.post(endpoint, data=form)
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"the identity provider did not answer ({type(exc).__name__})"
            ) from None
        if response.status_code != 200:
            # The provider's error (invalid_grant: a wrong verifier, a used or expired code).
            raise Unauthorized(f"the identity provider refused the code ({_error_of(response)})")
        body = _json_object(response)
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise Unauthorized("the identity provider returned no ID token")
        claims = await foreign_jwt.verify(id_token, self.keys, self.expect)
        return self._user(claims, nonce)

    def _user(self, claims: dict[str, Any], nonce: str) -> ProviderUser:
        if claims.get("nonce") != nonce:
            raise Unauthorized("the ID token's nonce is not this sign-in's")
        audience = claims["aud"]
        if isinstance(audience, list) and len(audience) > 1:
            if claims.get("azp") != self.settings.client_id:
                raise Unauthorized("the ID token's azp is not this client")
        elif "azp" in claims and claims["azp"] != self.settings.client_id:
            raise Unauthorized("the ID token's azp is not this client")
        email = claims.get("email")
        return ProviderUser(
            sub=claims["sub"],
            email=email.lower() if isinstance(email, str) else None,
            email_verified=claims.get("email_verified") is True,
        )


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise Unavailable("the identity provider's token answer is not JSON")
    return body


def _error_of(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    return error[:64] if isinstance(error, str) else f"status {response.status_code}"
