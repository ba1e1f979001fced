"""Pushing over the open realtime WebSocket (docs/protocol.md#push-over-the-realtime-websocket).

A device that holds a WebSocket to its node sends each push there as a ``push`` message and
reads the ``pushed`` answer: no HTTP request and response headers per write (ADR 0052). The
answer is compact; :meth:`SocketPush.push` expands it into the shape of the HTTP answer, so the
sync loop records both the same way. Without a socket, when it drops before the answer, or when
no answer comes in time, it raises :class:`SocketGone` and the caller pushes over HTTP instead:
the mutation ids make the repeat safe whether or not the node applied the first.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from breakwater.client.errors import error_for_problem
from breakwater.core import codec

MAX_MESSAGE_BYTES = 60_000
"""Pushes larger than this go over HTTP: a node takes client messages of at most 64 KiB."""


class SocketGone(Exception):
    """The push got no answer over the socket (none open, dropped, or too slow): push over
    HTTP."""


class SocketPush:
    """The realtime transport's open socket, lent to the sync loop for pushes."""

    def __init__(self) -> None:
        self._send: Callable[[str], Awaitable[None]] | None = None
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)

    @property
    def open(self) -> bool:
        """Whether a subscribed socket is there to push on."""
        return self._send is not None

    @property
    def waiting(self) -> bool:
        """Whether a push waits for its answer."""
        return bool(self._waiting)

    def attach(self, send: Callable[[str], Awaitable[None]]) -> None:
        """The transport's socket is open and subscribed; ``send`` writes one text message."""
        self._send = send

    def detach(self) -> None:
        """The socket closed: every push still waiting fails with :class:`SocketGone`."""
        self._send = None
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(SocketGone("the realtime socket closed before the answer"))

    def answered(self, message: dict[str, Any]) -> None:
        """A ``pushed`` message arrived (one for no waiting push is ignored)."""
        future = self._waiting.pop(message.get("id", -1), None)
        if future is not None and not future.done():
            future.set_result(message)

    async def push(self, mutations: Sequence[dict[str, Any]], within: float) -> dict[str, Any]:
        """Push ``mutations`` (wire form) and return the answer as ``POST /v1/sync/push
        ?include_state=true`` gives it, plus ``derive`` (see :func:`expand`).

        Raises :class:`SocketGone` as described in the module docstring, and the error of
        the problem when the node refused the push as a whole (as the HTTP call would)."""
        send = self._send
        if send is None:
            raise SocketGone("no realtime socket")
        request_id = next(self._ids)
        text = codec.dumps({"type": "push", "id": request_id, "mutations": mutations}).decode()
        if len(text) > MAX_MESSAGE_BYTES:
            raise SocketGone("the push is too large for one message")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            # The send is bounded too: on a socket that is closing, ``websockets`` waits up to
            # its close timeout before it raises.
            async with asyncio.timeout(within):
                await send(text)
                message = await future
        except TimeoutError as exc:
            raise SocketGone(f"no answer over the socket within {within:.1f} s") from exc
        except SocketGone:
            raise
        except Exception as exc:  # the send failed: the socket is closing
            raise SocketGone(f"the realtime socket failed: {type(exc).__name__}") from exc
        finally:
            self._waiting.pop(request_id, None)
            if future.done() and not future.cancelled():
                future.exception()  # failed by detach while the send still ran: seen here
        if "error" in message:
            problem = message["error"]
            raise error_for_problem(int(problem.get("status", 400)), problem)
        return expand(message, mutations)


def expand(message: dict[str, Any], mutations: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A ``pushed`` message in the HTTP answer's shape: each result with its ``mutation_id``,
    ``status`` and ``origin``. ``derive`` stays: an applied result without ``state`` then has
    the state the device computes from its own mutation."""
    if len(message["results"]) != len(mutations):
        raise ValueError("a pushed answer needs one result per mutation")
    results = []
    for mutation, compact in zip(mutations, message["results"], strict=True):
        result = {"status": "applied", "origin": message.get("origin"), **compact}
        result["mutation_id"] = mutation["mutation_id"]
        results.append(result)
    answer = {"results": results, "hlc": message.get("hlc"), "stable": message.get("stable")}
    if message.get("derive"):
        answer["derive"] = True
    return answer
