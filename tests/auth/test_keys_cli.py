"""``breakwater keys``: create prints the key once, list never shows it, revoke disables it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from typer.testing import CliRunner

from breakwater.auth.passwords import Passwords
from breakwater.auth.postgres_store import PostgresAuthStore
from breakwater.auth.service import AuthService
from breakwater.auth.signing_keys import load_keys
from breakwater.auth.sqlite_store import SqliteAuthStore
from breakwater.auth.tokens import TokenIssuer
from breakwater.cli.main import app
from breakwater.core.errors import Unauthorized
from tests.storage.backends import drop_schema, postgres_url


def test_create_list_revoke(tmp_path: Path) -> None:
    """A created key verifies until revoked; list shows its id and scopes, not the secret."""
    runner = CliRunner()
    data = ["--data", str(tmp_path)]
    created = runner.invoke(app, ["keys", "create", "reports", "--scope", "read:notes", *data])
    assert created.exit_code == 0, created.output
    key_id, secret = created.output.split()[0], created.output.split()[-1]
    listed = runner.invoke(app, ["keys", "list", *data])
    assert key_id in listed.output and "read:notes" in listed.output and "active" in listed.output
    assert secret not in listed.output and secret.split("_", 2)[2] not in listed.output
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


def test_create_with_a_key_file_installs_that_key_on_an_empty_store(tmp_path: Path) -> None:
    """A region rebuilt on an empty store takes back the key its peers hold: the same key
    verifies there, with the scopes given; a file that holds no key is refused."""
    runner = CliRunner()
    first = ["--data", str(tmp_path / "old")]
    created = runner.invoke(app, ["keys", "create", "ops", "--scope", "admin", *first])
    assert created.exit_code == 0, created.output
    key = created.output.split()[-1]
    (tmp_path / "key").write_text(key + "\n")
    rebuilt = ["--data", str(tmp_path / "new"), "--key-file", str(tmp_path / "key")]
    installed = runner.invoke(app, ["keys", "create", "ops", "--scope", "admin", *rebuilt])
    assert installed.exit_code == 0, installed.output
    store = SqliteAuthStore(tmp_path / "new" / "auth.db")
    store.open()
    keys = load_keys(tmp_path / "new" / "auth-keys.json")
    service = AuthService(store, TokenIssuer(keys, "x", 60), Passwords(), 60)
    assert service.verify_key(key).scopes == {"admin"}
    store.close()
    (tmp_path / "bad").write_text("not-a-key\n")
    bad = ["--data", str(tmp_path / "new"), "--key-file", str(tmp_path / "bad")]
    refused = runner.invoke(app, ["keys", "create", "x", "--scope", "admin", *bad])
    assert refused.exit_code != 0


def test_rotate_signing_keeps_the_old_key(tmp_path: Path) -> None:
    """Rotation adds a key and keeps the previous one for verification."""
    before = load_keys(tmp_path / "auth-keys.json")
    result = CliRunner().invoke(app, ["keys", "rotate-signing", "--data", str(tmp_path)])
    assert result.exit_code == 0, result.output
    after = load_keys(tmp_path / "auth-keys.json")
    assert after.find(before.current.kid) is not None and after.current.kid != before.current.kid


async def test_set_roles_takes_effect_at_the_next_sign_in(
    tmp_path: Path, make_client: object
) -> None:
    """``breakwater users set-roles`` gives an account roles its next token carries."""
    from collections.abc import Callable
    from typing import Any, cast

    make = cast(Callable[..., Any], make_client)
    client = await make("[auth]\npassword_memory_kib = 64\npassword_time_cost = 1\n")
    data = client.app.state.node.config.data
    await client.post("/v1/auth/signup", json={"email": "r@example.com", "password": "pw-pw-pw-pw"})
    runner = CliRunner()
    result = runner.invoke(
        app, ["users", "set-roles", "r@example.com", "--role", "admin", "--data", str(data)]
    )
    assert result.exit_code == 0, result.output
    login = await client.post(
        "/v1/auth/login", json={"email": "r@example.com", "password": "pw-pw-pw-pw"}
    )
    me = await client.get(
        "/v1/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
    )
    assert me.json()["roles"] == ["admin"]
    shown = runner.invoke(app, ["users", "show", "r@example.com", "--data", str(data)])
    assert "roles=admin" in shown.output and "argon2" not in shown.output


def test_serve_with_an_invalid_rule_fails_with_one_error_line(tmp_path: Path) -> None:
    """An invalid CEL rule stops ``breakwater serve`` before it listens: exit 2, one Error: line."""
    import subprocess
    import sys

    config = tmp_path / "bad.toml"
    config.write_text('[collections.notes]\nrules.read = "auth.uid =="\n')
    result = subprocess.run(
        [sys.executable, "-m", "breakwater", "serve", "--config", str(config), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "collections.notes.rules.read" in errors[0]
    assert "not valid CEL" in errors[0]


async def test_keys_made_with_a_postgresql_store_are_in_the_database(tmp_path: Path) -> None:
    """With BREAKWATER_STORE on PostgreSQL, the CLI writes where every node reads: not auth.db."""
    url, schema = postgres_url()
    try:
        created = CliRunner().invoke(
            app,
            ["keys", "create", "ops", "--scope", "admin", "--data", str(tmp_path)],
            env={"BREAKWATER_STORE": url},
        )
        assert created.exit_code == 0, created.output
        key_id = created.output.split()[0]
        assert not (tmp_path / "auth.db").exists()
        parts = urlsplit(url)
        store = PostgresAuthStore(parts._replace(query="").geturl(), schema)
        store.open()
        try:
            key = await asyncio.to_thread(store.key, key_id)
        finally:
            store.close()
        assert key is not None and key.scopes == {"admin"}
    finally:
        await drop_schema(schema)
