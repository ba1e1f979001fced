"""Accounts and sessions: sign-up, sign-in, anonymous accounts, refresh rotation, sign-out,
password change, email linking, TOTP enrolment, disabled accounts and API keys.

Every method that hashes a password or touches the store runs in a worker thread, so a burst
of sign-ins (argon2id costs tens of milliseconds each) never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from breakwater.auth import totp
from breakwater.auth.identity import ADMIN_SCOPE, Identity
from breakwater.auth.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, Passwords
from breakwater.auth.records import Account, ApiKey, RefreshToken
from breakwater.auth.store import AuthStore
from breakwater.auth.tokens import AccessClaims, TokenIssuer, hash_secret, new_refresh_secret
from breakwater.core.errors import (
    BreakwaterError,
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationError,
)

T = TypeVar("T")
MAX_ROLES = 32
# Printable ASCII but space and "@": no lookalike or invisible characters in a sign-in name.
EMAIL_PATTERN = re.compile(r"^[!-?A-~]{1,64}@[!-?A-~]{1,255}\.[!-?A-~]{1,63}$", re.ASCII)
KEY_PREFIX = "bwk"
KEY_SCOPE_PATTERN = re.compile(
    r"^(admin|replication|(read|write):(\*|[A-Za-z][A-Za-z0-9_]{0,63}))$", re.ASCII
)
BAD_CREDENTIALS = "the email or password is wrong"


class AccountDisabled(BreakwaterError):
    """An admin disabled the account: no sign-in, refresh or request until re-enabled."""

    type = "account_disabled"
    status = 403
    title = "Account disabled"


@dataclass(frozen=True)
class Session:
    """What a successful sign-in returns: an access token and a refresh token."""

    access_token: str
    refresh_token: str
    expires_in: int
    uid: str
    anonymous: bool


@dataclass(frozen=True)
class Enrolment:
    """A started TOTP enrolment: the secret to show once and its ``otpauth://`` URI."""

    secret: str
    uri: str


def check_email(email: object) -> str:
    """A syntactically plausible email, lower-cased."""
    if not isinstance(email, str) or not EMAIL_PATTERN.fullmatch(email):
        raise ValidationError("email is not a valid address", field="email")
    return email.lower()


def check_password(password: object) -> str:
    """A password of an acceptable length (NIST 800-63B: length, not composition rules)."""
    if not isinstance(password, str) or not (
        MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH
    ):
        raise ValidationError(
            f"password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
            field="password",
        )
    return password


