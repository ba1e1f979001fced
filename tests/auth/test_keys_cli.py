"""``breakwater keys``: create prints the key once, list never shows it, revoke disables it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from breakwater.auth.passwords import Passwords
from breakwater.auth.service import AuthService
from breakwater.auth.signing_keys import load_keys
from breakwater.auth.sqlite_store import SqliteAuthStore
from breakwater.auth.tokens import TokenIssuer
from breakwater.cli.main import app
from breakwater.core.errors import Unauthorized


def test_create_list_revoke(tmp_path: Path) -> None:
    """A created key verifies until revoked; list shows its id and scopes, not the secret."""
    runner = CliRunner()
    data = ["--data", str(tmp_path)]
    created = runner.invoke(app, ["keys", "create", "reports", "--scope", "read:notes", *data])
    assert created.exit_code == 0, created.output
    key_id, secret = created.output.split()[0], created.output.split()[-1]
    listed = runner.invoke(app, ["keys", "list", *data])
    assert key_id in listed.output and "read:notes" in listed.output and "active" in listed.output
    assert secret not in listed.output and secret.split("_")[-1] not in listed.output
    store = SqliteAuthStore(tmp_path / "auth.db")
    store.open()
    service = AuthService(
        store, TokenIssuer(load_keys(tmp_path / "auth-keys.json"), "x", 60), Passwords(), 60
    )
    assert service.verify_key(secret).scopes == {"read:notes"}
    revoked = runner.invoke(app, ["keys", "revoke", key_id, *data])
    assert revoked.exit_code == 0
    with pytest.raises(Unauthorized):
        service.verify_key(secret)
    store.close()
    again = runner.invoke(app, ["keys", "revoke", key_id, *data])
    assert again.exit_code != 0


def test_rotate_signing_keeps_the_old_key(tmp_path: Path) -> None:
    """Rotation adds a key and keeps the previous one for verification."""
    before = load_keys(tmp_path / "auth-keys.json")
    result = CliRunner().invoke(app, ["keys", "rotate-signing", "--data", str(tmp_path)])
    assert result.exit_code == 0, result.output
    after = load_keys(tmp_path / "auth-keys.json")
    assert after.find(before.current.kid) is not None and after.current.kid != before.current.kid
