"""Stand-in nodes for gateway tests: they pass ``/readyz`` and misbehave on everything else."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Behaviour = str
"""``drop`` (close without an answer), ``fail`` (answer 500) or ``ok`` (answer 200)."""


class _StandIn(BaseHTTPRequestHandler):
    arrived: Counter[str]
    behaviour: Behaviour

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _handle(self) -> None:
        if self.path == "/readyz":
            self._answer(200)
            return
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.arrived[self.command] += 1
        if self.behaviour == "drop":
            self.close_connection = True  # no answer: HAProxy sees an empty response
        else:
            self._answer(500 if self.behaviour == "fail" else 200)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@contextmanager
def stand_in(behaviour: Behaviour, arrived: Counter[str]) -> Iterator[str]:
    """Serve a stand-in node on loopback; yield its URL; count requests by method."""
    handler = type("StandIn", (_StandIn,), {"arrived": arrived, "behaviour": behaviour})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
