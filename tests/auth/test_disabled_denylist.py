"""The in-memory denylist of disabled accounts: a reload that raced a local change never undoes
it."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from breakwater.auth.passwords import HashParameters, Passwords
from breakwater.auth.records import Account
from breakwater.auth.service import AccountDisabled, AuthService
from breakwater.auth.signing_keys import SigningKeys
from breakwater.auth.sqlite_store import SqliteAuthStore
from breakwater.auth.tokens import AccessClaims, TokenIssuer


async def test_a_reload_read_before_a_disable_does_not_undo_it(tmp_path: Path) -> None:
    """The reload reads the store, a disable commits and marks the uid, then the stale read
    lands: the uid stays refused; the next reload agrees with the store."""
    store = SqliteAuthStore(tmp_path / "auth.db")
    store.open()
    store.create_account(Account("u1", "a@x.io", None, anonymous=False))
    issuer = TokenIssuer(SigningKeys([SigningKeys.generate()]), "bw", 900)
    service = AuthService(store, issuer, Passwords(HashParameters(64, 1)), 60)
    token = issuer.issue(AccessClaims("u1", False, (), ("pwd",)))
    read, release = threading.Event(), threading.Event()
    read_store = store.disabled_uids

    def slow_read() -> frozenset[str]:
        snapshot = read_store()
        read.set()
        assert release.wait(10)
        return snapshot

    store.disabled_uids = slow_read  # type: ignore[method-assign]
    reload = asyncio.create_task(service.reload_disabled())
    await asyncio.to_thread(read.wait, 10)
    await service.set_disabled("u1", True)
    release.set()
    await reload
    with pytest.raises(AccountDisabled):
        service.verify_access(token)
    store.disabled_uids = read_store  # type: ignore[method-assign]
    await service.reload_disabled()
    assert service.disabled == {"u1"}
    store.close()
