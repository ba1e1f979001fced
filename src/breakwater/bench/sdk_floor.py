"""The floor under the Python SDK's device CPU per online write (issue 22).

What CPython spends on the pieces every settled write needs, with nothing of the SDK around
them, in this process's CPU time (``time.process_time``: every thread, user and system):

- ``idle``: an event loop asleep for the pause between writes (an open socket beside it);
- ``exchange``: one WebSocket exchange on an open connection with the library and settings the
  SDK uses (``websockets``, permessage-deflate; and, for comparison, without compression),
  a push out and the two messages a node answers with (``pushed`` and the ``changes`` echo),
  against :mod:`._ws_echo` in another process over loopback;
- ``transaction``: the local store's durable transaction by itself (one ``INSERT`` in the
  SDK's outbox table, ``BEGIN IMMEDIATE`` … ``COMMIT`` with the SDK's pragmas: WAL,
  ``synchronous=FULL``) on the loop's thread;
- ``write``: the three a settled write cannot do without, in order: the durable transaction,
  the exchange (deflate), and the acknowledgement's record (an ``UPDATE`` committed with
  ``synchronous=NORMAL``, ADR 0060).

Each is run ``count`` times after a few to warm up, with ``pause`` seconds between runs (a
phone's pace: the process sleeps between writes and wakes cold) and back to back
(``pause=0``); the figure is CPU milliseconds per run, the pause's own cost included as it is
in the SDK's figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from breakwater.client import local_store

WARM_UP = 5
DOC_TEXT = '{"title":"a todo item of ordinary size","done":false,"tags":["home","errand"]}'


def push_text(n: int) -> str:
    """The SDK's ``push`` message for its ``n``-th write, as it encodes one."""
    return (
        f'{{"type":"push","id":{n},"mutations":[{{"mutation_id":"4edc75a1b2c3.{n}",'
        f'"collection":"todos","id":"t{n}","op":"set","data":{DOC_TEXT},'
        f'"hlc":"17965584{39637 + n * 150}-0000-d-4edc75a1b2c3"}}]}}'
    )


@contextlib.asynccontextmanager
async def echo_socket(compression: str | None) -> AsyncIterator[ClientConnection]:
    """A client connection (the SDK's settings) to a :mod:`._ws_echo` peer in a child process."""
    peer = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "breakwater.bench._ws_echo",
        compression or "none",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    stdin, stdout = peer.stdin, peer.stdout
    if stdin is None or stdout is None:
        raise RuntimeError("the echo peer's pipes are missing")
    try:
        port = int(await stdout.readline())
        async with connect(f"ws://127.0.0.1:{port}", compression=compression) as ws:
            yield ws
    finally:
        stdin.close()  # the peer's signal to stop
        try:
            async with asyncio.timeout(10):
                await peer.wait()
        except TimeoutError:
            peer.kill()
            await peer.wait()


def durable_insert(conn: sqlite3.Connection, n: int) -> int:
    """The write's transaction: its outbox row, fsynced."""
    conn.execute("BEGIN IMMEDIATE")
    cursor = conn.execute(
        "INSERT INTO outbox (mutation_id, collection, id, op, data, hlc) VALUES (?, ?, ?, ?, ?, ?)",
        (f"m.{n}", "todos", f"t{n}", "set", DOC_TEXT, f"{n:013d}-0000-d"),
    )
    conn.execute("COMMIT")
    return int(cursor.lastrowid or 0)


def acknowledge(conn: sqlite3.Connection, position: int, n: int) -> None:
    """The acknowledgement's record, committed without its own fsync (ADR 0060)."""
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "UPDATE outbox SET origin = ?, seq = ? WHERE position = ?", ("local~c37c", n, position)
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA synchronous = FULL")


async def exchange(ws: ClientConnection, n: int) -> None:
    """A push out, its answer and the echo in."""
    await ws.send(push_text(n))
    await ws.recv()
    await ws.recv()


async def cpu_ms_per_run(
    step: Callable[[int], Awaitable[object]], count: int, pause: float
) -> float:
    """CPU ms of this process per ``step``, ``pause`` s apart (after :data:`WARM_UP` steps)."""
    for n in range(1, WARM_UP + 1):
        await step(n)
        await asyncio.sleep(pause)
    started = time.process_time()
    for n in range(WARM_UP + 1, WARM_UP + count + 1):
        await step(n)
        await asyncio.sleep(pause)
    return (time.process_time() - started) * 1000 / count


async def measure(tmp: Path, count: int, pause: float) -> dict[str, float]:
    """Every floor at ``pause`` s between runs, and the ``exchange`` and ``write`` figures
    back to back too; CPU ms per run, keyed ``<what>_ms`` (``..._b2b_ms`` back to back)."""
    report: dict[str, float] = {}
    conn = local_store.connect(tmp / "floor.db")

    async def nothing(_n: int) -> None:
        return None

    async def transaction(n: int) -> None:
        durable_insert(conn, n)

    try:
        async with echo_socket("deflate") as ws:
            report["idle_ms"] = await cpu_ms_per_run(nothing, count, pause)
            report["transaction_ms"] = await cpu_ms_per_run(transaction, count, pause)

            async def deflated(n: int) -> None:
                await exchange(ws, n)

            async def write(n: int) -> None:
                position = durable_insert(conn, 10_000 + n)
                await exchange(ws, 10_000 + n)
                acknowledge(conn, position, n)

            report["exchange_ms"] = await cpu_ms_per_run(deflated, count, pause)
            report["write_ms"] = await cpu_ms_per_run(write, count, pause)
            report["exchange_b2b_ms"] = await cpu_ms_per_run(deflated, count, 0)
            report["write_b2b_ms"] = await cpu_ms_per_run(lambda n: write(20_000 + n), count, 0)
        async with echo_socket(None) as ws:

            async def plain(n: int) -> None:
                await exchange(ws, n)

            report["exchange_plain_ms"] = await cpu_ms_per_run(plain, count, pause)
            report["exchange_plain_b2b_ms"] = await cpu_ms_per_run(plain, count, 0)
    finally:
        conn.close()
    return report
