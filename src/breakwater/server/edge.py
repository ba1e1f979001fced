"""The node's outermost ASGI layer: a hot route's request crosses this one layer, not the chain.

A node's app is a chain of wrappers (security headers, Starlette's error middleware, tracing,
the realtime entry, the request observer, CORS, the gatekeeper) around FastAPI's router. Each
costs a coroutine frame and a ``send`` closure per request, together about as much as the
endpoint of a one-mutation push (ADR 0064). :class:`Edge` answers the direct routes (the push
and one document's read and writes) itself, calling the very objects the chain's wrappers
call, in the chain's order, with one ``send`` that adds every header; any other request goes
down the chain unchanged. So each concern keeps one implementation and a hot request gets the
same headers, statuses, problems, metrics, access line, span and refusals as through the chain.

Two chain layers have nothing to do for these requests and are not crossed: FastAPI's
exception telemetry (the node turns FastAPI's telemetry off) and its app-wide body limit (the
node sets none; its routes enforce ``max_body_bytes`` themselves).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from breakwater.server.access import admit
from breakwater.server.cors import CorsPolicy, expose_to
from breakwater.server.direct_routes import DirectRoutes
from breakwater.server.middleware import RequestObserver, id_header
from breakwater.server.security_headers import SecurityHeaders, secured

if TYPE_CHECKING:
    from breakwater.server.node import Node
    from breakwater.server.trace_requests import RequestSpans, Traced

ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


class Edge(DirectRoutes):
    """The direct routes, with the chain's concerns around them in one frame.

    In the chain's order: the server error guard and security headers outermost, then the
    request's span (when the node traces), the observer, CORS, the gatekeeper, the endpoint.
    """

    def __init__(
        self,
        app: ASGIApp,
        routes: list[tuple[str, APIRoute]],
        node: Node,
        observer: RequestObserver,
        cors: CorsPolicy,
        unexpected: ErrorHandler,
        spans: RequestSpans | None = None,
    ) -> None:
        super().__init__(app, routes)
        self.node = node
        self.observer = observer
        self.cors = cors
        self.unexpected = unexpected
        self.spans = spans

    async def serve(
        self, scope: Scope, receive: Receive, send: Send, route: APIRoute, params: dict[str, Any]
    ) -> None:
        path = scope["path"]
        status = 500
        started = failed = False
        origin: str | None = None
        spans = self.spans

        async def send_answer(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                headers = message.get("headers", ())
                if not failed:  # the error guard's 500 carries the security headers only
                    status = message["status"]
                    if origin is not None:
                        expose_to(origin, message)
                        headers = message["headers"]
                    headers = [*headers, id_header(observation)]
                message = {**message, "headers": secured(path, headers)}
            await send(message)

        try:
            traced: Traced | None = spans.begin(scope) if spans is not None else None
            error: BaseException | None = None
            try:
                observation = self.observer.begin(scope)
                try:
                    verdict = self.cors.screen(scope)
                    if isinstance(verdict, str):
                        origin = verdict
                    refusal = verdict if isinstance(verdict, Response) else None
                    if refusal is None:
                        refusal = await admit(self.node, scope)
                    if refusal is None:
                        await super().serve(scope, receive, send_answer, route, params)
                    else:
                        await refusal(scope, receive, send_answer)
                finally:
                    self.observer.end(scope, observation, status)
            except BaseException as failure:
                error = failure
                raise
            finally:
                if spans is not None and traced is not None:
                    spans.end(traced, scope, status, error)
        except Exception as exc:
            # As Starlette's ServerErrorMiddleware: answer if nothing was sent, then re-raise.
            failed = True
            response = await self.unexpected(Request(scope), exc)
            if not started:
                await response(scope, receive, send_answer)
            raise


EdgeFactory = Callable[[ASGIApp], ASGIApp]


class NodeApp(FastAPI):
    """The node's FastAPI app: :class:`SecurityHeaders` outside every other layer, and, once
    ``edge`` is set, the node's :class:`Edge` outside it."""

    edge: EdgeFactory | None = None

    def build_middleware_stack(self) -> ASGIApp:
        chain = SecurityHeaders(super().build_middleware_stack())
        return chain if self.edge is None else self.edge(chain)
