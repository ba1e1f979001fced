"""``GET /v1/realtime/sse``: the change stream as Server-Sent Events.

Each ``changes`` message is an event ``changes`` whose ``id`` is its cursor, so a client that
reconnects with ``Last-Event-ID`` (as every EventSource does) resumes where it stopped. Comments
keep the connection open through proxies; ``reconnect`` announces a drain before the stream
ends. The subscription is fixed by the query string.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from breakwater.auth.identity import Identity
from breakwater.auth.policy import Policy
from breakwater.core import cursor as cursor_mod
from breakwater.core.errors import NotFound
from breakwater.server import openapi, problems
from breakwater.server.access import identity_of
from breakwater.server.realtime.admission import Refused
from breakwater.server.realtime.fanout import Batch
from breakwater.server.realtime.hub import Realtime
from breakwater.server.realtime.session import Disconnected, Session, never_now
from breakwater.server.responses import node_of
from breakwater.server.sync_api import parse_collections

router = APIRouter(tags=["realtime"])
TRANSPORT = "sse"
KEEP_ALIVE = b": keep-alive\n\n"
MEDIA_TYPE = "text/event-stream"


def sse_event(kind: str, data: str, event_id: str | None = None) -> bytes:
    """One SSE event; ``data`` is one line of JSON (JSON text never holds a raw newline)."""
    head = f"event: {kind}\n" if event_id is None else f"event: {kind}\nid: {event_id}\n"
    return (head + f"data: {data}\n\n").encode()


class SseOut:
    """Writes a session's messages as SSE events on a streaming HTTP response."""

    transport = TRANSPORT

    def __init__(self, send: Send) -> None:
        self._send = send
        self.disconnected = asyncio.Event()
        self.write_now: Callable[[Batch], bool] = never_now
        """SSE messages always go through the pump (the HTTP body is chunked by the server)."""

    async def _write(self, data: bytes) -> int:
        if self.disconnected.is_set():
            raise Disconnected
        try:
            await self._send({"type": "http.response.body", "body": data, "more_body": True})
        except OSError as exc:
            raise Disconnected from exc
        return len(data)

    async def send_changes(self, batch: Batch) -> int:
        """An event ``changes`` with the cursor as its id (framed once, shared)."""
        if batch.sse is None:
            batch.sse = sse_event("changes", batch.text, batch.cursor_text)
        return await self._write(batch.sse)

    async def send_message(self, kind: str, text: str) -> int:
        """An event of type ``kind``."""
        return await self._write(sse_event(kind, text))

    async def send_heartbeat(self) -> int:
        """A comment, which clients ignore and proxies count as traffic."""
        return await self._write(KEEP_ALIVE)

    async def close(self, code: int) -> None:
        """End the response (the pending ``receive`` then answers ``http.disconnect``)."""
        if self.disconnected.is_set():
            raise Disconnected
        try:
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError as exc:
            raise Disconnected from exc


class SseSession(Session):
    """An SSE stream ends when its cursor expires (the client must resync, not resume)."""

    def on_expired(self) -> None:
        """End the stream after the ``error`` event."""
        self.end("expired", 0)


class EventStream(Response):
    """The streaming response of one admitted SSE client."""

    media_type = MEDIA_TYPE

    def __init__(
        self,
        hub: Realtime,
        collections: frozenset[str] | None,
        cursor: str,
        policy: Policy | None = None,
        identity: Identity | None = None,
    ) -> None:
        # Not Response.__init__: it would add ``content-length: 0`` to an endless body.
        self.status_code = 200
        self.background = None
        self.body = b""
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"x-accel-buffering", b"no"),
        ]
        self.hub = hub
        self.collections = collections
        self.cursor = cursor
        self.policy = policy
        self.identity = identity

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._stream(receive, send)
        finally:
            self.hub.admission.release()
            self.hub.release_user_slot(self.identity)

    async def _stream(self, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        out = SseOut(send)
        session = SseSession(
            self.hub, out, expects_heartbeats=False, policy=self.policy, identity=self.identity
        )
        # Browsers reconnect after ``retry`` ms; spreading it avoids reconnect storms.
        retry = 1000 + random.randrange(2000)
        await send(
            {
                "type": "http.response.body",
                "body": f"retry: {retry}\n\n".encode(),
                "more_body": True,
            }
        )
        session.subscribe(self.collections, self.cursor)

        async def wait_for_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            out.disconnected.set()

        await session.run(wait_for_disconnect)


@router.get(
    "/v1/realtime/sse",
    response_class=Response,
    responses=openapi.SSE_RESPONSES,
    summary="Stream changes as Server-Sent Events",
)
async def realtime_sse(
    request: Request,
    cursor: Annotated[str, Query(description="where to start; Last-Event-ID wins")] = "",
    collections: Annotated[str | None, Query(description="comma-separated names")] = None,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="the id of the last event seen")
    ] = None,
) -> Response:
    """Changes after the cursor, then live, as ``changes`` events whose ids are cursors."""
    node = node_of(request)
    if TRANSPORT not in node.config.enabled_realtime_transports:
        raise NotFound("the SSE transport is disabled on this node (realtime_transports)")
    hub = node.realtime
    identity = identity_of(request)
    node.policy.admit_caller(identity)
    start = last_event_id if last_event_id is not None else cursor
    vector = cursor_mod.decode(start)
    names = parse_collections(collections)
    for name in names or ():
        node.policy.admit(identity, name, "read")
    hub.claim_user_slot(identity)
    try:
        await hub.admission.admit(TRANSPORT)
    except Refused as refused:
        hub.release_user_slot(identity)
        return problems.error_response(refused, headers={"Retry-After": str(refused.retry_after)})
    try:
        # Check the cursor now (the retention horizon, the store's head), so that one the node
        # cannot honour gets a plain 410 instead of a stream (EventSource does not retry a
        # non-200 answer).
        page = await hub.fanout.store.pull(vector, names, 1)
        cursor_mod.require_honourable(vector, page.head, node.region.peers)
    except BaseException:
        hub.admission.release()
        hub.release_user_slot(identity)
        raise
    return EventStream(
        hub,
        None if names is None else frozenset(names),
        cursor_mod.encode(vector),
        node.policy,
        identity,
    )
