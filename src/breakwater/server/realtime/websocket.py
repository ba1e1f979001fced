"""``GET /v1/realtime``: the change stream over a WebSocket (JSON text frames).

The client sends ``subscribe``/``unsubscribe``/``ping``/``pong``; the server sends
``subscribed``, ``changes``, ``ping``/``pong``, ``error`` and ``reconnect`` (docs/protocol.md).
permessage-deflate is negotiated by the server (uvicorn's ``websockets`` protocol) when the
client offers it.
"""

from __future__ import annotations

from fastapi import APIRouter, WebSocket
from starlette.responses import Response
from starlette.types import Message

from breakwater.server import problems
from breakwater.server.node import Node
from breakwater.server.realtime import messages
from breakwater.server.realtime.admission import Refused
from breakwater.server.realtime.fanout import Batch
from breakwater.server.realtime.session import Disconnected, Session

router = APIRouter(tags=["realtime"])
TRANSPORT = "websocket"


class WebSocketOut:
    """Writes a session's messages as WebSocket text frames through the ASGI ``send``."""

    transport = TRANSPORT

    def __init__(self, websocket: WebSocket) -> None:
        self._send = websocket.send

    async def _write(self, text: str) -> int:
        message: Message = {"type": "websocket.send", "text": text}
        try:
            await self._send(message)
        except Exception as exc:
            # uvicorn raises ClientDisconnected, Starlette WebSocketDisconnect or RuntimeError
            # once the socket is gone; all mean the same here.
            raise Disconnected from exc
        return len(text)

    async def send_changes(self, batch: Batch) -> int:
        """One ``changes`` frame (the text is shared with every subscriber of the page)."""
        return await self._write(batch.text)

    async def send_message(self, kind: str, text: str) -> int:
        """One frame; the type is inside the JSON."""
        return await self._write(text)

    async def send_heartbeat(self) -> int:
        """A ``ping`` frame the client answers with ``pong``."""
        return await self._write(messages.PING)


def _refusal(refused: Refused) -> Response:
    return problems.problem(
        refused.status,
        refused.type,
        refused.title,
        refused.detail,
        headers={"Retry-After": str(refused.retry_after)},
        reason=refused.reason,
    )


@router.websocket("/v1/realtime")
async def realtime_websocket(websocket: WebSocket) -> None:
    """Serve one WebSocket client until it leaves, times out, or the node drains."""
    node: Node = websocket.app.state.node
    hub = node.realtime
    try:
        await hub.admission.admit(TRANSPORT)
    except Refused as refused:
        # Refused before the upgrade: a plain HTTP 503 problem with Retry-After.
        await websocket.send_denial_response(_refusal(refused))
        return
    try:
        await websocket.accept()
        session = Session(hub, WebSocketOut(websocket), expects_heartbeats=True)

        async def read() -> None:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                session.receive(message.get("text"))

        ending = await session.run(read)
        if ending is not None and ending[0] != "stalled" and ending[1]:
            try:
                await websocket.close(ending[1])
            except Exception:  # the client left first
                return
    finally:
        hub.admission.release()
