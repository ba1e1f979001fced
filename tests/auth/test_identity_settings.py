"""``[auth.oidc]`` and ``[auth.external]``: only public-key algorithms, names that cannot forge
another uid, secrets from the environment and never in a repr; and the ID-token and key-cache
checks that need no provider running."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from breakwater.auth.external_settings import OidcProviderSettings
from breakwater.auth.jwks import JwksCache
from breakwater.auth.oidc import OidcClient
from breakwater.config import load_config
from breakwater.core.errors import ConfigError, Unauthorized

PROVIDER = """
[auth.oidc.providers.google]
issuer = "https://accounts.google.com"
client_id = "app"
redirect_uris = ["com.example.app:/cb"]
"""
EXTERNAL = """
[auth.external.auth0]
issuer = "https://tenant.auth0.com/"
audience = "https://api.example.com"
"""


def _load(tmp_path: Path, toml: str, env: dict[str, str] | None = None) -> Any:
    file = tmp_path / "breakwater.toml"
    file.write_text(toml)
    return load_config(file, env=env or {})


def test_providers_and_issuers_load_with_safe_defaults(tmp_path: Path) -> None:
    """Defaults: RS256/ES256 only, openid+email scopes, no linking by email."""
    auth = _load(tmp_path, PROVIDER + EXTERNAL).auth
    (google,) = auth.oidc.providers
    assert google.algorithms == ("RS256", "ES256") and google.scopes == ("openid", "email")
    assert google.link_verified_email is False
    (auth0,) = auth.external
    assert (auth0.name, auth0.uid_claim, auth0.algorithms) == ("auth0", "sub", ("RS256", "ES256"))


def test_the_client_secret_comes_from_the_environment_and_never_shows(tmp_path: Path) -> None:
    """``BREAKWATER_AUTH_OIDC_<NAME>_CLIENT_SECRET`` wins; no repr carries the secret."""
    env = {"BREAKWATER_AUTH_OIDC_GOOGLE_CLIENT_SECRET": "s3cr3t-from-env"}
    config = _load(tmp_path, PROVIDER + 'client_secret = "in-file"\n', env)
    assert config.auth.oidc.providers[0].client_secret == "s3cr3t-from-env"
    assert "s3cr3t" not in repr(config) and "in-file" not in repr(config)


@pytest.mark.parametrize(
    ("toml", "complaint"),
    [
        (EXTERNAL + 'algorithms = ["none"]\n', "public-key algorithms"),
        (EXTERNAL + 'algorithms = ["HS256"]\n', "public-key algorithms"),
        (EXTERNAL + "algorithms = []\n", "public-key algorithms"),
        (EXTERNAL.replace("auth0]", "key]"), "not be 'key'"),
        (EXTERNAL.replace("auth0]", "Auth0]"), "name must match"),
        (EXTERNAL.replace("https://tenant", "http://tenant"), "https://"),
        (EXTERNAL + "leeway = -1\n", "must not be negative"),
        (EXTERNAL + 'colour = "blue"\n', "unknown settings"),
        (EXTERNAL.replace('audience = "https://api.example.com"\n', ""), "audience"),
        (EXTERNAL + EXTERNAL.replace("auth0]", "again]"), "same issuer"),
        (PROVIDER + 'scopes = ["email"]\n', "openid"),
        (PROVIDER.replace('redirect_uris = ["com.example.app:/cb"]\n', ""), "redirect_uris"),
        (PROVIDER.replace("com.example.app:/cb", "javascript:alert(1)"), "redirect URI"),
        (PROVIDER + "link_verified_email = 1\n", "not a valid bool"),
        ("[auth.oidc]\nflow_ttl = 0\n", "flow_ttl"),
        ("[auth.oidc]\nproviders = 3\n", "must be a table"),
    ],
)
def test_unsafe_or_malformed_settings_stop_the_node(
    tmp_path: Path, toml: str, complaint: str
) -> None:
    """Each is a ConfigError naming what is wrong."""
    with pytest.raises(ConfigError, match=complaint):
        _load(tmp_path, toml)


def _client() -> OidcClient:
    settings = OidcProviderSettings("p", "https://idp.example", "app", redirect_uris=("a:/cb",))
    return OidcClient(settings)


def _claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "s", "aud": "app", "nonce": "n1", **extra}


def test_an_id_token_must_carry_this_sign_ins_nonce_and_name_us_as_azp() -> None:
    """Another sign-in's nonce, or a token issued to another party (azp), is refused."""
    client = _client()
    assert client._user(_claims(email="A@x.io", email_verified=True), "n1").email == "a@x.io"
    with pytest.raises(Unauthorized, match="nonce"):
        client._user(_claims(), "n2")
    with pytest.raises(Unauthorized, match="nonce"):
        client._user({"sub": "s", "aud": "app"}, "n1")
    with pytest.raises(Unauthorized, match="azp"):
        client._user(_claims(aud=["app", "other"]), "n1")
    with pytest.raises(Unauthorized, match="azp"):
        client._user(_claims(aud=["app", "other"], azp="other"), "n1")
    assert client._user(_claims(aud=["app", "other"], azp="app"), "n1").sub == "s"
    unverified = client._user(_claims(email="a@x.io", email_verified="true"), "n1")
    assert unverified.email_verified is False  # only the JSON true counts


def test_the_key_cache_refetches_on_unknown_kids_at_most_once_per_interval() -> None:
    """A made-up kid costs one fetch per ``min_refresh``; a stale set is fetched again."""
    now = [0.0]
    fetched: list[str] = []
    key = {"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig"} | {
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
    }

    async def fetch(url: str) -> dict[str, Any]:
        fetched.append(url)
        return {"keys": [key, {**key, "kid": "enc", "use": "enc"}, {**key, "kid": "p", "d": "x"}]}

    async def locate() -> str:
        return "https://idp.example/jwks"

    cache = JwksCache(locate, ttl=600, min_refresh=30, fetch=fetch, clock=lambda: now[0])

    async def scenario() -> None:
        assert await cache.key("k1") is not None and len(fetched) == 1
        assert await cache.key("made-up") is None and len(fetched) == 1
        now[0] = 31
        assert await cache.key("made-up") is None and len(fetched) == 2
        assert await cache.key("made-up-again") is None and len(fetched) == 2
        assert await cache.key("enc") is None and await cache.key("p") is None
        now[0] = 700
        assert cache.cached("k1") is None
        assert await cache.key("k1") is not None and len(fetched) == 3

    asyncio.run(scenario())
