"""``breakwater users``: look up accounts and set their roles (roles gate MFA and rules)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from breakwater.auth.store import AuthStore
from breakwater.config import load_config
from breakwater.core.errors import NotFound, ValidationError
from breakwater.server.auth_backend import auth_store_for

app = typer.Typer(help="Accounts: show one, set its roles.")

DataOption = Annotated[Path | None, typer.Option(help="Data directory (default ./data).")]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML config file (or BREAKWATER_CONFIG).")
]


def _store(data: Path | None, config: Path | None) -> AuthStore:
    store = auth_store_for(load_config(config, overrides={"data": data}))
    store.open()
    return store


@app.command("show")
def show(
    email: Annotated[str, typer.Argument(help="The account's email.")],
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Print uid, roles and whether MFA is on (never a hash or secret)."""
    store = _store(data, config)
    try:
        account = store.account_by_email(email)
    finally:
        store.close()
    if account is None:
        raise NotFound(f"no account with email {email!r}")
    roles = ",".join(account.roles) or "-"
    typer.echo(f"{account.uid}\t{account.email}\troles={roles}\tmfa={account.totp_enabled}")


@app.command("set-roles")
def set_roles(
    email: Annotated[str, typer.Argument(help="The account's email.")],
    role: Annotated[list[str], typer.Option("--role", help="A role; repeat. None clears.")] = [],  # noqa: B006
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Replace the account's roles; they take effect at its next sign-in or token refresh."""
    bad = [name for name in role if not name.isidentifier()]
    if bad:
        raise ValidationError(f"roles must be identifiers: {bad}")
    store = _store(data, config)
    try:
        account = store.account_by_email(email)
        if account is None:
            raise NotFound(f"no account with email {email!r}")
        store.update_account(replace(account, roles=tuple(dict.fromkeys(role))))
    finally:
        store.close()
    typer.echo(f"{account.uid}\troles={','.join(dict.fromkeys(role)) or '-'}")
