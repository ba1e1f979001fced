"""Access and refresh tokens: every forged or stale token is refused; rotation and reuse."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping

import httpx
import jwt
import pytest

from breakwater.auth.identity import Identity
from breakwater.auth.signing_keys import SigningKeys, load_keys, save_keys
from breakwater.auth.tokens import ALGORITHM, AccessClaims, TokenIssuer
from breakwater.core.errors import Unauthorized
from tests.auth.conftest import sign_up

CLAIMS = AccessClaims("u1", False, (), ("pwd",))


def _b64(value: Mapping[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@pytest.fixture
def issuer() -> TokenIssuer:
    return TokenIssuer(SigningKeys([SigningKeys.generate()]), "breakwater", 60)


def test_a_valid_token_verifies(issuer: TokenIssuer) -> None:
    """A token the issuer signed gives back its subject."""
    identity = issuer.verify(issuer.issue(CLAIMS))
    assert identity == Identity("u1", expires=identity.expires)


def test_alg_none_is_refused(issuer: TokenIssuer) -> None:
    """An unsigned token (``alg: none``) is refused."""
    good = jwt.decode(issuer.issue(CLAIMS), options={"verify_signature": False})
    header = {"alg": "none", "typ": "JWT", "kid": issuer.keys.current.kid}
    forged = f"{_b64(header)}.{_b64(good)}."
    with pytest.raises(Unauthorized):
        issuer.verify(forged)


def test_a_tampered_payload_is_refused(issuer: TokenIssuer) -> None:
    """Changing the subject breaks the signature."""
    token = issuer.issue(CLAIMS)
    head, _, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["sub"] = "someone-else"
    with pytest.raises(Unauthorized):
        issuer.verify(f"{head}.{_b64(claims)}.{signature}")


def test_an_expired_token_is_refused(issuer: TokenIssuer) -> None:
    """A token past ``exp`` (beyond the small leeway) is refused."""
    old = issuer.issue(CLAIMS, now=time.time() - 3600)
    with pytest.raises(Unauthorized, match="expired"):
        issuer.verify(old)


def test_a_token_signed_with_another_key_is_refused(issuer: TokenIssuer) -> None:
    """Same kid, different secret: the signature does not verify."""
    other = SigningKeys([issuer.keys.current.__class__(issuer.keys.current.kid, b"x" * 32, 0)])
    forged = TokenIssuer(other, "breakwater", 60).issue(CLAIMS)
    with pytest.raises(Unauthorized):
        issuer.verify(forged)


def test_a_token_with_an_unknown_kid_is_refused(issuer: TokenIssuer) -> None:
    """A key the node does not have cannot be named."""
    forged = TokenIssuer(SigningKeys([SigningKeys.generate()]), "breakwater", 60).issue(CLAIMS)
    with pytest.raises(Unauthorized, match="unknown key"):
        issuer.verify(forged)


def test_a_token_for_another_audience_is_refused(issuer: TokenIssuer) -> None:
    """A token minted for another service (same key) is refused."""
    forged = TokenIssuer(issuer.keys, "another-app", 60).issue(CLAIMS)
    with pytest.raises(Unauthorized):
        issuer.verify(forged)


def test_an_hs256_token_with_a_public_key_confusion_header_is_refused(issuer: TokenIssuer) -> None:
    """Only HS256 is accepted: an RS256 header is refused before any key is used."""
    claims = jwt.decode(issuer.issue(CLAIMS), options={"verify_signature": False})
    header = {"alg": "RS256", "typ": "JWT", "kid": issuer.keys.current.kid}
    with pytest.raises(Unauthorized, match=ALGORITHM):
        issuer.verify(f"{_b64(header)}.{_b64(claims)}.c2ln")


def test_rotation_keeps_tokens_signed_with_the_old_key_valid(tmp_path: object) -> None:
    """After a rotation new tokens use the new kid and old tokens still verify."""
    from pathlib import Path

    path = Path(str(tmp_path)) / "keys.json"
    keys = load_keys(path)
    old_token = TokenIssuer(keys, "breakwater", 60).issue(CLAIMS)
    rotated = keys.rotated(keep_seconds=3600)
    save_keys(path, rotated)
    issuer = TokenIssuer(load_keys(path), "breakwater", 60)
    assert issuer.verify(old_token).uid == "u1"
    new_token = issuer.issue(CLAIMS)
    assert jwt.get_unverified_header(new_token)["kid"] == rotated.current.kid != keys.current.kid
    assert path.stat().st_mode & 0o077 == 0


def test_rotation_drops_keys_retired_longer_than_a_token_lives() -> None:
    """A key retired more than ``keep_seconds`` ago is dropped on the next rotation."""
    first = SigningKeys([SigningKeys.generate(now=0)])
    second = first.rotated(keep_seconds=100, now=1000)
    third = second.rotated(keep_seconds=100, now=1200)
    assert first.current.kid in {k.kid for k in second.rotated(keep_seconds=100, now=1050).keys}
    assert first.current.kid not in {k.kid for k in third.keys}
    assert second.current.kid in {k.kid for k in third.keys}


async def test_refresh_rotates_and_reuse_revokes_the_family(auth_node: httpx.AsyncClient) -> None:
    """A refresh token works once; presenting it again revokes every token of the session."""
    user = await sign_up(auth_node, "rot@example.com")
    first = await auth_node.post("/v1/auth/refresh", json={"refresh_token": user.refresh})
    assert first.status_code == 200
    next_refresh = first.json()["refresh_token"]
    assert next_refresh != user.refresh
    reuse = await auth_node.post("/v1/auth/refresh", json={"refresh_token": user.refresh})
    assert reuse.status_code == 401
    assert "already used" in reuse.json()["detail"]
    # The attacker's replay revoked the family: the legitimate next token is dead too.
    after = await auth_node.post("/v1/auth/refresh", json={"refresh_token": next_refresh})
    assert after.status_code == 401


async def test_bad_bearer_tokens_are_401_on_data_paths(rules_node: httpx.AsyncClient) -> None:
    """A malformed bearer token is refused with problem+json 401 on REST, query and sync."""
    headers = {"Authorization": "Bearer not.a.token"}
    for method, url in [
        ("GET", "/v1/collections/notes/docs/a"),
        ("GET", "/v1/collections/notes/docs"),
        ("GET", "/v1/sync/pull"),
    ]:
        response = await rules_node.request(method, url, headers=headers)
        assert response.status_code == 401, url
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")
    push = await rules_node.post("/v1/sync/push", json={"mutations": []}, headers=headers)
    assert push.status_code == 401


def test_processes_starting_at_once_share_one_key_set(tmp_path: object) -> None:
    """Workers that all find no key file end up verifying each other's tokens."""
    from concurrent.futures import ProcessPoolExecutor
    from pathlib import Path

    path = Path(str(tmp_path)) / "auth-keys.json"
    with ProcessPoolExecutor(4) as pool:
        kids = set(pool.map(_current_kid, [path] * 8))
    assert len(kids) == 1
    assert [p.name for p in path.parent.iterdir()] == ["auth-keys.json"]