class AuthService:
    """The account and token operations behind ``/v1/auth``."""

    def __init__(
        self,
        store: AuthStore,
        issuer: TokenIssuer,
        passwords: Passwords,
        refresh_ttl_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.issuer = issuer
        self.passwords = passwords
        self.refresh_ttl = refresh_ttl_seconds
        self.clock = clock
        self.disabled: frozenset[str] = frozenset()
        """Disabled uids, refused on every request: see :meth:`reload_disabled` (ADR 0026)."""
        self._local_changes = 0

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.to_thread(work)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # disabled accounts --------------------------------------------------------------------------

    def verify_access(self, token: str) -> Identity:
        """The identity of a valid access token whose account is not disabled.

        Access tokens are JWTs verified without the store; the disabled set is the short
        denylist that makes disabling take effect before they expire.
        """
        identity = self.issuer.verify(token)
        if identity.uid in self.disabled:
            raise AccountDisabled("this account is disabled")
        return identity

    async def reload_disabled(self) -> None:
        """Read the disabled accounts from the store (other nodes and the CLI disable too).

        A read that raced a change made here is dropped (it may predate it); the next one
        takes it.
        """
        before = self._local_changes
        fresh = await self._run(self.store.disabled_uids)
        if self._local_changes == before:
            self.disabled = fresh

    def _mark(self, uid: str, disabled: bool) -> None:
        self._local_changes += 1
        self.disabled = (self.disabled | {uid}) if disabled else (self.disabled - {uid})

    async def set_disabled(self, uid: str, disabled: bool) -> Account:
        """Disable (or re-enable) an account: its sessions end and its access tokens are refused
        from now on by this node, and by the others at their next :meth:`reload_disabled`."""

        def work() -> Account:
            account = self.store.account(uid)
            if account is None:
                raise NotFound(f"no account {uid!r}")
            updated = replace(account, disabled=disabled)
            self.store.update_account(updated)
            if disabled:
                self.store.revoke_user(uid)
            return updated

        account = await self._run(work)
        self._mark(uid, disabled)
        return account

    # sessions -----------------------------------------------------------------------------------

    def _start_session(self, account: Account, amr: tuple[str, ...]) -> Session:
        """Issue an access token and the first refresh token of a new family."""
        refresh = new_refresh_secret()
        now_ms = self._now_ms()
        self.store.add_refresh(
            RefreshToken(
                hash_secret(refresh),
                family=secrets.token_hex(12),
                uid=account.uid,
                created_ms=now_ms,
                expires_ms=now_ms + int(self.refresh_ttl * 1000),
                amr=amr,
            )
        )
        return self._session(account, refresh, amr)

    def sign_in_as(
        self, account: Account, amr: tuple[str, ...], otp: object, recovery_code: object
    ) -> Session:
        """A new session for an account another party authenticated (an OpenID Connect
        provider); ``amr`` says how. An account with TOTP on still needs its code: a linked
        provider replaces the password, not the second factor. Runs in a worker thread."""
        if account.totp_enabled:
            account = self._second_factor(account, otp, recovery_code)
            amr = (*amr, "otp")
        return self._start_session(account, amr)

    def _session(self, account: Account, refresh: str, amr: tuple[str, ...]) -> Session:
        access = self.issuer.issue(
            AccessClaims(
                account.uid, account.anonymous, account.roles, amr, account.email_verified
            ),
            now=self.clock(),
        )
        return Session(access, refresh, int(self.issuer.ttl), account.uid, account.anonymous)

    async def signup(self, email: object, password: object) -> Session:
        """Create an email+password account and sign it in."""
        address, secret = check_email(email), check_password(password)

        def work() -> Session:
            account = Account(
                uid=_new_uid(),
                email=address,
                password_hash=self.passwords.hash(secret),
                anonymous=False,
                created_ms=self._now_ms(),
            )
            self.store.create_account(account)
            return self._start_session(account, ("pwd",))

        return await self._run(work)

    async def anonymous(self) -> Session:
        """Create an anonymous account (a device that has not signed up) and sign it in."""

        def work() -> Session:
            account = Account(_new_uid(), None, None, anonymous=True, created_ms=self._now_ms())
            self.store.create_account(account)
            return self._start_session(account, ("anon",))

        return await self._run(work)

    async def login(
        self, email: object, password: object, otp: object = None, recovery_code: object = None
    ) -> Session:
        """Sign in with email and password, plus a TOTP or recovery code once MFA is on."""
        if not isinstance(email, str) or not isinstance(password, str):
            raise ValidationError("email and password are required")
        if len(password) > MAX_PASSWORD_LENGTH:
            raise Unauthorized(BAD_CREDENTIALS)

        def work() -> Session:
            account = self.store.account_by_email(email)
            hashed = None if account is None else account.password_hash
            if not self.passwords.verify(hashed, password) or account is None:
                raise Unauthorized(BAD_CREDENTIALS)
            if account.disabled:
                raise AccountDisabled("this account is disabled")
            if hashed is not None and self.passwords.needs_rehash(hashed):
                account = replace(account, password_hash=self.passwords.hash(password))
                self.store.update_account(account)
            amr: tuple[str, ...] = ("pwd",)
            if account.totp_enabled:
                account = self._second_factor(account, otp, recovery_code)
                amr = ("pwd", "otp")
            return self._start_session(account, amr)

        return await self._run(work)

    def _second_factor(self, account: Account, otp: object, recovery_code: object) -> Account:
        assert account.totp_secret is not None
        if isinstance(otp, str):
            step = totp.matching_step(
                account.totp_secret, otp, account.totp_last_step, self.clock()
            )
            if step is None:
                raise Unauthorized("the one-time code is wrong or was used", mfa_required=True)
            account = replace(account, totp_last_step=step)
        elif isinstance(recovery_code, str):
            remaining = totp.use_recovery_code(account.recovery_hashes, recovery_code)
            if remaining is None:
                raise Unauthorized("the recovery code is wrong or was used", mfa_required=True)
            account = replace(account, recovery_hashes=remaining)
        else:
            raise Unauthorized("a one-time code (otp) is required", mfa_required=True)
        self.store.update_account(account)
        return account

    async def refresh(self, refresh_token: object) -> Session:
        """Rotate a refresh token: the old one is spent; reusing a spent one revokes its family."""
        if not isinstance(refresh_token, str) or not refresh_token:
            raise ValidationError("refresh_token is required", field="refresh_token")

        def work() -> Session:
            new = new_refresh_secret()
            now_ms = self._now_ms()
            record = RefreshToken(
                hash_secret(new), "", "", now_ms, now_ms + int(self.refresh_ttl * 1000)
            )
            outcome, old = self.store.rotate_refresh(hash_secret(refresh_token), record, now_ms)
            if outcome == "reused":
                raise Unauthorized("the refresh token was already used; the session is revoked")
            if outcome != "rotated" or old is None:
                raise Unauthorized("the refresh token is unknown or expired")
            account = self.store.account(old.uid)
            if account is None:
                raise Unauthorized("the account no longer exists")
            if account.disabled:
                raise AccountDisabled("this account is disabled")
            return self._session(account, new, old.amr)

        return await self._run(work)

    async def logout(self, refresh_token: object) -> None:
        """Revoke the session (token family) of ``refresh_token``; unknown tokens are ignored."""
        if not isinstance(refresh_token, str) or not refresh_token:
            raise ValidationError("refresh_token is required", field="refresh_token")

        def work() -> None:
            family = self.store.family_of(hash_secret(refresh_token))
            if family is not None:
                self.store.revoke_family(family)

        await self._run(work)

    # account changes ----------------------------------------------------------------------------

    def _account(self, identity: Identity) -> Account:
        if identity.kind != "user":
            raise Forbidden("this operation needs a user's access token")
        account = self.store.account(identity.uid)
        if account is None:
            raise Unauthorized("the account no longer exists")
        if account.disabled:
            raise AccountDisabled("this account is disabled")
        return account

    async def own_account(self, identity: Identity) -> Account:
        """The caller's own account (a user's token; not disabled)."""
        return await self._run(lambda: self._account(identity))

    async def change_password(self, identity: Identity, current: object, new: object) -> Session:
        """Change the password; every other session of the account is signed out."""
        secret = check_password(new)
        if not isinstance(current, str):
            raise ValidationError("current_password is required", field="current_password")

        def work() -> Session:
            account = self._account(identity)
            if account.password_hash is None:
                raise Forbidden("an anonymous account has no password; link an email first")
            if not self.passwords.verify(account.password_hash, current):
                raise Unauthorized(BAD_CREDENTIALS)
            account = replace(account, password_hash=self.passwords.hash(secret))
            self.store.update_account(account)
            self.store.revoke_user(account.uid)
            amr = ("pwd", "otp") if identity.mfa else ("pwd",)
            return self._start_session(account, amr)

        return await self._run(work)

    async def link(self, identity: Identity, email: object, password: object) -> Session:
        """Give an anonymous account an email and password; its uid (and data) stay."""
        address, secret = check_email(email), check_password(password)

        def work() -> Session:
            account = self._account(identity)
            if not account.anonymous:
                raise Forbidden("the account already has an email")
            linked = replace(
                account,
                email=address,
                password_hash=self.passwords.hash(secret),
                anonymous=False,
            )
            self.store.update_account(linked)
            self.store.revoke_user(account.uid)
            return self._start_session(linked, ("pwd",))

        return await self._run(work)

    # TOTP ---------------------------------------------------------------------------------------

    async def mfa_enroll(self, identity: Identity) -> Enrolment:
        """Start TOTP enrolment: a new secret, not active until confirmed with a code."""

        def work() -> Enrolment:
            account = self._account(identity)
            if account.anonymous or account.email is None:
                raise Forbidden("link an email before enabling multi-factor sign-in")
            if account.totp_enabled:
                raise Forbidden("multi-factor sign-in is already on")
            secret = totp.new_secret()
            self.store.update_account(replace(account, totp_secret=secret))
            return Enrolment(secret, totp.provisioning_uri(secret, account.email))

        return await self._run(work)

    async def mfa_confirm(self, identity: Identity, code: object) -> tuple[list[str], Session]:
        """Turn TOTP on with a first valid code; returns the recovery codes (shown once)."""

        def work() -> tuple[list[str], Session]:
            account = self._account(identity)
            if account.totp_secret is None or account.totp_enabled:
                raise Forbidden("start an enrolment first (POST /v1/auth/mfa/enroll)")
            step = totp.matching_step(
                account.totp_secret, str(code), account.totp_last_step, self.clock()
            )
            if step is None:
                raise Unauthorized("the one-time code is wrong", mfa_required=True)
            codes = totp.new_recovery_codes()
            account = replace(
                account,
                totp_enabled=True,
                totp_last_step=step,
                recovery_hashes=tuple(hash_secret(c) for c in codes),
            )
            self.store.update_account(account)
            return codes, self._start_session(account, ("pwd", "otp"))

        return await self._run(work)

    # accounts, for admins ------------------------------------------------------------------------

    async def find_accounts(self, text: str, limit: int) -> list[Account]:
        """Accounts whose uid is ``text`` or whose email starts with it, by email."""
        return list(await self._run(lambda: self.store.find_accounts(text, limit)))

    async def set_roles(self, uid: str, roles: object) -> Account:
        """Replace an account's roles; they reach its tokens at its next sign-in or refresh."""
        if (
            not isinstance(roles, list)
            or len(roles) > MAX_ROLES
            or not all(isinstance(role, str) and role.isidentifier() for role in roles)
        ):
            raise ValidationError(
                f"roles must be a list of at most {MAX_ROLES} identifiers", field="roles"
            )

        def work() -> Account:
            account = self.store.account(uid)
            if account is None:
                raise NotFound(f"no account {uid!r}")
            updated = replace(account, roles=tuple(dict.fromkeys(roles)))
            self.store.update_account(updated)
            return updated

        return await self._run(work)

    async def account(self, uid: str) -> Account:
        """The account ``uid``; ``NotFound`` when there is none."""
        account = await self._run(lambda: self.store.account(uid))
        if account is None:
            raise NotFound(f"no account {uid!r}")
        return account

    async def delete_account(self, uid: str) -> None:
        """Erase an account: its sessions end and its access tokens are refused (its uid stays
        disabled, see :meth:`AuthStore.delete_account`)."""
        if not await self._run(lambda: self.store.delete_account(uid, self._now_ms())):
            raise NotFound(f"no account {uid!r}")
        self._mark(uid, True)

    # API keys -----------------------------------------------------------------------------------

    def create_key(self, name: str, scopes: list[str]) -> tuple[str, ApiKey]:
        """A new API key: returns the full key (shown once) and its stored record."""
        key = f"{KEY_PREFIX}_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
        return key, self.install_key(name, scopes, key)

    def install_key(self, name: str, scopes: list[str], key: str) -> ApiKey:
        """Store ``key``, a full key as :meth:`create_key` makes them: how a region rebuilt on
        an empty store takes back the keys its peers already hold."""
        bad = [scope for scope in scopes if not KEY_SCOPE_PATTERN.fullmatch(scope)]
        if not scopes or bad:
            raise ValidationError(
                "scopes must be admin, replication, read:NAME, write:NAME, read:* or write:*;"
                f" got {bad or scopes}"
            )
        prefix, _, rest = key.partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != KEY_PREFIX or not key_id or not secret:
            raise ValidationError(f"not an API key: expected {KEY_PREFIX}_ID_SECRET")
        record = ApiKey(key_id, name, frozenset(scopes), hash_secret(secret), self._now_ms())
        self.store.add_key(record)
        return record

    async def issue_key(self, name: object, scopes: object) -> tuple[str, ApiKey]:
        """:meth:`create_key` for input from a request: ``name`` 1-64 characters, ``scopes`` a
        list of strings."""
        if not isinstance(name, str) or not 1 <= len(name) <= 64 or not name.isprintable():
            raise ValidationError("name must be 1 to 64 printable characters", field="name")
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise ValidationError("scopes must be a list of strings", field="scopes")
        return await self._run(lambda: self.create_key(name, scopes))

    async def list_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        return sorted(await self._run(self.store.keys), key=lambda key: key.created_ms)

    async def revoke_key(self, key_id: str) -> None:
        """Revoke a live key; ``NotFound`` when there is none with that id."""
        if not await self._run(lambda: self.store.revoke_key(key_id, self._now_ms())):
            raise NotFound(f"no active API key {key_id!r}")

    async def admin_configured(self) -> bool:
        """True when a live API key has the ``admin`` scope: without one the console is off."""

        def work() -> bool:
            keys = self.store.keys()
            return any(k.revoked_ms is None and ADMIN_SCOPE in k.scopes for k in keys)

        return await self._run(work)

    async def authenticate_key(self, presented: str) -> Identity:
        """:meth:`verify_key` off the event loop (the store may be a network round trip)."""
        return await self._run(lambda: self.verify_key(presented))

    def verify_key(self, presented: str) -> Identity:
        """The identity of a live API key; ``Unauthorized`` otherwise."""
        prefix, _, rest = presented.partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != KEY_PREFIX or not key_id or not secret:
            raise Unauthorized("the API key is malformed")
        record = self.store.key(key_id)
        if (
            record is None
            or record.revoked_ms is not None
            or not secrets.compare_digest(record.secret_hash, hash_secret(secret))
        ):
            raise Unauthorized("the API key is unknown or revoked")
        return Identity(uid=f"key:{key_id}", kind="key", scopes=record.scopes)


def _new_uid() -> str:
    return secrets.token_hex(12)
