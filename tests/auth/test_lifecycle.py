"""Mailed account flows end to end through a real SMTP server: email verification, password
reset and change of email; single-use, expiring tokens; no user enumeration."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from breakwater.server.node import Node
from tests.auth.backends import AUTH_BACKENDS
from tests.auth.conftest import RULES, sign_up
from tests.auth.mailbox import BASE_URL, Mailbox, run_mailbox, token_in
from tests.storage.backends import drop_schema, postgres_url

VERIFIED_RULES = """
[collections.verified]
rules = { read = "true", write = "auth != null && auth.email_verified" }
"""


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server on loopback."""
    yield from run_mailbox()


@pytest.fixture(params=AUTH_BACKENDS)
async def mail_node(
    request: pytest.FixtureRequest, make_client: Callable[..., Any], mailbox: Mailbox
) -> AsyncIterator[httpx.AsyncClient]:
    """The rules node of the auth tests, mailing to :func:`mailbox`, over each auth store."""
    toml = RULES + VERIFIED_RULES + mailbox.config
    if request.param == "sqlite":
        yield await make_client(toml)
        return
    url, schema = postgres_url()
    yield await make_client(toml, store=url)
    await drop_schema(schema)


def node_of(client: httpx.AsyncClient) -> Node:
    node: Node = client.app.state.node  # type: ignore[attr-defined]
    return node


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/v1/auth/login", json={"email": email, "password": password})


