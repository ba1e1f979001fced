"""Accounts: sign-up, sign-in, anonymous accounts and linking, sign-out, password change."""

from __future__ import annotations

import httpx

from breakwater.auth.passwords import HashParameters, Passwords
from tests.auth.conftest import sign_up


def test_passwords_are_hashed_with_argon2id_at_owasp_parameters() -> None:
    """The default hash is argon2id, 19 MiB, 2 iterations, 1 lane, and verifies."""
    passwords = Passwords()
    encoded = passwords.hash("a long passphrase")
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert passwords.verify(encoded, "a long passphrase")
    assert not passwords.verify(encoded, "a long passphrasE")
    assert not passwords.verify(None, "a long passphrase")


def test_a_hash_with_weaker_parameters_needs_a_rehash() -> None:
    """Hashes made with older (cheaper) parameters are flagged for an upgrade."""
    weak = Passwords(HashParameters(memory_kib=64, time_cost=1)).hash("pw-pw-pw-pw")
    assert Passwords().needs_rehash(weak)


async def test_signup_then_login_gives_the_same_uid(auth_node: httpx.AsyncClient) -> None:
    """A signed-up user signs in with the same uid; a wrong password is 401."""
    user = await sign_up(auth_node, "ann@example.com")
    login = await auth_node.post(
        "/v1/auth/login", json={"email": "ANN@example.com", "password": "correct horse"}
    )
    assert login.status_code == 200
    assert login.json()["uid"] == user.uid
    assert login.headers["cache-control"] == "private, no-store"
    wrong = await auth_node.post(
        "/v1/auth/login", json={"email": "ann@example.com", "password": "wrong horse"}
    )
    assert wrong.status_code == 401
    assert wrong.json()["type"] == "unauthorized"
    unknown = await auth_node.post(
        "/v1/auth/login", json={"email": "nobody@example.com", "password": "wrong horse"}
    )
    assert unknown.status_code == 401
    assert unknown.json()["detail"] == wrong.json()["detail"]


async def test_an_email_has_one_account(auth_node: httpx.AsyncClient) -> None:
    """Signing up twice with one email is 409 email_taken."""
    await sign_up(auth_node, "bob@example.com")
    again = await auth_node.post(
        "/v1/auth/signup", json={"email": "Bob@example.com", "password": "another one"}
    )
    assert again.status_code == 409
    assert again.json()["type"] == "email_taken"


async def test_short_passwords_and_bad_emails_are_refused(auth_node: httpx.AsyncClient) -> None:
    """Sign-up validates its input with a 400 naming the field."""
    short = await auth_node.post(
        "/v1/auth/signup", json={"email": "c@example.com", "password": "x"}
    )
    assert short.status_code == 400 and short.json()["field"] == "password"
    bad = await auth_node.post("/v1/auth/signup", json={"email": "nope", "password": "long enough"})
    assert bad.status_code == 400 and bad.json()["field"] == "email"


async def test_anonymous_account_links_an_email_and_keeps_its_uid_and_data(
    auth_node: httpx.AsyncClient,
) -> None:
    """An anonymous device links an email: same uid, its documents stay readable."""
    anon = (await auth_node.post("/v1/auth/anonymous")).json()
    headers = {"Authorization": f"Bearer {anon['access_token']}"}
    assert anon["anonymous"] is True
    put = await auth_node.put("/v1/collections/notes/docs/n1", json={"t": 1}, headers=headers)
    assert put.status_code == 201
    linked = await auth_node.post(
        "/v1/auth/link",
        json={"email": "dev@example.com", "password": "linked password"},
        headers=headers,
    )
    assert linked.status_code == 200, linked.text
    assert linked.json()["uid"] == anon["uid"] and linked.json()["anonymous"] is False
    login = await auth_node.post(
        "/v1/auth/login", json={"email": "dev@example.com", "password": "linked password"}
    )
    new_headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    doc = await auth_node.get("/v1/collections/notes/docs/n1", headers=new_headers)
    assert doc.status_code == 200
    assert doc.json()["data"] == {"t": 1, "owner": anon["uid"]}


async def test_logout_revokes_the_refresh_token(auth_node: httpx.AsyncClient) -> None:
    """After sign-out the session's refresh token no longer works."""
    user = await sign_up(auth_node, "out@example.com")
    out = await auth_node.post("/v1/auth/logout", json={"refresh_token": user.refresh})
    assert out.status_code == 204
    again = await auth_node.post("/v1/auth/refresh", json={"refresh_token": user.refresh})
    assert again.status_code == 401


async def test_password_change_signs_out_other_sessions(auth_node: httpx.AsyncClient) -> None:
    """Changing the password revokes old refresh tokens; the new password works, the old not."""
    user = await sign_up(auth_node, "pw@example.com", "old password")
    changed = await auth_node.post(
        "/v1/auth/password",
        json={"current_password": "old password", "new_password": "new password"},
        headers=user.headers,
    )
    assert changed.status_code == 200, changed.text
    stale = await auth_node.post("/v1/auth/refresh", json={"refresh_token": user.refresh})
    assert stale.status_code == 401
    old = await auth_node.post(
        "/v1/auth/login", json={"email": "pw@example.com", "password": "old password"}
    )
    assert old.status_code == 401
    new = await auth_node.post(
        "/v1/auth/login", json={"email": "pw@example.com", "password": "new password"}
    )
    assert new.status_code == 200


async def test_password_change_needs_the_current_password(auth_node: httpx.AsyncClient) -> None:
    """A stolen access token alone cannot change the password."""
    user = await sign_up(auth_node, "pw2@example.com", "old password")
    refused = await auth_node.post(
        "/v1/auth/password",
        json={"current_password": "guess guess", "new_password": "new password"},
        headers=user.headers,
    )
    assert refused.status_code == 401
