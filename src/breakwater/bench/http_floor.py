"""``breakwater bench floor``: the CPU a single durable write cannot go below on this stack.

Issue 22 asks for at most 150 µs of node CPU per one-mutation push. Whether that is reachable
depends on what the pieces under the node cost by themselves, so this benchmark serves the
same small JSON ``POST`` (about 250 B in, about 100 B out) from a ladder of servers, each
a subprocess driven by the same load generator (:mod:`._http`, 16 keep-alive connections),
and divides each server's CPU seconds (``/proc``) by the requests it answered:

- ``asgi``: a bare ASGI callable on uvicorn with uvloop and httptools (the node's server);
- ``node_http``: the node's own HTTP layers with no domain work: FastAPI, the direct-route
  dispatch, the one-write-per-response transport, ``read_json`` and ``json_response``;
- ``protocol``: a raw ``asyncio.Protocol`` on uvloop that parses just enough HTTP;
- ``commit``: that protocol handing each body to a writer thread that commits it as one row
  to SQLite (WAL, ``synchronous=FULL``) in its own transaction before the answer;
- ``group_commit``: the same writer committing everything queued in one transaction, as the
  node's writer does;
- ``node``: ``breakwater serve`` taking the same body as a one-mutation push.

``--body peers`` sends instead the peers' harness's push (``/work/shared/peers/loadgen.py``: a
1 KB document with a float time stamp and a padding string, as Python's ``json.dumps`` writes
it), so that a small and a 1 KB push can be compared on the same ladder.

Server programs are source text run with ``python -c`` (as :mod:`.instructions_request`), so a
run measures exactly the process that serves.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from breakwater.bench._http import HttpConnection
from breakwater.bench._node import BenchNode, cpu_seconds, free_port, machine, stop_process
from breakwater.bench.stats import median

CONCURRENCY = 16
WARMUP_SECONDS = 1.0
KINDS = ("asgi", "node_http", "protocol", "commit", "group_commit", "node")
Body = Literal["small", "peers"]
BODIES: tuple[Body, ...] = ("small", "peers")
PEERS_DOCUMENT_BYTES = 1024
"""The size ``loadgen.py`` aims its documents at (its ``--doc-size`` default)."""
ANSWER = b'{"results":[{"status":"applied","origin":"bench","seq":1}],"hlc":"0000000000000"}'
"""About the size of a one-mutation push's answer."""

SERVER = r"""
import asyncio, os, queue, sqlite3, sys, threading

import orjson

KIND, PORT, DATA = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ANSWER = __ANSWER__


def writer(group):
    # One writer thread; futures are resolved on the loop (the hand-off the node pays too).
    conn = sqlite3.connect(os.path.join(DATA, "floor.db"), isolation_level=None,
                           check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
    jobs = queue.SimpleQueue()

    def run():
        while True:
            batch = [jobs.get()]
            while group and not jobs.empty():
                batch.append(jobs.get())
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO rows (body) VALUES (?)", [(b,) for b, _ in batch])
            conn.execute("COMMIT")
            for _, done in batch:
                done()

    threading.Thread(target=run, daemon=True).start()
    return jobs


def protocol_server(loop, jobs):
    head = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
            % len(ANSWER))

    class Floor(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buffer = transport, b""

        def data_received(self, data):
            self.buffer += data
            while True:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                length = 0
                for line in self.buffer[:end].split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                if len(self.buffer) < end + 4 + length:
                    return
                body = self.buffer[end + 4 : end + 4 + length]
                self.buffer = self.buffer[end + 4 + length :]
                orjson.loads(body)
                if jobs is None:
                    self.transport.write(head + ANSWER)
                else:
                    reply = lambda t=self.transport: t.is_closing() or t.write(head + ANSWER)
                    jobs.put((body, lambda r=reply: loop.call_soon_threadsafe(r)))

    return Floor


async def serve_protocol(jobs):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(protocol_server(loop, jobs), "127.0.0.1", PORT)
    await server.serve_forever()


async def bare_asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    orjson.loads(body)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", b"%d" % len(ANSWER))]})
    await send({"type": "http.response.body", "body": ANSWER})


def node_http_app():
    from fastapi import FastAPI, Request
    from fastapi.routing import APIRoute

    from breakwater.server.body import read_json
    from breakwater.server.direct_routes import DirectRoutes
    from breakwater.server.responses import json_response

    app = FastAPI()

    @app.post("/v1/sync/push")
    async def push(request: Request):
        await read_json(request, 1 << 20)
        return json_response(orjson.loads(ANSWER))

    routes = [("POST", r) for r in app.router.routes if isinstance(r, APIRoute)]
    app.add_middleware(DirectRoutes, routes=routes)
    return app


import uvloop

if KIND in ("protocol", "commit", "group_commit"):
    jobs = None if KIND == "protocol" else writer(KIND == "group_commit")
    uvloop.run(serve_protocol(jobs))
else:
    import uvicorn

    if KIND == "asgi":
        app, http = bare_asgi, "httptools"
    else:
        from breakwater.server.coalescing import CoalescingHttpToolsProtocol

        app, http = node_http_app(), CoalescingHttpToolsProtocol
    uvicorn.run(app, host="127.0.0.1", port=PORT, loop="uvloop", http=http, lifespan="off",
                access_log=False, log_config=None, server_header=False)
""".replace("__ANSWER__", repr(ANSWER))


