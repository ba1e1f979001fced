"""A real SMTP server in the test process (aiosmtpd) that keeps what it receives."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.conftest import free_port

TOKEN = re.compile(r"token=([A-Za-z0-9_-]+)")
BASE_URL = "https://app.example/account"
WAIT_SECONDS = 10.0


@dataclass
class Mailbox:
    """What the server received, and a way to wait for it."""

    port: int
    received: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.received.append(message)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        """The mails received for ``address``, oldest first."""
        with self.lock:
            return [m for m in self.received if m["To"] == address]

    async def wait_for(self, address: str, count: int = 1) -> EmailMessage:
        """The ``count``-th mail to ``address``, once it arrived (within ``WAIT_SECONDS``)."""
        deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
        while len(self.to(address)) < count:
            assert asyncio.get_running_loop().time() < deadline, f"no mail {count} to {address}"
            await asyncio.sleep(0.02)
        return self.to(address)[count - 1]

    @property
    def config(self) -> str:
        """The ``[smtp]`` table of a node that mails here."""
        return f"""
[smtp]
host = "127.0.0.1"
port = {self.port}
security = "none"
from_address = "accounts@example.com"
app_name = "Notes"
base_url = "{BASE_URL}"
"""


def token_in(message: EmailMessage) -> str:
    """The token of the link in a mail."""
    body = message.get_body(("plain",))
    assert body is not None
    found = TOKEN.search(body.get_content())
    assert found is not None, body.get_content()
    return found.group(1)


def run_mailbox() -> Iterator[Mailbox]:
    """Serve a :class:`Mailbox` on a free loopback port while the generator is open."""
    mailbox = Mailbox(free_port())
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()
