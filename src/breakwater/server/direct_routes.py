"""The hottest endpoints answered without FastAPI's routing and exception layers.

``POST /v1/sync/push`` is most of a busy node's traffic, and with one mutation per push the
routing, dependency and exception-handling layers cost about as much as the push itself. This
plain ASGI layer sits just inside the request observer (metrics and the access log are
unchanged) and calls the very same endpoint functions; their routes stay registered, so the
OpenAPI document, ``405 Allow`` answers and every other path behave as before. Errors are turned
into the same problem+json answers as the app's exception handlers give.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from breakwater.core.errors import BreakwaterError
from breakwater.server import problems

Endpoint = Callable[[Request], Awaitable[Response]]


class DirectRoutes:
    """Dispatches exact ``(method, path)`` matches straight to their endpoints."""

    def __init__(self, app: ASGIApp, routes: dict[tuple[str, str], tuple[Endpoint, BaseRoute]]):
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            hit = self.routes.get((scope["method"], scope["path"]))
            if hit is not None:
                endpoint, route = hit
                scope["route"] = route  # the observer labels metrics with its template
                request = Request(scope, receive)
                try:
                    response = await endpoint(request)
                except BreakwaterError as error:
                    response = await problems.breakwater_error(request, error)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
