"""Mail to users (verification, password reset, email change) over SMTP, sent in the background.

A request that mails answers before the mail is sent: the answer's timing then does not depend
on whether the address has an account (no user enumeration), and a slow SMTP server never slows
an auth endpoint. Sends run on the mailer's own threads (``smtplib`` blocks; callers may be
worker threads themselves), are bounded by a timeout, and are finished on shutdown. Failures
are logged by kind only: never the password, a token or a message body.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Literal

import structlog

Security = Literal["starttls", "ssl", "none"]
_log = structlog.get_logger("breakwater.mail")
SENDERS = 2


@dataclass(frozen=True)
class SmtpSettings:
    """The ``[smtp]`` table. Mail is off while ``host`` is empty; then verification and reset
    mails are not sent and the endpoints that need them answer 404 ``mail_off``."""

    host: str = ""
    port: int = 587
    security: str = "starttls"
    user: str = ""
    password: str = field(default="", repr=False)
    from_address: str = ""
    app_name: str = "Breakwater"
    base_url: str = ""
    """Where the app handles a mailed link: ``{base_url}/verify?token=…``, ``/reset?token=…``,
    ``/email?token=…``. Empty: the mail carries the token alone, for the user to paste."""
    timeout: float = 10.0

    @property
    def enabled(self) -> bool:
        """True when a server is configured."""
        return bool(self.host)

    def link(self, action: str, token: str) -> str:
        """The link (or the bare token) a mail carries for ``action``."""
        if not self.base_url:
            return token
        return f"{self.base_url.rstrip('/')}/{action}?token={token}"


@dataclass(frozen=True)
class Letter:
    """One mail to one address."""

    to: str
    subject: str
    body: str


class Mailer:
    """Sends letters in the background; :meth:`aclose` finishes those under way."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._senders = ThreadPoolExecutor(SENDERS, thread_name_prefix="bw-mail")

    def post(self, letter: Letter) -> None:
        """Send ``letter`` soon, without waiting (from any thread)."""
        self.post_work(lambda: self.send_now(letter))

    def post_work(self, work: Callable[[], None]) -> None:
        """Run ``work`` (which may look accounts up and post letters) on a sender thread."""
        self._senders.submit(self._logged, work)

    @staticmethod
    def _logged(work: Callable[[], None]) -> None:
        try:
            work()
        except Exception as exc:  # a background send has no caller to raise to
            _log.warning("mail_failed", error=type(exc).__name__)

    def send_now(self, letter: Letter) -> None:
        """Deliver ``letter`` to the SMTP server (blocking)."""
        s = self.settings
        message = EmailMessage()
        message["From"] = s.from_address
        message["To"] = letter.to
        message["Subject"] = letter.subject
        message.set_content(letter.body)
        smtp: smtplib.SMTP
        if s.security == "ssl":
            smtp = smtplib.SMTP_SSL(
                s.host, s.port, timeout=s.timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        with smtp:
            if s.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if s.user:
                smtp.login(s.user, s.password)
            smtp.send_message(message)

    async def aclose(self) -> None:
        """Finish the letters under way."""
        await asyncio.to_thread(self._senders.shutdown, wait=True)
