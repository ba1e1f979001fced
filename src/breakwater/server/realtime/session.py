"""One realtime connection, whatever its transport: subscription, heartbeats, and its sender.

Exactly one task (the *pump*) writes to a connection, in this order of priority: control
messages (``pong``, ``subscribed``, ``error``…), then the goodbye (``reconnect``) when the
session ends, then the subscription's changes (a replay page from the store, or the live queue),
then a heartbeat when one is due. Because only the pump writes, a message that cannot be written
(the client stopped reading) holds back only this connection.

A timer per connection fires every ``realtime_heartbeat`` seconds: it makes the pump send a
heartbeat (or, when the subscriber's cursor moved past changes its filter skipped, an empty
``changes`` message that hands over the new cursor), closes a connection whose client has said
nothing for ``realtime_timeout`` seconds, and aborts one whose last write has been stuck that
long.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from breakwater.auth.identity import Identity
from breakwater.auth.policy import Policy
from breakwater.core import codec
from breakwater.core import cursor as cursor_mod
from breakwater.core.errors import BreakwaterError, CursorGone, Unauthorized, ValidationError
from breakwater.core.mutation import check_collection
from breakwater.obs.logging import get_logger
from breakwater.server.realtime import messages
from breakwater.server.realtime.fanout import Batch, Subscriber
from breakwater.server.realtime.wakeup import Wakeup

if TYPE_CHECKING:
    from breakwater.server.realtime.hub import Realtime

_log = get_logger("breakwater.realtime")
MAX_CONTROL = 32
"""Control messages waiting to be sent; a client that makes more without reading is closed."""
MAX_STRIKES = 10
"""Bad messages a client may send before it is closed with 1008."""
MAX_COLLECTIONS = 64
STORE_RETRY_SECONDS = 1.0

GOODBYE_REASONS = frozenset({"draining", "timeout"})
"""Ways of ending after which the client is told to ``reconnect`` and resume."""

# Close codes (WebSocket) for each way a session ends.
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_RESTART = 1012
CLOSE_TIMEOUT = 4408
CLOSE_UNAUTHORIZED = 4401

MAX_PUSHES = 4
"""``push`` messages of one connection being applied at once; a client that sends more before
their answers gets an ``error`` (an SDK sends one at a time)."""
MAX_PUSH_ID = 2**53 - 1

View = Callable[[dict[str, Any]], dict[str, Any] | None]
Authenticate = Callable[[str], Identity]
PushHandler = Callable[[int, dict[str, Any], int], Awaitable[str]]
"""Applies a ``push`` message (its ``id``, its body without ``type`` and ``id``, and its size
in bytes) for the connection's caller; returns the ``pushed`` answer, a refusal included."""


def restrict(batch: Batch, view: View) -> Batch:
    """``batch`` with each change as ``view`` shows it (dropped, removal or as is).

    Only connections under access rules pay for this: the others send the shared batch.
    """
    encoded = []
    for body in batch.encoded:
        shown = view(codec.loads(body))
        if shown is not None:
            encoded.append(codec.dumps(shown))
    text = messages.changes(encoded, batch.cursor_text, batch.stable)
    return Batch(
        text, batch.cursor, batch.cursor_text, len(encoded), batch.at, encoded, batch.stable
    )


class Disconnected(Exception):
    """The client is gone; nothing more can be written."""


class Outbound(Protocol):
    """How a transport writes the session's messages; each call returns the bytes written.

    Every method raises :class:`Disconnected` once the client is gone.
    """

    transport: str

    async def send_changes(self, batch: Batch) -> int:
        """Write one ``changes`` message."""

    async def send_message(self, kind: str, text: str) -> int:
        """Write one message of type ``kind`` whose JSON is ``text``."""

    async def send_heartbeat(self) -> int:
        """Write a keep-alive."""

    async def close(self, code: int) -> None:
        """End the stream (``code`` is the WebSocket close code); the reader then returns."""

    write_now: Callable[[Batch], bool]
    """Write a batch at once without waiting, if the stream can take it now.

    False (nothing written) when it cannot: the message then goes through the pump. An
    attribute rather than a method, so that the fan-out's call is one call deep.
    """


def never_now(batch: Batch) -> bool:
    """The direct writer of a stream that takes no direct writes (everything goes through
    the pump)."""
    return False


