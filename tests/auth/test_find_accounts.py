"""``AuthStore.find_accounts`` on every backend: by uid or email prefix, literal, bounded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from breakwater.auth.records import Account
from breakwater.auth.store import AuthStore
from tests.auth.backends import AUTH_BACKENDS, opened_auth_store


@pytest.fixture(params=AUTH_BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AuthStore]:
    """An auth store with three accounts with emails and one anonymous one."""
    with opened_auth_store(request.param, tmp_path) as opened:
        for uid, email in (("u1", "ann@x.io"), ("u2", "anna@x.io"), ("u3", "bob%@x.io")):
            opened.create_account(Account(uid, email, None, False))
        opened.create_account(Account("u4", None, None, True))
        yield opened


def emails(accounts: object) -> list[str | None]:
    """The emails of a result, in its order."""
    assert isinstance(accounts, list | tuple)
    return [account.email for account in accounts]


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("ann", 10, ["ann@x.io", "anna@x.io"]),
        ("ANNA", 10, ["anna@x.io"]),
        ("", 10, ["ann@x.io", "anna@x.io", "bob%@x.io"]),
        ("", 2, ["ann@x.io", "anna@x.io"]),
        ("%", 10, []),
        ("_nn", 10, []),
        ("bob%", 10, ["bob%@x.io"]),
        ("u4", 10, [None]),
        ("u", 10, []),
    ],
)
def test_accounts_are_found_by_uid_or_literal_email_prefix(
    store: AuthStore, text: str, limit: int, expected: list[str | None]
) -> None:
    """Email prefixes are literal (no LIKE wildcards), case-insensitive, ordered and limited;
    a uid matches only whole."""
    assert emails(store.find_accounts(text, limit)) == expected
