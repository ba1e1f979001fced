"""Headers every answer of the node carries, added in one place around the whole app.

``X-Content-Type-Options: nosniff`` goes on every HTTP answer (errors, streams, ``/metrics``,
WebSocket refusals), so that no browser runs a JSON or text answer as a script or page.
``Cache-Control: private, no-store`` goes on every answer under ``/v1/``: documents, queries,
pulls and streams are the caller's view under its read rules, and auth answers carry tokens,
so no cache (shared or the browser's) may keep any of them. The one exception is a file's
download (``/v1/files/``), whose route sets its own policy: its bytes never change.

The wrapper sits outside FastAPI's own error middleware (see :class:`NodeApp`), so the bare 500
of an unexpected error carries the headers too. WebSocket scopes pass through untouched: the
realtime fast path writes frames straight to the socket under uvicorn's own ``send``, which a
wrapper would hide; a refused handshake adds :data:`API_HEADERS` itself.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_HEADERS = {"x-content-type-options": "nosniff", "cache-control": "private, no-store"}
NOSNIFF = (b"x-content-type-options", b"nosniff")
NO_STORE = (b"cache-control", b"private, no-store")
API_PREFIX = "/v1/"
FILES_PREFIX = "/v1/files/"


class SecurityHeaders:
    """Adds :data:`NOSNIFF` to every answer and :data:`NO_STORE` to every ``/v1/`` answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith(API_PREFIX)
        files = scope["path"].startswith(FILES_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                own = files and any(h[0] == NO_STORE[0] for h in headers)
                if api and not own:  # the one cache policy of the API, whatever a route set
                    headers = [h for h in headers if h[0] != NO_STORE[0]]
                    headers.append(NO_STORE)
                headers.append(NOSNIFF)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class NodeApp(FastAPI):
    """The node's FastAPI app, with :class:`SecurityHeaders` outside every other layer."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack())