def _current_kid(path: object) -> str:
    from pathlib import Path

    return load_keys(Path(str(path))).current.kid


def test_a_cached_token_still_expires(issuer: TokenIssuer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A token verified once is refused once it expires, though its check is cached."""
    token = issuer.issue(CLAIMS)
    assert issuer.verify(token).uid == "u1"
    later = time.time() + issuer.ttl + 60
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(Unauthorized, match="expired"):
        issuer.verify(token)


def test_forged_tokens_are_not_cached(issuer: TokenIssuer) -> None:
    """Refused tokens leave no trace: the cache holds only verified ones."""
    for index in range(50):
        with pytest.raises(Unauthorized):
            issuer.verify(f"eyJhbGciOiJIUzI1NiJ9.e30.{index}")
    assert len(issuer._verified) == 0


def _signed_with(issuer: TokenIssuer, **changes: object) -> str:
    """A token properly signed by ``issuer`` whose claims are changed (``...`` removes one)."""
    claims = jwt.decode(issuer.issue(CLAIMS), options={"verify_signature": False})
    claims.update(changes)
    claims = {name: value for name, value in claims.items() if value is not ...}
    key = issuer.keys.current
    return jwt.encode(claims, key.secret, algorithm=ALGORITHM, headers={"kid": key.kid})


IN_AN_HOUR = int(time.time()) + 3600


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"exp": str(IN_AN_HOUR)}, id="exp a string"),
        pytest.param({"exp": "\u0661" + str(IN_AN_HOUR)[1:]}, id="exp Arabic-Indic digits"),
        pytest.param({"exp": float(IN_AN_HOUR)}, id="exp a float"),
        pytest.param({"iat": str(int(time.time()))}, id="iat a string"),
        pytest.param({"iat": True}, id="iat a bool"),
        pytest.param({"nbf": "0"}, id="nbf a string"),
        pytest.param({"sub": 7}, id="sub a number"),
        pytest.param({"sub": ""}, id="sub empty"),
        pytest.param({"anon": "false"}, id="anon a string"),
        pytest.param({"jti": 5}, id="jti a number"),
        pytest.param({"roles": "admin"}, id="roles a string"),
        pytest.param({"roles": ["admin", 1]}, id="roles with a number"),
        pytest.param({"amr": "otp"}, id="amr a string"),
    ],
)
def test_a_signed_token_with_a_mistyped_claim_is_refused(
    issuer: TokenIssuer, changes: dict[str, object]
) -> None:
    """Claims this issuer never writes with that type are refused, even under a valid signature."""
    with pytest.raises(Unauthorized, match="invalid"):
        issuer.verify(_signed_with(issuer, **changes))


def test_a_signed_token_with_well_typed_optional_claims_verifies(issuer: TokenIssuer) -> None:
    """``nbf`` as an int and an anonymous flag as a bool are fine."""
    identity = issuer.verify(_signed_with(issuer, nbf=int(time.time()) - 10, anon=True))
    assert identity.anonymous