async def test_sign_up_mails_a_link_that_verifies_the_email_once(
    mail_node: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    """The link in the sign-up mail verifies the address; rules see it from the next token;
    the link works once."""
    user = await sign_up(mail_node, "ver@example.com")
    mail = await mailbox.wait_for("ver@example.com")
    assert mail["From"] == "accounts@example.com"
    assert mail["Subject"] == "Notes: confirm your email address"
    assert f"{BASE_URL}/verify?token=" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    refused = await mail_node.put(
        "/v1/collections/verified/docs/d", json={"x": 1}, headers=user.headers
    )
    assert refused.status_code == 403
    token = token_in(mail)
    confirmed = await mail_node.post("/v1/auth/email/verify/confirm", json={"token": token})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["email_verified"] is True
    again = await mail_node.post("/v1/auth/email/verify/confirm", json={"token": token})
    assert again.status_code == 400 and again.json()["type"] == "token_invalid"
    session = (await login(mail_node, "ver@example.com", "correct horse")).json()
    headers = {"Authorization": f"Bearer {session['access_token']}"}
    me = await mail_node.get("/v1/auth/me", headers=headers)
    assert me.json()["email_verified"] is True
    allowed = await mail_node.put("/v1/collections/verified/docs/d", json={"x": 1}, headers=headers)
    assert allowed.status_code == 201, allowed.text
    # Verified: no new link is sent.
    more = await mail_node.post("/v1/auth/email/verify", headers=headers)
    assert more.status_code == 403


async def test_a_new_verification_link_replaces_the_old_one(
    mail_node: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    """Asking again mails a new link; using it kills the older one too."""
    user = await sign_up(mail_node, "again@example.com")
    first = token_in(await mailbox.wait_for("again@example.com"))
    asked = await mail_node.post("/v1/auth/email/verify", headers=user.headers)
    assert asked.status_code == 202
    second = token_in(await mailbox.wait_for("again@example.com", 2))
    assert first != second
    ok = await mail_node.post("/v1/auth/email/verify/confirm", json={"token": second})
    assert ok.status_code == 200
    old = await mail_node.post("/v1/auth/email/verify/confirm", json={"token": first})
    assert old.status_code == 400 and old.json()["type"] == "token_invalid"


async def test_password_reset_by_mail_ends_every_session(
    mail_node: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    """Reset end to end: the mailed token sets a new password once; the old password and every
    refresh token of the account stop working."""
    user = await sign_up(mail_node, "reset@example.com")
    await mailbox.wait_for("reset@example.com")  # the verification mail
    asked = await mail_node.post("/v1/auth/password/reset", json={"email": "Reset@example.com"})
    assert asked.status_code == 202
    mail = await mailbox.wait_for("reset@example.com", 2)
    assert mail["Subject"] == "Notes: reset your password"
    token = token_in(mail)
    body = {"token": token, "new_password": "a brand new one"}
    done = await mail_node.post("/v1/auth/password/reset/confirm", json=body)
    assert done.status_code == 204, done.text
    reused = await mail_node.post("/v1/auth/password/reset/confirm", json=body)
    assert reused.status_code == 400 and reused.json()["type"] == "token_invalid"
    refresh = await mail_node.post("/v1/auth/refresh", json={"refresh_token": user.refresh})
    assert refresh.status_code == 401
    assert (await login(mail_node, "reset@example.com", "correct horse")).status_code == 401
    assert (await login(mail_node, "reset@example.com", "a brand new one")).status_code == 200


async def test_an_expired_reset_token_is_refused(
    mail_node: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    """A reset link older than its hour is refused, and the password stays."""
    await sign_up(mail_node, "late@example.com")
    await mail_node.post("/v1/auth/password/reset", json={"email": "late@example.com"})
    token = token_in(await mailbox.wait_for("late@example.com", 2))
    node_of(mail_node).lifecycle.clock = lambda: time.time() + 3601
    late = await mail_node.post(
        "/v1/auth/password/reset/confirm", json={"token": token, "new_password": "too late now"}
    )
    assert late.status_code == 400 and late.json()["type"] == "token_invalid"
    assert (await login(mail_node, "late@example.com", "correct horse")).status_code == 200


def _visible(response: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    """What a client sees of an answer, but the headers that differ between any two answers."""
    varying = {"date", "x-request-id", "ratelimit-remaining", "ratelimit", "ratelimit-policy"}
    headers = sorted((k, v) for k, v in response.headers.items() if k.lower() not in varying)
    return response.status_code, response.content, headers


async def test_reset_answers_the_same_for_known_and_unknown_addresses(
    mail_node: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    """Same status, body and headers; and the answer does not wait for the account lookup (so
    its timing cannot tell either): a lookup held back does not hold the answer."""
    await sign_up(mail_node, "known@example.com")
    await mailbox.wait_for("known@example.com")
    store = node_of(mail_node).auth_store
    release = threading.Event()
    looked_up = store.account_by_email

    def slow_lookup(email: str) -> Any:
        assert release.wait(10)
        return looked_up(email)

    store.account_by_email = slow_lookup  # type: ignore[method-assign]
    try:
        known = await mail_node.post("/v1/auth/password/reset", json={"email": "known@example.com"})
        unknown = await mail_node.post(
            "/v1/auth/password/reset", json={"email": "nobody@example.com"}
        )
    finally:
        release.set()
    assert _visible(known) == _visible(unknown)
    assert known.status_code == 202
    await mailbox.wait_for("known@example.com", 2)
    assert mailbox.to("nobody@example.com") == []


async def test_mails_to_one_address_are_capped(
    mail_node: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    """Nobody can flood an inbox through the reset endpoint: five mails an hour at most."""
    await sign_up(mail_node, "flood@example.com")
    for _ in range(8):
        answer = await mail_node.post(
            "/v1/auth/password/reset", json={"email": "flood@example.com"}
        )
        assert answer.status_code == 202
    await mailbox.wait_for("flood@example.com", 5)
    await node_of(mail_node).mailer.aclose()  # every queued send has run
    assert len(mailbox.to("flood@example.com")) == 5


async def test_email_change_is_confirmed_from_the_new_address(
    mail_node: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    """The password is asked again; the new address gets the link, the old one a notice; once
    confirmed, the account signs in with the new address only."""
    user = await sign_up(mail_node, "old@example.com")
    await mailbox.wait_for("old@example.com")
    wrong = await mail_node.post(
        "/v1/auth/email/change",
        json={"new_email": "new@example.com", "password": "not the password"},
        headers=user.headers,
    )
    assert wrong.status_code == 401
    asked = await mail_node.post(
        "/v1/auth/email/change",
        json={"new_email": "new@example.com", "password": "correct horse"},
        headers=user.headers,
    )
    assert asked.status_code == 202, asked.text
    link = await mailbox.wait_for("new@example.com")
    notice = await mailbox.wait_for("old@example.com", 2)
    assert "token=" not in notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    confirmed = await mail_node.post(
        "/v1/auth/email/change/confirm", json={"token": token_in(link)}
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["email"] == "new@example.com"
    assert confirmed.json()["email_verified"] is True
    assert (await login(mail_node, "old@example.com", "correct horse")).status_code == 401
    assert (await login(mail_node, "new@example.com", "correct horse")).status_code == 200


async def test_an_email_taken_meanwhile_is_refused_at_confirmation(
    mail_node: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    """Asking for a taken address reveals nothing; confirming it is 409 and changes nothing."""
    user = await sign_up(mail_node, "first@example.com")
    asked = await mail_node.post(
        "/v1/auth/email/change",
        json={"new_email": "second@example.com", "password": "correct horse"},
        headers=user.headers,
    )
    assert asked.status_code == 202
    token = token_in(await mailbox.wait_for("second@example.com"))
    await sign_up(mail_node, "second@example.com")
    taken = await mail_node.post("/v1/auth/email/change/confirm", json={"token": token})
    assert taken.status_code == 409 and taken.json()["type"] == "email_taken"
    assert (await login(mail_node, "first@example.com", "correct horse")).status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/auth/password/reset", {"email": "not an address"}),
        ("/v1/auth/password/reset", {"email": 7}),
        ("/v1/auth/password/reset", {"email": "a@example.com", "extra": 1}),
        ("/v1/auth/password/reset/confirm", {"token": "x", "new_password": "short"}),
        ("/v1/auth/password/reset/confirm", {"new_password": "long enough"}),
        ("/v1/auth/password/reset/confirm", {"token": "x" * 500, "new_password": "long enough"}),
        ("/v1/auth/email/verify/confirm", {"token": ["x"]}),
        ("/v1/auth/email/verify/confirm", {"token": "unknown"}),
        ("/v1/auth/email/change/confirm", {"token": "unknown"}),
    ],
)
async def test_bad_input_is_a_4xx_problem(
    mail_node: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    """Malformed requests and unknown tokens are 400 problem+json."""
    answer = await mail_node.post(path, json=body)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"


async def test_without_smtp_the_mailed_flows_are_off(rules_node: httpx.AsyncClient) -> None:
    """A node with no SMTP server says so (404 mail_off) instead of pretending to mail."""
    user = await sign_up(rules_node, "nomail@example.com")
    reset = await rules_node.post("/v1/auth/password/reset", json={"email": "nomail@example.com"})
    assert reset.status_code == 404 and reset.json()["type"] == "mail_off"
    verify = await rules_node.post("/v1/auth/email/verify", headers=user.headers)
    assert verify.status_code == 404


async def test_tokens_and_the_smtp_password_stay_out_of_the_logs(
    make_client: Callable[..., Any], mailbox: Mailbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mail failures are logged by kind; neither the SMTP password nor a token is written."""
    secret = "smtp-secret-Zq81"
    toml = RULES + mailbox.config.replace('security = "none"', 'security = "starttls"')
    client = await make_client(toml + f'user = "u"\npassword = "{secret}"\n')
    assert secret not in repr(node_of(client).config)
    await sign_up(client, "logs@example.com")
    await client.post("/v1/auth/password/reset", json={"email": "logs@example.com"})
    await node_of(client).mailer.aclose()
    out = capsys.readouterr()
    logged = out.out + out.err
    assert "mail_failed" in logged  # aiosmtpd here has no STARTTLS: every send fails
    assert secret not in logged
    assert "token=" not in logged


async def test_reset_requests_are_limited_per_address_like_sign_in(
    make_client: Callable[..., Any], mailbox: Mailbox
) -> None:
    """The reset endpoints share the per-address sign-in bucket, whatever token is sent."""
    # A bucket of 2 that refills once in 1,000 s: a slow machine cannot earn a token back.
    limited = 'mode = "enforce"\nburst_auth_per_ip = 2\nrate_auth_per_ip = 0.001'
    toml = RULES.replace('mode = "enforce"', limited)
    client = await make_client(toml + mailbox.config)
    body = {"email": "limited@example.com"}
    answers = [
        (await client.post("/v1/auth/password/reset", json=body)).status_code for _ in range(3)
    ]
    assert answers == [202, 202, 429]
    confirm = await client.post(
        "/v1/auth/password/reset/confirm", json={"token": "x", "new_password": "long enough"}
    )
    assert confirm.status_code == 429