class Session:
    """The state and the sender of one realtime connection."""

    def __init__(
        self,
        hub: Realtime,
        out: Outbound,
        *,
        expects_heartbeats: bool,
        policy: Policy | None = None,
        identity: Identity | None = None,
        authenticate: Authenticate | None = None,
        push: PushHandler | None = None,
    ) -> None:
        self.hub = hub
        self.push = push
        """Set on WebSocket connections: what applies their ``push`` messages."""
        self._pushes: set[asyncio.Task[None]] = set()
        self.policy = policy
        self.identity = identity
        self.authenticate = authenticate
        self.view: View | None = None
        self.out = out
        self.fanout = hub.fanout
        self.metrics = hub.metrics
        self.expects_heartbeats = expects_heartbeats
        self.wakeup = Wakeup()
        self.control: list[tuple[str, str]] = []
        """Control messages to send, oldest first (at most :data:`MAX_CONTROL`; a list, as
        an idle connection's empty deque would cost 760 bytes)."""
        self.subscriber: Subscriber | None = None
        self.sent_cursor = ""
        self.ending: tuple[str, int] | None = None
        self.strikes = 0
        self._loop = asyncio.get_running_loop()
        self.last_seen = self._loop.time()
        self._sending_since: float | None = None
        self._heartbeat_due = False
        self._timer: asyncio.TimerHandle | None = None
        self._pump: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[object] | None = None
        self._interrupted = False
        self._closed = False
        self._figures = hub.metrics.realtime
        self._transport = out.transport

    # lifecycle ----------------------------------------------------------------------------------

    async def run(self, reader: Callable[[], Awaitable[None]]) -> tuple[str, int] | None:
        """Serve until the client leaves or the session ends; return how it ended.

        ``reader`` consumes what the client sends, in the calling task, and returns when the
        client disconnects or the stream is closed. The pump runs in a task of its own; when
        it ends (goodbye sent and stream closed, or dropped) the reader ends too. The result is
        ``None`` when the client left, else ``(reason, close_code)``.
        """
        self.hub.attach(self)
        self._arm_timer()
        self._reader = asyncio.current_task()
        self._pump = asyncio.create_task(self._run_pump())
        self._pump.add_done_callback(self._after_pump)
        try:
            await reader()
        except asyncio.CancelledError:
            # Our own interruption of the reader (the connection was dropped) ends the session
            # normally; anything else (the server stopping) goes on.
            if not self._interrupted or self._reader is None or self._reader.uncancel() > 0:
                raise
        finally:
            self._reader = None
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
            if self._timer is not None:
                self._timer.cancel()
            if self.subscriber is not None:
                self.fanout.remove(self.subscriber)
            for task in self._pushes:
                # The client retries an unanswered push (over HTTP): its mutation ids make
                # that safe whether or not this one committed.
                task.cancel()
            self.hub.detach(self)
        return self.ending

    def _after_pump(self, pump: asyncio.Task[None]) -> None:
        """The pump ended: unless it closed the stream (the reader sees that), stop reading."""
        closed = not pump.cancelled() and pump.exception() is None and self._closed
        if not closed and self._reader is not None:
            self._interrupted = True
            self._reader.cancel()

    def end(self, reason: str, code: int) -> None:
        """Send what is pending, a ``reconnect`` for :data:`GOODBYE_REASONS`, and close."""
        if self.ending is None:
            self.ending = (reason, code)
            self._wake()

    def abort(self, reason: str) -> None:
        """Drop the connection at once, without a goodbye (the client is not reading)."""
        self.ending = (reason, 0)
        if self._pump is not None:
            self._pump.cancel()

    # subscriptions ------------------------------------------------------------------------------

    def subscribe(self, collections: frozenset[str] | None, cursor: str) -> None:
        """Follow ``collections`` (all when None) from ``cursor``, replacing any subscription.

        Raises ``Forbidden`` for a named collection the caller may not read; changes of
        documents it may not read are dropped or sent as removals (:meth:`Policy.viewer`).
        """
        vector = cursor_mod.decode(cursor)
        if self.policy is not None:
            for name in collections or ():
                self.policy.admit(self.identity, name, "read")
            self.view = self.policy.viewer(self.identity, collections)
        if self.subscriber is not None:
            self.fanout.remove(self.subscriber)
        self.subscriber = Subscriber(collections, vector, self.wakeup)
        self.sent_cursor = cursor_mod.encode(vector)
        self.wakeup.set()

    def unsubscribe(self) -> None:
        """Stop following; nothing more of the old subscription is sent."""
        if self.subscriber is not None:
            self.fanout.remove(self.subscriber)
            self.subscriber = None

    # what the client sends (WebSocket) ----------------------------------------------------------

    def receive(self, text: str | None) -> None:
        """Handle one client message; a bad one gets an ``error`` and counts as a strike."""
        self.last_seen = self._loop.time()
        try:
            self._handle(text)
        except BreakwaterError as error:
            self.strikes += 1
            self.send_control("error", messages.error(error.to_problem()))
            if self.strikes >= MAX_STRIKES:
                self.end("abuse", CLOSE_POLICY)

    def send_control(self, kind: str, text: str) -> None:
        """Queue a control message; a client that lets too many pile up is closed."""
        if len(self.control) >= MAX_CONTROL:
            self.end("abuse", CLOSE_POLICY)
            return
        self.control.append((kind, text))
        self._wake()

    def _handle(self, text: str | None) -> None:
        if text is None:
            raise ValidationError("messages must be JSON text frames, not binary")
        body = codec.parse_body(text, "message")
        if not isinstance(body, dict):
            raise ValidationError("a message must be a JSON object")
        kind = body.get("type")
        if kind == "ping":
            self.send_control("pong", messages.PONG)
        elif kind == "pong":
            pass
        elif kind == "subscribe":
            collections, cursor = _parse_subscribe(body)
            self.subscribe(collections, cursor)
            names = None if collections is None else sorted(collections)
            self.send_control("subscribed", messages.subscribed(names, cursor))
        elif kind == "auth":
            self._reauthenticate(body)
        elif kind == "push" and self.push is not None:
            self._start_push(self.push, body, len(text))
        elif kind == "unsubscribe":
            _no_unknown(body, {"type"})
            self.unsubscribe()
            self.send_control("unsubscribed", messages.UNSUBSCRIBED)
        else:
            raise ValidationError(
                f"unknown message type {kind!r};"
                " expected subscribe, unsubscribe, auth, push, ping or pong",
                field="type",
            )

    def _start_push(self, handler: PushHandler, body: dict[str, Any], size: int) -> None:
        """Apply a ``push`` in a task of its own (the reader goes on reading); its ``pushed``
        answer goes out with the control messages, ahead of the changes."""
        request_id = body.pop("id", None)
        if type(request_id) is not int or not 0 <= request_id <= MAX_PUSH_ID:
            raise ValidationError("a push needs an integer id (0 to 2**53 - 1)", field="id")
        if len(self._pushes) >= MAX_PUSHES:
            raise ValidationError(f"at most {MAX_PUSHES} pushes in flight per connection")
        del body["type"]

        async def run() -> None:
            self.send_control("pushed", await handler(request_id, body, size))

        task = asyncio.create_task(run())
        self._pushes.add(task)
        task.add_done_callback(self._pushes.discard)

    def _reauthenticate(self, body: dict[str, Any]) -> None:
        """Replace the access token (before the old one expires); the user must stay the same."""
        _no_unknown(body, {"type", "token"})
        token = body.get("token")
        if not isinstance(token, str) or self.authenticate is None:
            raise ValidationError("auth needs a token", field="token")
        if self.identity is None:
            # Who a connection belongs to is settled at the upgrade (and counted against that
            # user's connection limit); a stream renews its token, it does not sign in.
            raise Unauthorized("authenticate when connecting: Authorization or access_token")
        identity = self.authenticate(token)
        if identity.uid != self.identity.uid:
            raise Unauthorized("a stream cannot change users; open a new connection")
        self.identity = identity
        if self.policy is not None and self.subscriber is not None:
            self.view = self.policy.viewer(identity, self.subscriber.collections)
        self.send_control("authenticated", messages.authenticated(identity.expires))

    # the pump -----------------------------------------------------------------------------------

    async def _send(self, write: Awaitable[int]) -> None:
        self._sending_since = self._loop.time()
        try:
            written = await write
        finally:
            self._sending_since = None
        self._figures.sent(self._transport, written)

    async def _send_batch(self, batch: Batch) -> None:
        if self.view is not None and batch.changes:
            batch = restrict(batch, self.view)
            if not batch.changes:
                # Only changes this reader may not see: a message now would tell it when they
                # were written. The heartbeat hands the cursor over instead.
                return
        await self._send(self.out.send_changes(batch))
        self.sent_cursor = batch.cursor_text
        if batch.at is not None:
            self._figures.notified(max(0.0, time.time() - batch.at))

    async def _run_pump(self) -> None:
        with contextlib.suppress(Disconnected):
            await self._pump_loop()

    async def _pump_loop(self) -> None:
        while True:
            if self.control:
                kind, text = self.control.pop(0)
                await self._send(self.out.send_message(kind, text))
                continue
            if self.ending is not None:
                reason, code = self.ending
                if reason in GOODBYE_REASONS:
                    goodbye = messages.reconnect(reason, self.sent_cursor)
                    await self._send(self.out.send_message("reconnect", goodbye))
                await self.out.close(code)
                self._closed = True
                return
            sub = self.subscriber
            if sub is not None:
                if not sub.live:
                    await self._replay(sub)
                    continue
                batch = sub.take(self.fanout.max_message_bytes)
                if batch is not None:
                    await self._send_batch(batch)
                    continue
            if self._heartbeat_due:
                self._heartbeat_due = False
                await self._heartbeat(sub)
                continue
            self.wakeup.clear()
            if sub is not None and sub.live and self.view is None:
                # Direct writes send the shared message as is: a connection under access
                # rules always goes through _send_batch, which shows it only what it may read.
                sub.direct = self._write_now
            try:
                await self.wakeup.wait()
            finally:
                if sub is not None:
                    sub.direct = None

    def _wake(self) -> None:
        """Wake the pump for something only it sends; until it has, the fan-out writes
        nothing directly (which would overtake it)."""
        self.wakeup.set()
        if self.subscriber is not None:
            self.subscriber.direct = None

    def _write_now(self, batches: list[Batch]) -> int:
        """Live messages written by the fan-out itself while the pump sleeps (it wakes only
        for what cannot be written at once); returns how many were written. The fan-out
        records their notify latency, once per chunk of subscribers. It calls this for every
        subscriber of every page, so it is kept flat."""
        write = self.out.write_now
        written = 0
        for batch in batches:
            if not write(batch):
                break
            written += 1
            self._figures.sent(self._transport, len(batch.text))
        if written:
            last = batches[written - 1]
            self.sent_cursor = last.cursor_text
            if self.subscriber is not None:
                self.subscriber.resume_from = last.cursor
        return written

    async def _replay(self, sub: Subscriber) -> None:
        try:
            batches = await self.fanout.replay(sub)
        except CursorGone as error:
            if sub is self.subscriber:
                self.unsubscribe()
                self.send_control("error", messages.error(error.to_problem()))
                self.on_expired()
            return
        except BreakwaterError as error:
            # The store is down: keep the connection, retry at a bounded pace (I8).
            _log.warning("realtime_replay_failed", error=error.type, detail=error.detail)
            await asyncio.sleep(STORE_RETRY_SECONDS)
            return
        for batch in batches:
            if sub is not self.subscriber:
                return
            await self._send_batch(batch)

    def on_expired(self) -> None:
        """The node cannot honour the subscription's cursor (``cursor_expired`` or
        ``cursor_unknown``); by default the connection stays open."""

    async def _heartbeat(self, sub: Subscriber | None) -> None:
        if sub is not None and sub.live and not sub.queue:
            batch = self.fanout.handover(sub)
            if batch.cursor_text != self.sent_cursor:
                # Changes the filter skipped moved the cursor: hand it over, so that a client
                # of a quiet collection never falls behind the retention horizon. The message
                # is shared; an idle, plain socket takes its shared frame at once.
                sub.resume_from = batch.cursor
                if self.view is None and self._write_now([batch]):
                    return
                await self._send_batch(batch)
                return
        await self._send(self.out.send_heartbeat())

    # the timer ----------------------------------------------------------------------------------

    def _arm_timer(self) -> None:
        self._timer = self._loop.call_later(self.hub.config.realtime_heartbeat, self._on_timer)

    def _on_timer(self) -> None:
        now = self._loop.time()
        timeout = self.hub.config.realtime_timeout
        if self._sending_since is not None and now - self._sending_since > timeout:
            self.abort("stalled")
            return
        expires = None if self.identity is None else self.identity.expires
        if expires is not None and time.time() > expires and self.ending is None:
            expired = Unauthorized("the access token expired; reconnect with a fresh one")
            self.send_control("error", messages.error(expired.to_problem()))
            self.end("unauthorized", CLOSE_UNAUTHORIZED)
        elif self.expects_heartbeats and now - self.last_seen > timeout:
            self.end("timeout", CLOSE_TIMEOUT)
        else:
            self._heartbeat_due = True
            self._wake()
        self._arm_timer()


def _no_unknown(body: dict[str, Any], known: set[str]) -> None:
    unknown = set(body) - known
    if unknown:
        raise ValidationError(f"unknown message fields: {sorted(unknown)}")


def _parse_subscribe(body: dict[str, Any]) -> tuple[frozenset[str] | None, str]:
    """The collections and cursor of a ``subscribe`` message, validated."""
    _no_unknown(body, {"type", "collections", "cursor"})
    raw = body.get("collections")
    collections: frozenset[str] | None = None
    if raw is not None:
        if not isinstance(raw, list) or not raw:
            raise ValidationError(
                "collections must be null or a non-empty list of names", field="collections"
            )
        if len(raw) > MAX_COLLECTIONS:
            raise ValidationError(
                f"at most {MAX_COLLECTIONS} collections per subscription", field="collections"
            )
        collections = frozenset(check_collection(name) for name in raw)
    cursor = body.get("cursor", "")
    if cursor is None:
        cursor = ""
    if not isinstance(cursor, str):
        raise ValidationError("cursor must be a string", field="cursor")
    cursor_mod.decode(cursor)
    return collections, cursor
