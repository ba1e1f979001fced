"""The admin console's account calls on every auth store backend: ``find_accounts`` (by uid
or literal email prefix, bounded) and ``delete_account``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from breakwater.auth.records import Account, RefreshToken
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


def test_deleting_an_account_removes_it_and_its_refresh_tokens(store: AuthStore) -> None:
    """The account and its tokens go together; the others stay; a second delete is False."""
    store.add_refresh(RefreshToken("h1", "f1", "u1", 0, 10**13))
    store.add_refresh(RefreshToken("h2", "f2", "u2", 0, 10**13))
    assert store.delete_account("u1", 0) is True
    assert store.account("u1") is None
    assert store.family_of("h1") is None
    assert store.family_of("h2") == "f2"
    assert emails(store.find_accounts("ann", 10)) == ["anna@x.io"]
    assert store.delete_account("u1", 0) is False
