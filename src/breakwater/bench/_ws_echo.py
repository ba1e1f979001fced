"""A minimal WebSocket peer for :mod:`.sdk_floor`: answers each message as a node answers a push.

``python -m breakwater.bench._ws_echo deflate|none`` listens on a free loopback port, prints it,
and answers every message with the two a node sends a device for one write over its realtime
socket: a ``pushed`` answer and the ``changes`` echo, shaped and sized as the node's (see
docs/protocol.md), numbered by the message's count so that compression sees ids and stamps
change as they do. It runs until its standard input closes.
"""

from __future__ import annotations

import asyncio
import sys

from websockets.asyncio.server import ServerConnection, serve

ORIGIN = "local~c37c31d45ed8"


def answers(n: int) -> tuple[str, str]:
    """The ``pushed`` answer and the ``changes`` echo of the ``n``-th push."""
    hlc = f"17965584{39637 + n * 150}-0000-d-1"
    pushed = (
        f'{{"type":"pushed","id":{n},"origin":"{ORIGIN}","results":[{{"seq":{n},'
        f'"version":"09bda93b25a3{n:08x}","hlc":"{hlc}"}}],'
        f'"hlc":"17965584{39680 + n * 150}-0000-local-4edc75","stable":{{"{ORIGIN}":{n}}},'
        '"derive":true}'
    )
    echo = (
        f'{{"type":"changes","changes":[{{"origin":"{ORIGIN}","seq":{n},"collection":"todos",'
        f'"id":"t{n}","op":"set","mutation_id":"4edc75a1b2c3.{n}","hlc":"{hlc}",'
        f'"deleted":false,"version":"09bda93b25a3{n:08x}","data":{{"title":"a todo item of '
        'ordinary size","done":false,"tags":["home","errand"]}}],'
        f'"cursor":"c1.eyJsb2NhbH5jMzdjMzFkNDVlZDgiOj{n:04d}","stable":{{"{ORIGIN}":{n}}}}}'
    )
    return pushed, echo


async def _answer(ws: ServerConnection) -> None:
    n = 0
    async for _message in ws:
        n += 1
        pushed, echo = answers(n)
        await ws.send(pushed)
        await ws.send(echo)


async def _serve(compression: str | None) -> None:
    async with serve(_answer, "127.0.0.1", 0, compression=compression) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(port, flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the parent closes our stdin


if __name__ == "__main__":
    asyncio.run(_serve(None if sys.argv[1] == "none" else sys.argv[1]))
