"""Mailed account flows: email verification, password reset and change of email.

Each flow mails a single-use token (256 random bits; the store keeps only its SHA-256, looked up
by that hash, so a timing side channel of the lookup reveals a hash prefix, never the token).
A token expires (``TOKEN_TTL``), is spent by its first use, and spending one also discards every
other live token of that user and purpose.

No user enumeration: the requests that name an address (reset) answer the same, with the same
work done before the answer, whether or not the address has an account; the lookup and the mail
happen after the answer, in the mailer's background task (auth/mail.py).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from breakwater.auth.identity import Identity
from breakwater.auth.mail import Letter, Mailer
from breakwater.auth.records import Account, OneTimeToken
from breakwater.auth.service import BAD_CREDENTIALS, AuthService, check_email, check_password
from breakwater.auth.tokens import hash_secret
from breakwater.core.errors import (
    BreakwaterError,
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationError,
)

T = TypeVar("T")
VERIFY, RESET, EMAIL = "verify", "reset", "email"
"""A token's purpose, which is also the path of its link under ``smtp.base_url``."""
TOKEN_TTL = {VERIFY: 48 * 3600.0, RESET: 3600.0, EMAIL: 24 * 3600.0}
"""Seconds a mailed token stays valid: a reset is the most sensitive, so it is the shortest."""
MAILS_PER_ADDRESS = 5
MAIL_WINDOW_SECONDS = 3600.0
"""At most this many mails to one address per window: nobody can flood an inbox through us."""
MAX_TRACKED_ADDRESSES = 100_000
MAX_TOKEN_LENGTH = 128


class MailOff(NotFound):
    """The node has no SMTP server configured, so the mailed flows are off (404, as the admin
    console is on a node without an admin key: a setting, not an outage)."""

    type = "mail_off"
    title = "Mail is off"


class TokenInvalid(BreakwaterError):
    """A mailed token that is unknown, expired, already used or for another address."""

    type = "token_invalid"
    status = 400
    title = "Invalid or expired token"