def body(prefix: str, index: int, kind: Body = "small") -> bytes:
    """A one-mutation push of a new document: about 250 bytes, compact (``small``), or the
    peers' harness's 1 KB push (``peers``)."""
    if kind == "peers":
        return _peers_body(prefix, index)
    return (
        b'{"client_id":"bench","mutations":[{"mutation_id":"%s-%d","collection":"bench",'
        b'"id":"%s-%d","op":"set","data":{"title":"a short note","done":false,"n":%d,'
        b'"tags":["floor","bench"],"body":"%s"}}]}'
        % (prefix.encode(), index, prefix.encode(), index, index, b"x" * 64)
    )


def _peers_body(prefix: str, index: int) -> bytes:
    """``loadgen.py --mode push --batch 1``'s body: its ``make_doc`` and ``push_mutation``,
    with ids of its length (32 characters) made of ``prefix`` and ``index``."""
    name = f"{prefix}{index:0{32 - len(prefix)}d}"
    document: dict[str, Any] = {"type": "bench", "ts": time.time()}
    document["pad"] = "x" * max(PEERS_DOCUMENT_BYTES - len(json.dumps(document)) - 12, 0)
    mutation = {
        "mutation_id": name,
        "collection": "single",
        "id": name,
        "op": "set",
        "data": document,
    }
    return json.dumps({"client_id": "loadgen", "mutations": [mutation]}).encode()


@dataclass
class Measurement:
    """One server in one run."""

    kind: str
    requests_per_s: float
    server_cpu_us: float
    """The server process's CPU seconds (user and system, all threads) per request."""
    client_cpu_us: float
    errors: int


class _Served:
    """A floor server (or the node) in a subprocess, stopped by its PID."""

    def __init__(self, kind: str, data: Path) -> None:
        self.port = free_port()
        self.node: BenchNode | None = None
        self.process: subprocess.Popen[bytes] | None = None
        if kind == "node":
            self.node = BenchNode(data, self.port, "info")
            self.pid = self.node.process.pid
        else:
            self.process = subprocess.Popen(
                [sys.executable, "-c", SERVER, kind, str(self.port), str(data)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.pid = self.process.pid

    async def wait_ready(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                async with HttpConnection("127.0.0.1", self.port) as conn:
                    status, _ = await conn.request("POST", "/v1/sync/push", body("ready", 0))
                if status == 200:
                    return
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError("a floor server did not start")

    def cpu_seconds(self) -> float:
        if self.node is not None:
            return self.node.cpu_seconds()
        return cpu_seconds(Path(f"/proc/{self.pid}"))

    def stop(self) -> None:
        if self.node is not None:
            self.node.stop()
        elif self.process is not None:
            stop_process(self.process, 10)


async def _load(port: int, seconds: float, kind: Body = "small") -> tuple[int, int]:
    """Requests answered 200 and others, from :data:`CONCURRENCY` connections."""
    deadline = time.perf_counter() + seconds
    counts = [0, 0]

    async def worker() -> None:
        prefix = uuid.uuid4().hex[:12]
        sent = 0
        async with HttpConnection("127.0.0.1", port) as conn:
            while time.perf_counter() < deadline:
                status, _ = await conn.request("POST", "/v1/sync/push", body(prefix, sent, kind))
                counts[0 if status == 200 else 1] += 1
                sent += 1

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return counts[0], counts[1]


async def measure(kind: str, seconds: float, sent: Body = "small") -> Measurement:
    """One run of ``kind``: a fresh server, a warm-up, then ``seconds`` of load of ``sent``
    bodies."""
    with tempfile.TemporaryDirectory(prefix="bw-bench-floor-") as tmp:
        served = _Served(kind, Path(tmp))
        try:
            await served.wait_ready()
            await _load(served.port, WARMUP_SECONDS, sent)
            cpu = served.cpu_seconds()
            own = time.process_time()
            started = time.perf_counter()
            ok, errors = await _load(served.port, seconds, sent)
            elapsed = time.perf_counter() - started
            server_cpu = served.cpu_seconds() - cpu
            client_cpu = time.process_time() - own
        finally:
            served.stop()
    answered = max(ok + errors, 1)
    return Measurement(
        kind=kind,
        requests_per_s=ok / elapsed,
        server_cpu_us=server_cpu / answered * 1e6,
        client_cpu_us=client_cpu / answered * 1e6,
        errors=errors,
    )


async def run(
    runs: int,
    seconds: float,
    kinds: tuple[str, ...] = KINDS,
    progress: Callable[[str], None] = lambda _: None,
    sent: Body = "small",
) -> dict[str, Any]:
    """Every kind ``runs`` times, interleaved (one of each per round), each sent ``sent``
    bodies; medians per kind."""
    measured: dict[str, list[Measurement]] = {kind: [] for kind in kinds}
    for round_index in range(runs):
        for kind in kinds:
            progress(f"round {round_index + 1}/{runs}: {kind}")
            measured[kind].append(await measure(kind, seconds, sent))
    return {
        "benchmark": "floor",
        "concurrency": CONCURRENCY,
        "body": sent,
        "seconds": seconds,
        "runs": runs,
        "load_average": os.getloadavg()[0],
        "machine": machine(),
        "results": [
            {
                "kind": kind,
                "requests_per_s": round(median([m.requests_per_s for m in found])),
                "server_cpu_us": round(median([m.server_cpu_us for m in found]), 1),
                "client_cpu_us": round(median([m.client_cpu_us for m in found]), 1),
                "errors": sum(m.errors for m in found),
                "runs": [asdict(m) for m in found],
            }
            for kind, found in measured.items()
        ],
    }
