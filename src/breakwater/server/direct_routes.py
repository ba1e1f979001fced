"""The hottest endpoints answered without FastAPI's routing and exception layers.

``POST /v1/sync/push`` is most of a busy node's traffic, and with one mutation per push the
routing, dependency and exception-handling layers cost about as much as the push itself. The
single-document routes (``/v1/collections/{collection}/docs/{doc_id}``) paid more still: FastAPI
tries its routes one by one and the document routes come late among some fifty, so a ``PUT``
cost about twice a one-mutation push (docs/benchmarks.md). This plain ASGI layer sits just inside
the request observer (metrics and the access log are unchanged) and calls the very same endpoint
functions; their routes stay registered, so the OpenAPI document, ``405 Allow`` answers and every
other path (a trailing slash, an empty segment) behave as before. Errors are turned into the same
problem+json answers as the app's exception handlers give.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from breakwater.core.errors import BreakwaterError
from breakwater.server import problems

Endpoint = Callable[..., Awaitable[Response]]
"""A route's endpoint: the request as keyword ``request``, its path parameters as the others."""


class DirectRoutes:
    """Dispatches the given routes straight to their endpoints.

    A route without path parameters is found by an exact ``(method, path)`` lookup; one with
    parameters by its own path pattern, only among the few direct routes of that method.
    """

    def __init__(self, app: ASGIApp, routes: list[tuple[str, APIRoute]]):
        self.app = app
        self.exact: dict[tuple[str, str], APIRoute] = {}
        self.templated: dict[str, list[APIRoute]] = {}
        for method, route in routes:
            if route.param_convertors:
                self.templated.setdefault(method, []).append(route)
            else:
                self.exact[(method, route.path)] = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = self._find(scope["method"], scope["path"])
            if found is not None:
                route, params = found
                scope["route"] = route  # the observer labels metrics with its template
                scope["path_params"] = params
                request = Request(scope, receive)
                try:
                    response = await route.endpoint(request=request, **params)
                except BreakwaterError as error:
                    response = await problems.breakwater_error(request, error)
                except ClientDisconnect as gone:
                    response = await problems.client_gone(request, gone)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _find(self, method: str, path: str) -> tuple[APIRoute, dict[str, Any]] | None:
        route = self.exact.get((method, path))
        if route is not None:
            return route, {}
        for route in self.templated.get(method, ()):
            match = route.path_regex.match(path)
            if match is not None:
                convertors = route.param_convertors
                return route, {
                    name: convertors[name].convert(value)
                    for name, value in match.groupdict().items()
                }
        return None