def _token(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_TOKEN_LENGTH:
        raise ValidationError("token is required", field="token")
    return value


class AccountLifecycle:
    """The mailed flows of ``/v1/auth`` over an :class:`AuthService` and a :class:`Mailer`."""

    def __init__(
        self, service: AuthService, mailer: Mailer, clock: Callable[[], float] = time.time
    ) -> None:
        self.service = service
        self.store = service.store
        self.mailer = mailer
        self.clock = clock
        self._sent: dict[str, list[float]] = {}
        self._sent_lock = threading.Lock()

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.to_thread(work)

    def _require_mail(self) -> None:
        if not self.mailer.settings.enabled:
            raise MailOff("this node has no SMTP server configured ([smtp] host)")

    def _may_mail(self, address: str) -> bool:
        """Count a mail to ``address``; False once it had :data:`MAILS_PER_ADDRESS` this window."""
        now = self.clock()
        with self._sent_lock:
            if len(self._sent) > MAX_TRACKED_ADDRESSES:
                self._sent = {
                    a: times
                    for a, times in self._sent.items()
                    if now - times[-1] < MAIL_WINDOW_SECONDS
                }
            recent = [t for t in self._sent.get(address, []) if now - t < MAIL_WINDOW_SECONDS]
            if len(recent) >= MAILS_PER_ADDRESS:
                return False
            self._sent[address] = [*recent, now]
            return True

    def _issue(self, account: Account, purpose: str, address: str) -> str:
        """Store a new token of ``purpose`` for ``address`` and return its secret."""
        secret = secrets.token_urlsafe(32)
        now_ms = int(self.clock() * 1000)
        self.store.add_one_time(
            OneTimeToken(
                hash_secret(secret),
                purpose,
                account.uid,
                address,
                now_ms,
                now_ms + int(TOKEN_TTL[purpose] * 1000),
            )
        )
        return secret

    def _spend(self, token: object, purpose: str) -> tuple[OneTimeToken, Account]:
        """The record and current account of a live token; ``TokenInvalid`` otherwise."""
        record = self.store.use_one_time(
            hash_secret(_token(token)), purpose, int(self.clock() * 1000)
        )
        account = None if record is None else self.store.account(record.uid)
        if record is None or account is None:
            raise TokenInvalid("the token is unknown, expired or was already used")
        return record, account

    def _letter(self, to: str, subject: str, text: str) -> None:
        """Post a letter unless ``to`` had its share of mails this window."""
        if self._may_mail(to):
            self._post(to, subject, text)

    def _post(self, to: str, subject: str, text: str) -> None:
        self.mailer.post(Letter(to, f"{self.mailer.settings.app_name}: {subject}", text))

    def _mail_link(
        self, account: Account, purpose: str, to: str, subject: str, text: Callable[[str], str]
    ) -> None:
        """Issue a token of ``purpose`` and mail its link, unless ``to`` had its share of mails
        this window (then no token is stored either)."""
        if self._may_mail(to):
            link = self.mailer.settings.link(purpose, self._issue(account, purpose, to))
            self._post(to, subject, text(link))

    # verification ---------------------------------------------------------------------------

    def _mail_verification(self, account: Account) -> None:
        assert account.email is not None
        self._mail_link(
            account,
            VERIFY,
            account.email,
            "confirm your email address",
            lambda link: (
                f"Confirm that this address is yours:\n\n{link}\n\n"
                f"The link works once, for {int(TOKEN_TTL[VERIFY] // 3600)} hours."
            ),
        )

    async def signed_up(self, uid: str) -> None:
        """Mail a new account its verification link, when this node can mail."""
        if not self.mailer.settings.enabled:
            return

        def work() -> None:
            account = self.store.account(uid)
            if account is not None and account.email is not None:
                self._mail_verification(account)

        await self._run(work)

    async def request_verification(self, identity: Identity) -> None:
        """Mail the caller's address a (new) verification link."""
        self._require_mail()

        def work() -> None:
            account = self.service._account(identity)
            if account.email is None:
                raise Forbidden("an anonymous account has no email to verify")
            if account.email_verified:
                raise Forbidden("the email is already verified")
            self._mail_verification(account)

        await self._run(work)

    async def verify_email(self, token: object) -> Account:
        """Mark the address the token was mailed to as verified (if it is still the account's)."""

        def work() -> Account:
            record, account = self._spend(token, VERIFY)
            if account.email != record.email:
                raise TokenInvalid("the account's email changed since this link was sent")
            verified = replace(account, email_verified=True)
            self.store.update_account(verified)
            return verified

        return await self._run(work)

    # password reset -------------------------------------------------------------------------

    async def request_reset(self, email: object) -> None:
        """Mail a reset link when ``email`` has an account; answer the same either way."""
        self._require_mail()
        address = check_email(email)
        self.mailer.post_work(lambda: self._mail_reset(address))

    def _mail_reset(self, address: str) -> None:
        account = self.store.account_by_email(address)
        if account is None or account.email is None:
            return
        self._mail_link(
            account,
            RESET,
            account.email,
            "reset your password",
            lambda link: (
                "Someone asked to reset the password of this account. If it was you:"
                f"\n\n{link}\n\nThe link works once, for {int(TOKEN_TTL[RESET] // 60)} minutes."
                " If it was not you, ignore this mail: your password stays as it is."
            ),
        )

    async def confirm_reset(self, token: object, new_password: object) -> None:
        """Set a new password with a mailed token; every session of the account ends."""
        secret = check_password(new_password)

        def work() -> None:
            record, account = self._spend(token, RESET)
            if account.email != record.email:
                raise TokenInvalid("the account's email changed since this link was sent")
            # The link reached the inbox, so the address is the user's.
            self.store.update_account(
                replace(
                    account,
                    password_hash=self.service.passwords.hash(secret),
                    email_verified=True,
                )
            )
            self.store.revoke_user(account.uid)

        await self._run(work)

    # change of email ------------------------------------------------------------------------

    async def request_email_change(
        self, identity: Identity, new_email: object, password: object
    ) -> None:
        """Mail a confirmation link to the new address and a notice to the old one.

        Whether the new address is taken is told only when the link is used (by its owner):
        answering it here would let anyone with an account probe addresses.
        """
        self._require_mail()
        address = check_email(new_email)
        if not isinstance(password, str):
            raise ValidationError("password is required", field="password")

        def work() -> None:
            account = self.service._account(identity)
            if account.email is None or account.password_hash is None:
                raise Forbidden("an anonymous account has no email; link one instead")
            if not self.service.passwords.verify(account.password_hash, password):
                raise Unauthorized(BAD_CREDENTIALS)
            if address == account.email:
                raise ValidationError("new_email is the current email", field="new_email")
            self._mail_link(
                account,
                EMAIL,
                address,
                "confirm your new email address",
                lambda link: (
                    "Confirm that this address should become your account's:"
                    f"\n\n{link}\n\nThe link works once, for {int(TOKEN_TTL[EMAIL] // 3600)} hours."
                ),
            )
            self._letter(
                account.email,
                "your email address is being changed",
                "Someone signed in to your account asked to change its email address. A"
                " confirmation link went to the new address. If it was not you, change your"
                " password now.",
            )

        await self._run(work)

    async def confirm_email_change(self, token: object) -> Account:
        """Make the new address the account's (verified); 409 ``email_taken`` if taken since."""

        def work() -> Account:
            record, account = self._spend(token, EMAIL)
            changed = replace(account, email=record.email, email_verified=True)
            self.store.update_account(changed)
            return changed

        return await self._run(work)

    # re-authentication ----------------------------------------------------------------------

    async def reauthenticate(self, identity: Identity, password: object) -> Account:
        """The caller's account, after it proved its password again (anonymous accounts have
        none: their token is all they have)."""

        def work() -> Account:
            account = self.service._account(identity)
            if account.password_hash is None:
                return account
            if not isinstance(password, str) or not self.service.passwords.verify(
                account.password_hash, password
            ):
                raise Unauthorized(BAD_CREDENTIALS)
            return account

        return await self._run(work)
