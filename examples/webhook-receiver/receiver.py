"""A webhook receiver for Breakwater that verifies signatures: Python standard library only.

    BREAKWATER_WEBHOOK_SECRET=whsec_… python3 receiver.py --port 9000

It checks ``Breakwater-Signature`` on the raw body (HMAC-SHA256 over ``<t>.<body>``, a
constant-time comparison, at most five minutes of clock difference), answers 400 to a delivery
that fails the check, skips a delivery whose ``id`` it has already handled (deliveries are at
least once) and answers 204 once the event is handled. Replace ``handle`` with your own work,
and keep the seen ids somewhere durable in a real service.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

TOLERANCE_SECONDS = 300
MAX_BODY = 1 << 20


def verify(secret: str, body: bytes, header: str | None, now: float | None = None) -> bool:
    """True if ``header`` signs ``body`` with ``secret`` at a time close to ``now``."""
    if not header:
        return False
    stamps: list[str] = []
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            stamps.append(value)
        elif name == "v1":
            signatures.append(value)
    if len(stamps) != 1 or not stamps[0].isdigit() or not signatures:
        return False
    current = time.time() if now is None else now
    if abs(current - int(stamps[0])) > TOLERANCE_SECONDS:
        return False
    message = stamps[0].encode("ascii") + b"." + body
    expected = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, signature) for signature in signatures)


def handle(event: dict[str, Any]) -> None:
    """Your work: here, one line per change."""
    state = "deleted" if event["deleted"] else json.dumps(event["data"], sort_keys=True)
    print(f"{event['collection']}/{event['doc_id']} {event['op']} -> {state}", flush=True)


class Receiver(BaseHTTPRequestHandler):
    """POST only; everything else is 405."""

    secret: ClassVar[str] = ""
    seen: ClassVar[set[str]] = set()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.send_response(413)
            self.end_headers()
            return
        body = self.rfile.read(length)
        if not verify(self.secret, body, self.headers.get("Breakwater-Signature")):
            self.send_response(400)
            self.end_headers()
            return
        event = json.loads(body)
        if event["id"] not in self.seen:  # a retry of a handled delivery: answer, do nothing
            handle(event)
            self.seen.add(event["id"])
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: ``handle`` prints what matters."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    secret = os.environ.get("BREAKWATER_WEBHOOK_SECRET")
    if not secret:
        sys.exit("Error: set BREAKWATER_WEBHOOK_SECRET to the secret printed by `webhooks add`")
    Receiver.secret = secret
    server = ThreadingHTTPServer((args.host, args.port), Receiver)
    print(f"listening on http://{args.host}:{args.port}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
