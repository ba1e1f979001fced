"""The embedded ``AuthStore``: a SQLite file of its own in the node's data directory.

One connection behind a lock (auth writes are rare next to document writes); WAL with
``synchronous=FULL`` so that a sign-out or a revocation, once answered, survives a crash.
The schema is versioned by ``PRAGMA user_version`` (:data:`MIGRATIONS`); a file written before
versioning is at 0 and its tables match step 1, which only creates what is missing.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from breakwater.auth.records import (
    Account,
    ApiKey,
    LinkedIdentity,
    OidcFlow,
    OneTimeToken,
    RefreshToken,
)
from breakwater.auth.store import EmailTaken, IdentityTaken, RotateOutcome
from breakwater.core.errors import StoreIncompatible, StoreUnavailable
from breakwater.core.sqlite_wal import enable_wal

_SCHEMA_1 = """
CREATE TABLE IF NOT EXISTS accounts (
    uid TEXT PRIMARY KEY,
    email TEXT UNIQUE,
    password_hash TEXT,
    anonymous INTEGER NOT NULL,
    roles TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    totp_secret TEXT,
    totp_enabled INTEGER NOT NULL DEFAULT 0,
    recovery_hashes TEXT NOT NULL DEFAULT '[]',
    totp_last_step INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family TEXT NOT NULL,
    uid TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    amr TEXT NOT NULL DEFAULT '[]',
    used INTEGER NOT NULL DEFAULT 0,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS refresh_family ON refresh_tokens (family);
CREATE INDEX IF NOT EXISTS refresh_uid ON refresh_tokens (uid);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);
"""
MIGRATIONS: tuple[str, ...] = (
    _SCHEMA_1,
    # 2: the account lifecycle (ADR 0026): verified emails, disabled accounts, mailed tokens.
    """
    ALTER TABLE accounts ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE accounts ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE accounts ADD COLUMN deleted_ms INTEGER;
    CREATE TABLE one_time_tokens (
        token_hash TEXT PRIMARY KEY,
        purpose TEXT NOT NULL,
        uid TEXT NOT NULL,
        email TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL
    );
    CREATE INDEX one_time_uid ON one_time_tokens (uid, purpose);
    """,
)

_IDENTITY_SCHEMA = """
CREATE TABLE IF NOT EXISTS identities (
    provider TEXT NOT NULL,
    sub TEXT NOT NULL,
    uid TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (provider, sub)
);
CREATE INDEX IF NOT EXISTS identities_uid ON identities (uid);
CREATE TABLE IF NOT EXISTS oidc_flows (
    state_hash TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    nonce TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
"""
"""OpenID Connect (a step of its own, after the accounts schema, so either can grow alone)."""
_DAY_MS = 86_400_000
"""Flows older than a day are surely expired (``flow_ttl`` is minutes): dropped on insert."""
_ACCOUNT_COLUMNS = (
    "uid, email, password_hash, anonymous, roles, created_ms, totp_secret, totp_enabled,"
    " recovery_hashes, totp_last_step, email_verified, disabled"
)
_INSERT_ACCOUNT = (
    f"INSERT INTO accounts ({_ACCOUNT_COLUMNS})"
    f" VALUES ({', '.join('?' * len(_ACCOUNT_COLUMNS.split(',')))})"
)
_ONE_TIME_COLUMNS = "token_hash, purpose, uid, email, created_ms, expires_ms"
_TOMBSTONE = (
    "email = NULL, password_hash = NULL, roles = '[]', totp_secret = NULL, totp_enabled = 0,"
    " recovery_hashes = '[]', email_verified = 0, disabled = 1, deleted_ms = ?"
)
"""What an erased account keeps: its uid, disabled, so that the tokens issued to it before are
refused on every node and the uid is never given out again (ADR 0026)."""


def _account(row: Sequence[Any]) -> Account:
    return Account(
        uid=row[0],
        email=row[1],
        password_hash=row[2],
        anonymous=bool(row[3]),
        roles=tuple(json.loads(row[4])),
        created_ms=row[5],
        totp_secret=row[6],
        totp_enabled=bool(row[7]),
        recovery_hashes=tuple(json.loads(row[8])),
        totp_last_step=row[9],
        email_verified=bool(row[10]),
        disabled=bool(row[11]),
    )


def _account_row(a: Account) -> tuple[Any, ...]:
    return (
        a.uid,
        a.email.lower() if a.email else None,
        a.password_hash,
        int(a.anonymous),
        json.dumps(list(a.roles)),
        a.created_ms,
        a.totp_secret,
        int(a.totp_enabled),
        json.dumps(list(a.recovery_hashes)),
        a.totp_last_step,
        int(a.email_verified),
        int(a.disabled),
    )


def _key(row: Sequence[Any]) -> ApiKey:
    return ApiKey(row[0], row[1], frozenset(json.loads(row[2])), row[3], row[4], row[5])


def _migrate(db: sqlite3.Connection) -> None:
    """Bring the file to the newest version, one transaction per step.

    The version is read again inside each step's write transaction: the workers of one node
    (``serve --workers``) open a new file at once, and a step decided on a version read before
    another process migrated would run twice (and set the version back).
    """
    current = db.execute("PRAGMA user_version").fetchone()[0]
    if current > len(MIGRATIONS):
        db.close()
        raise StoreIncompatible(
            f"the auth store is at schema version {current}, newer than this Breakwater"
            f" ({len(MIGRATIONS)}); upgrade Breakwater"
        )
    for version in range(current + 1, len(MIGRATIONS) + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] >= version:
                db.execute("COMMIT")  # another process took this step meanwhile
                continue
            for statement in MIGRATIONS[version - 1].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {version}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


class SqliteAuthStore:
    """``AuthStore`` on one SQLite file (see :mod:`breakwater.auth.store` for the contract)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        """Create the file (owner-only permissions) and the schema."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch(mode=0o600, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA busy_timeout = 5000")
            enable_wal(db)
            db.execute("PRAGMA synchronous = FULL")
            _migrate(db)
            db.executescript(_IDENTITY_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"the auth store {str(self.path)!r} cannot be opened") from exc
        self._db = db

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._db is None:
                raise StoreUnavailable("the auth store is closed")
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.IntegrityError):
                    raise EmailTaken("an account with this email exists") from exc
                if isinstance(exc, sqlite3.Error):
                    raise StoreUnavailable("the auth store failed") from exc
                raise

    # accounts -----------------------------------------------------------------------------------

    def create_account(self, account: Account) -> None:
        """Insert a new account."""
        with self._tx() as db:
            db.execute(_INSERT_ACCOUNT, _account_row(account))

    def account(self, uid: str) -> Account | None:
        """The account ``uid``."""
        with self._tx() as db:
            row = db.execute(
                f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE uid = ? AND deleted_ms IS NULL",
                (uid,),
            ).fetchone()
        return None if row is None else _account(row)

    def account_by_email(self, email: str) -> Account | None:
        """The account with ``email``."""
        with self._tx() as db:
            row = db.execute(
                f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE email = ?", (email.lower(),)
            ).fetchone()
        return None if row is None else _account(row)

    def delete_account(self, uid: str, now_ms: int) -> bool:
        """Erase the account to its tombstone and remove its tokens, in one transaction."""
        with self._tx() as db:
            db.execute("DELETE FROM refresh_tokens WHERE uid = ?", (uid,))
            db.execute("DELETE FROM identities WHERE uid = ?", (uid,))
            db.execute("DELETE FROM one_time_tokens WHERE uid = ?", (uid,))
            return (
                db.execute(
                    f"UPDATE accounts SET {_TOMBSTONE} WHERE uid = ? AND deleted_ms IS NULL",
                    (now_ms, uid),
                ).rowcount
                > 0
            )

    def disabled_uids(self) -> frozenset[str]:
        """Every disabled account's uid."""
        with self._tx() as db:
            rows = db.execute("SELECT uid FROM accounts WHERE disabled = 1").fetchall()
        return frozenset(str(row[0]) for row in rows)

    def find_accounts(self, text: str, limit: int) -> Sequence[Account]:
        """Accounts by uid or email prefix, by email (substr: no LIKE wildcards to escape)."""
        text = text.lower()
        with self._tx() as db:
            rows = db.execute(
                f"SELECT {_ACCOUNT_COLUMNS} FROM accounts"
                " WHERE deleted_ms IS NULL AND (uid = ? OR substr(email, 1, ?) = ?)"
                " ORDER BY email, uid LIMIT ?",
                (text, len(text), text, limit),
            ).fetchall()
        return [_account(row) for row in rows]

    def update_account(self, account: Account) -> None:
        """Replace an account's fields."""
        row = _account_row(account)
        with self._tx() as db:
            db.execute(
                "UPDATE accounts SET email=?, password_hash=?, anonymous=?, roles=?, created_ms=?,"
                " totp_secret=?, totp_enabled=?, recovery_hashes=?, totp_last_step=?,"
                " email_verified=?, disabled=? WHERE uid = ? AND deleted_ms IS NULL",
                (*row[1:], row[0]),
            )

    # refresh tokens -----------------------------------------------------------------------------

    def add_refresh(self, token: RefreshToken) -> None:
        """Store a refresh token."""
        with self._tx() as db:
            self._insert_refresh(db, token)

    @staticmethod
    def _insert_refresh(db: sqlite3.Connection, t: RefreshToken) -> None:
        db.execute(
            "INSERT INTO refresh_tokens (token_hash, family, uid, created_ms, expires_ms, amr)"
            " VALUES (?,?,?,?,?,?)",
            (t.token_hash, t.family, t.uid, t.created_ms, t.expires_ms, json.dumps(list(t.amr))),
        )

    def rotate_refresh(
        self, old_hash: str, new: RefreshToken | None, now_ms: int
    ) -> tuple[RotateOutcome, RefreshToken | None]:
        """Use a token once; reuse revokes its family."""
        with self._tx() as db:
            row = db.execute(
                "SELECT family, uid, created_ms, expires_ms, amr, used, revoked"
                " FROM refresh_tokens WHERE token_hash = ?",
                (old_hash,),
            ).fetchone()
            if row is None:
                return "unknown", None
            family, uid, created_ms, expires_ms, amr, used, revoked = row
            old = RefreshToken(
                old_hash, family, uid, created_ms, expires_ms, tuple(json.loads(amr))
            )
            if used or revoked:
                db.execute("UPDATE refresh_tokens SET revoked = 1 WHERE family = ?", (family,))
                return "reused", old
            if expires_ms <= now_ms:
                return "expired", old
            db.execute("UPDATE refresh_tokens SET used = 1 WHERE token_hash = ?", (old_hash,))
            if new is not None:
                self._insert_refresh(
                    db,
                    RefreshToken(
                        new.token_hash, family, uid, new.created_ms, new.expires_ms, old.amr
                    ),
                )
            return "rotated", old

    def revoke_family(self, family: str) -> None:
        """Revoke a family."""
        with self._tx() as db:
            db.execute("UPDATE refresh_tokens SET revoked = 1 WHERE family = ?", (family,))

    def revoke_user(self, uid: str) -> None:
        """Revoke every family of a user."""
        with self._tx() as db:
            db.execute("UPDATE refresh_tokens SET revoked = 1 WHERE uid = ?", (uid,))

    def family_of(self, token_hash: str) -> str | None:
        """The family of a token."""
        with self._tx() as db:
            row = db.execute(
                "SELECT family FROM refresh_tokens WHERE token_hash = ?", (token_hash,)
            ).fetchone()
        return None if row is None else str(row[0])

    # one-time tokens ----------------------------------------------------------------------------

    def add_one_time(self, token: OneTimeToken) -> None:
        """Store a mailed token; the user's expired tokens of that purpose go."""
        with self._tx() as db:
            db.execute(
                "DELETE FROM one_time_tokens WHERE uid = ? AND purpose = ? AND expires_ms <= ?",
                (token.uid, token.purpose, token.created_ms),
            )
            db.execute(
                f"INSERT INTO one_time_tokens ({_ONE_TIME_COLUMNS}) VALUES (?,?,?,?,?,?)",
                (
                    token.token_hash,
                    token.purpose,
                    token.uid,
                    token.email,
                    token.created_ms,
                    token.expires_ms,
                ),
            )

    def use_one_time(self, token_hash: str, purpose: str, now_ms: int) -> OneTimeToken | None:
        """Spend a token; its user's other tokens of that purpose go with it."""
        with self._tx() as db:
            row = db.execute(
                f"SELECT {_ONE_TIME_COLUMNS} FROM one_time_tokens"
                " WHERE token_hash = ? AND purpose = ?",
                (token_hash, purpose),
            ).fetchone()
            if row is None:
                return None
            token = OneTimeToken(*row)
            db.execute(
                "DELETE FROM one_time_tokens WHERE uid = ? AND purpose = ?", (token.uid, purpose)
            )
        return token if token.expires_ms > now_ms else None

    # API keys -----------------------------------------------------------------------------------

    def add_key(self, key: ApiKey) -> None:
        """Store an API key."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO api_keys (key_id, name, scopes, secret_hash, created_ms)"
                " VALUES (?,?,?,?,?)",
                (
                    key.key_id,
                    key.name,
                    json.dumps(sorted(key.scopes)),
                    key.secret_hash,
                    key.created_ms,
                ),
            )

    def key(self, key_id: str) -> ApiKey | None:
        """One key."""
        with self._tx() as db:
            row = db.execute(
                "SELECT key_id, name, scopes, secret_hash, created_ms, revoked_ms"
                " FROM api_keys WHERE key_id = ?",
                (key_id,),
            ).fetchone()
        return None if row is None else _key(row)

    def keys(self) -> Sequence[ApiKey]:
        """Every key."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT key_id, name, scopes, secret_hash, created_ms, revoked_ms"
                " FROM api_keys ORDER BY created_ms, key_id"
            ).fetchall()
        return [_key(row) for row in rows]

    def revoke_key(self, key_id: str, now_ms: int) -> bool:
        """Revoke a live key."""
        with self._tx() as db:
            cursor = db.execute(
                "UPDATE api_keys SET revoked_ms = ? WHERE key_id = ? AND revoked_ms IS NULL",
                (now_ms, key_id),
            )
            return cursor.rowcount == 1

    # OpenID Connect -----------------------------------------------------------------------------

    def create_linked_account(self, account: Account, identity: LinkedIdentity) -> None:
        """Insert the account and its identity together."""
        with self._tx() as db:
            self._insert_identity(db, identity)
            db.execute(_INSERT_ACCOUNT, _account_row(account))

    def add_identity(self, identity: LinkedIdentity) -> None:
        """Link an identity."""
        with self._tx() as db:
            self._insert_identity(db, identity)

    @staticmethod
    def _insert_identity(db: sqlite3.Connection, identity: LinkedIdentity) -> None:
        # Checked first: the transaction is IMMEDIATE, so nobody links it in between, and an
        # IntegrityError would read as a taken email.
        if db.execute(
            "SELECT 1 FROM identities WHERE provider = ? AND sub = ?",
            (identity.provider, identity.sub),
        ).fetchone():
            raise IdentityTaken("this identity is linked to an account already")
        db.execute(
            "INSERT INTO identities (provider, sub, uid, created_ms) VALUES (?,?,?,?)",
            (identity.provider, identity.sub, identity.uid, identity.created_ms),
        )

    def identity_owner(self, provider: str, sub: str) -> str | None:
        """The uid of an identity."""
        with self._tx() as db:
            row = db.execute(
                "SELECT uid FROM identities WHERE provider = ? AND sub = ?", (provider, sub)
            ).fetchone()
        return None if row is None else str(row[0])

    def identities(self, uid: str) -> Sequence[LinkedIdentity]:
        """The identities of an account."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT provider, sub, uid, created_ms FROM identities WHERE uid = ?"
                " ORDER BY created_ms, provider",
                (uid,),
            ).fetchall()
        return [LinkedIdentity(*row) for row in rows]

    def add_flow(self, flow: OidcFlow) -> None:
        """Store a flow; expired ones go."""
        with self._tx() as db:
            db.execute("DELETE FROM oidc_flows WHERE expires_ms <= ?", (flow.expires_ms - _DAY_MS,))
            db.execute(
                "INSERT INTO oidc_flows (state_hash, provider, nonce, redirect_uri, expires_ms)"
                " VALUES (?,?,?,?,?)",
                (flow.state_hash, flow.provider, flow.nonce, flow.redirect_uri, flow.expires_ms),
            )

    def take_flow(self, state_hash: str, now_ms: int) -> OidcFlow | None:
        """Spend a flow."""
        with self._tx() as db:
            row = db.execute(
                "DELETE FROM oidc_flows WHERE state_hash = ?"
                " RETURNING state_hash, provider, nonce, redirect_uri, expires_ms",
                (state_hash,),
            ).fetchone()
        flow = None if row is None else OidcFlow(*row)
        return flow if flow is not None and flow.expires_ms > now_ms else None
