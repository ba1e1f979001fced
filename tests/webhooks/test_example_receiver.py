"""examples/webhook-receiver: it accepts a node's deliveries and refuses tampered ones."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import httpx

from breakwater.server.webhooks.signature import sign
from tests.conftest import free_port
from tests.webhooks.conftest import FAST, MakeClient, admin_headers, subscribe

RECEIVER = Path(__file__).resolve().parents[2] / "examples" / "webhook-receiver" / "receiver.py"


async def test_the_example_receiver_verifies_real_deliveries(make_client: MakeClient) -> None:
    """A node's delivery is printed; a tampered body or a stale signature gets 400."""
    client = await make_client(**FAST)
    port = free_port()
    sub = await subscribe(client, admin_headers(client), f"http://127.0.0.1:{port}/")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(RECEIVER),
        "--port",
        str(port),
        env=os.environ | {"BREAKWATER_WEBHOOK_SECRET": sub["secret"]},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        assert b"listening" in await asyncio.wait_for(process.stdout.readline(), 30)
        await client.put("/v1/collections/notes/docs/n1", json={"title": "hello"})
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line.decode().strip() == 'notes/n1 set -> {"title": "hello"}'
        body = b'{"id":"whd_x","collection":"notes"}'
        stamp = int(time.time())
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as direct:
            good = sign(sub["secret"], body, stamp)
            tampered = await direct.post(
                "/",
                content=body.replace(b"notes", b"other"),
                headers={"Breakwater-Signature": good},
            )
            stale = await direct.post(
                "/",
                content=body,
                headers={"Breakwater-Signature": sign(sub["secret"], body, stamp - 3600)},
            )
        assert (tampered.status_code, stale.status_code) == (400, 400)
    finally:
        process.terminate()
        await process.wait()
