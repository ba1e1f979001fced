"""Log redaction: every form a library prints a secret in loses the secret, and only it."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from breakwater.obs.redact import REDACTED, redact_event, redact_text

SECRET = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_~.", min_size=8
)
FORMS = [
    '127.0.0.1:5 - "GET /v1/realtime/sse?access_token={s} HTTP/1.1" 200',
    '"WebSocket /v1/realtime?cursor=abc&access_token={s}" [accepted]',
    "< GET /v1/realtime?access_token={s} HTTP/1.1",
    "< authorization: Bearer {s}",
    "> Authorization: ApiKey {s}",
    "headers=[(b'authorization', b'Bearer {s}')]",
    '< TEXT \'{{"type": "auth", "token": "{s}"}}\' [300 bytes]',
    "body {{'password': '{s}', 'email': 'a@b.c'}}",
    "refresh_token={s}",
    "connecting to postgresql://app:{s}@db:5432/breakwater",
]


@given(SECRET, st.sampled_from(FORMS))
def test_a_secret_in_any_known_form_is_redacted(secret: str, form: str) -> None:
    """The secret is gone; the line keeps its shape and says it was redacted."""
    line = form.format(s=secret)
    redacted = redact_text(line)
    assert secret not in redacted
    assert REDACTED in redacted


@given(st.from_regex(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}", fullmatch=True))
def test_a_token_shaped_value_is_redacted_anywhere(token: str) -> None:
    """An access token (a JWT) is removed even in a form no rule names."""
    assert token not in redact_text(f"something odd happened near {token} here")


def test_lines_without_secrets_are_left_as_they_are() -> None:
    """Paths, statuses, events and plain questions pass unchanged."""
    for line in [
        '127.0.0.1:5 - "POST /v1/sync/push HTTP/1.1" 200',
        "Application startup complete.",
        "is the node ready? not yet",
        '< TEXT \'{"type": "subscribe", "collections": ["notes"]}\' [47 bytes]',
    ]:
        assert redact_text(line) == line


def test_an_event_field_named_like_a_credential_is_redacted() -> None:
    """structlog fields: a credential's name redacts its value, other fields keep theirs."""
    event = {"event": "x", "password": "hunter2-secret", "path": "/v1/a", "status": 200}
    out = redact_event(None, "info", dict(event))
    assert json.dumps(out).count("hunter2-secret") == 0
    assert out["path"] == "/v1/a" and out["status"] == 200


@given(SECRET, st.sampled_from(FORMS), st.sampled_from(["event", "path", "exception", "url"]))
def test_a_secret_in_any_field_of_an_event_is_redacted(secret: str, form: str, key: str) -> None:
    """Whichever field a line puts it in, with the request line's other fields around it."""
    event = {"event": "request", "method": "GET", "status": 200, "request_id": "ab-1"}
    event[key] = form.format(s=secret)
    assert secret not in json.dumps(redact_event(None, "info", event))
