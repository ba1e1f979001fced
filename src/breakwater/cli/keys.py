"""``breakwater keys``: API keys (create, list, revoke) and signing-key rotation, on a node's
data directory. A key is printed once, at creation; only its hash is stored."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from breakwater.auth.passwords import Passwords
from breakwater.auth.service import AuthService
from breakwater.auth.signing_keys import load_keys, save_keys
from breakwater.auth.store import AuthStore
from breakwater.auth.tokens import TokenIssuer
from breakwater.config import Config, load_config
from breakwater.core.errors import NotFound
from breakwater.server.auth_backend import auth_store_for

app = typer.Typer(help="API keys for servers and admins, and access-token signing keys.")

DataOption = Annotated[Path | None, typer.Option(help="Data directory (default ./data).")]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML config file (or BREAKWATER_CONFIG).")
]


def _config(data: Path | None, config: Path | None) -> Config:
    return load_config(config, overrides={"data": data})


def _keys_path(config: Config) -> Path:
    file = config.auth.signing_keys_file
    return Path(file) if file else config.data / "auth-keys.json"


def _service(config: Config) -> tuple[AuthService, AuthStore]:
    store = auth_store_for(config)
    store.open()
    issuer = TokenIssuer(
        load_keys(_keys_path(config)), config.auth.audience, config.auth.access_ttl
    )
    return AuthService(store, issuer, Passwords(), config.auth.refresh_ttl), store


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="What the key is for (shown in list).")],
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope", help="admin, replication, read:NAME, write:NAME, read:* or write:*; repeat."
        ),
    ],
    data: DataOption = None,
    config: ConfigOption = None,
    key_file: Annotated[
        Path | None,
        typer.Option(
            help="Install the key in this file (as an earlier create printed it) instead of a new"
            " one: a region rebuilt on an empty store keeps the keys its peers hold."
        ),
    ] = None,
) -> None:
    """Create a key and print it once (send it as ``Authorization: ApiKey <key>``)."""
    service, store = _service(_config(data, config))
    try:
        if key_file is None:
            secret, record = service.create_key(name, scope)
        else:
            secret = key_file.read_text().strip()
            record = service.install_key(name, scope, secret)
    finally:
        store.close()
    typer.echo(f"{record.key_id}\t{','.join(sorted(record.scopes))}")
    typer.echo(secret)


@app.command("list")
def list_keys(data: DataOption = None, config: ConfigOption = None) -> None:
    """Every key: id, name, scopes, created, and whether it is revoked (never the secret)."""
    _, store = _service(_config(data, config))
    try:
        keys = store.keys()
    finally:
        store.close()
    for key in keys:
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(key.created_ms / 1000))
        state = "revoked" if key.revoked_ms is not None else "active"
        typer.echo(f"{key.key_id}\t{key.name}\t{','.join(sorted(key.scopes))}\t{created}\t{state}")


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The id printed by create or list.")],
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Revoke a key: running nodes refuse it from their next request on."""
    _, store = _service(_config(data, config))
    try:
        revoked = store.revoke_key(key_id, int(time.time() * 1000))
    finally:
        store.close()
    if not revoked:
        raise NotFound(f"no active API key {key_id!r}")
    typer.echo(f"revoked {key_id}")


@app.command("rotate-signing")
def rotate_signing(data: DataOption = None, config: ConfigOption = None) -> None:
    """Add a new access-token signing key; tokens signed with older keys stay valid.

    Restart (or roll) the nodes to sign with the new key. Keys retired for longer than the
    access-token lifetime are dropped.
    """
    settings = _config(data, config)
    path = _keys_path(settings)
    keys = load_keys(path).rotated(keep_seconds=settings.auth.access_ttl * 2)
    save_keys(path, keys)
    typer.echo(f"signing with {keys.current.kid}; {len(keys.keys)} keys verify")
