"""``breakwater users``: look up accounts, set their roles (roles gate MFA and rules), disable
and enable them, and delete or export them with their data.

``show``, ``set-roles``, ``disable`` and ``enable`` work on the auth store itself (a running node
follows a disable within seconds, ADR 0026). ``delete`` and ``export`` reach the documents too,
so they ask a running node's admin API: a deletion must go through the node's write path, so
that devices and peers see its tombstones.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from breakwater.auth.records import Account
from breakwater.auth.store import AuthStore
from breakwater.config import load_config
from breakwater.core.errors import NotFound, Unavailable, ValidationError
from breakwater.server.auth_backend import auth_store_for

app = typer.Typer(help="Accounts: show, set roles, disable, enable, delete, export.")
ADMIN_KEY_ENV = "BREAKWATER_ADMIN_KEY"

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


def _set_disabled(email: str, disabled: bool, data: Path | None, config: Path | None) -> Account:
    store = _store(data, config)
    try:
        account = store.account_by_email(email)
        if account is None:
            raise NotFound(f"no account with email {email!r}")
        account = replace(account, disabled=disabled)
        store.update_account(account)
        if disabled:
            store.revoke_user(account.uid)
    finally:
        store.close()
    return account


@app.command("disable")
def disable(
    email: Annotated[str, typer.Argument(help="The account's email.")],
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Disable an account: its sessions end now, its tokens are refused within seconds."""
    account = _set_disabled(email, True, data, config)
    typer.echo(f"{account.uid}\tdisabled")


@app.command("enable")
def enable(
    email: Annotated[str, typer.Argument(help="The account's email.")],
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Re-enable a disabled account (it signs in again; old sessions stay ended)."""
    account = _set_disabled(email, False, data, config)
    typer.echo(f"{account.uid}\tenabled")


UrlOption = Annotated[str, typer.Option(help="The running node's URL.")]
KeyOption = Annotated[
    str | None, typer.Option("--key", help=f"An admin API key (or {ADMIN_KEY_ENV}).")
]


def _admin(url: str, key: str | None) -> httpx.Client:
    key = key or os.environ.get(ADMIN_KEY_ENV)
    if not key:
        raise ValidationError(f"an admin API key is required: --key or {ADMIN_KEY_ENV}")
    return httpx.Client(base_url=url, headers={"Authorization": f"ApiKey {key}"}, timeout=60)


def _call(client: httpx.Client, method: str, path: str, **params: Any) -> httpx.Response:
    try:
        response = client.request(method, path, params=params or None)
    except httpx.HTTPError as exc:
        raise Unavailable(f"the node at {client.base_url} cannot be reached ({exc})") from exc
    if response.is_error:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        if response.status_code == 404:
            raise NotFound(str(detail))
        raise ValidationError(f"the node answered {response.status_code}: {detail}")
    return response


def _uid_of(client: httpx.Client, email: str) -> str:
    found = _call(client, "GET", "/v1/admin/accounts", q=email, limit=1).json()["accounts"]
    if not found or found[0]["email"] != email.lower():
        raise NotFound(f"no account with email {email!r}")
    return str(found[0]["uid"])


@app.command("export")
def export(
    email: Annotated[str, typer.Argument(help="The account's email.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    url: UrlOption = "http://127.0.0.1:8080",
    key: KeyOption = None,
) -> None:
    """Write the account and every document it owns as JSON (the GDPR right of access)."""
    with _admin(url, key) as client:
        uid = _uid_of(client, email)
        body = _call(client, "GET", f"/v1/admin/accounts/{uid}/export").json()
    text = json.dumps(body, indent=2, ensure_ascii=False)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text + "\n")
        typer.echo(f"{uid}\texported to {output}", err=True)


@app.command("delete")
def delete(
    email: Annotated[str, typer.Argument(help="The account's email.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    url: UrlOption = "http://127.0.0.1:8080",
    key: KeyOption = None,
) -> None:
    """Delete the account and the documents it owns (docs/security.md#account-deletion)."""
    if not yes:
        typer.confirm(f"Delete {email} and every document it owns?", abort=True)
    with _admin(url, key) as client:
        uid = _uid_of(client, email)
        _call(client, "DELETE", f"/v1/admin/accounts/{uid}")
    typer.echo(f"{uid}\tdeleted")
