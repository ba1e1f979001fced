"""The Python SDK's account calls against a real ``breakwater serve`` that mails through a real
SMTP server: verify the email, reset the password, export and delete the account."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from breakwater.client import AuthChanged
from breakwater.core.errors import Unauthorized
from tests.auth.mailbox import Mailbox, run_mailbox, token_in
from tests.client.conftest import record_events
from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow

CONFIG = """
[auth]
mode = "enforce"
password_memory_kib = 64
password_time_cost = 1
rate_auth_per_ip = 0

[collections.notes]
owner = "owner"
rules.read = "auth.uid == doc.owner"
rules.write = "auth.uid == doc.owner"
"""


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    yield from run_mailbox()


@pytest.fixture
def mail_server(
    tmp_path: Path, start_server: Callable[..., ServerProcess], mailbox: Mailbox
) -> ServerProcess:
    config = tmp_path / "breakwater.toml"
    config.write_text(CONFIG + mailbox.config)
    return start_server(None, "--config", str(config))


async def test_verify_reset_export_and_delete_from_the_sdk(
    mail_server: ServerProcess, mailbox: Mailbox, make_device: Callable[..., Any]
) -> None:
    """Every account call of ``client.auth`` end to end, tokens parsed from the received mail."""
    device = await make_device(mail_server.url, "phone")
    events = record_events(device)
    state = await device.auth.sign_up("sdk@example.com", "correct horse")
    verified = await device.auth.verify_email(token_in(await mailbox.wait_for("sdk@example.com")))
    assert verified["email_verified"] is True and verified["uid"] == state.uid

    await device.auth.request_password_reset("sdk@example.com")
    await device.auth.request_password_reset("nobody@example.com")  # the same, silently
    reset = token_in(await mailbox.wait_for("sdk@example.com", 2))
    await device.auth.confirm_password_reset(reset, "a new passphrase")
    with pytest.raises(Unauthorized):
        await device.auth.sign_in("sdk@example.com", "correct horse")
    await device.auth.sign_in("sdk@example.com", "a new passphrase")

    await device.collection("notes").set("n1", {"text": "mine"})
    async with asyncio.timeout(30):
        await device.wait_synced()
    export = await device.auth.export_account()
    assert export["account"]["email"] == "sdk@example.com"
    assert [doc["id"] for doc in export["collections"]["notes"]] == ["n1"]

    with pytest.raises(Unauthorized):
        await device.auth.delete_account("wrong password")
    await device.auth.delete_account("a new passphrase")
    assert device.auth.state.kind == "signed_out"
    assert isinstance(events[-1], AuthChanged) and events[-1].reason == "account_deleted"
    with pytest.raises(Unauthorized):
        await device.auth.sign_in("sdk@example.com", "a new passphrase")
