"""The HTTP control API of chaos proxies, so that a scenario, a shell or CI can break links.

Routes (JSON bodies; errors are ``application/problem+json``):

- ``GET /proxies``: every proxy by name (addresses, faults in force, counters)
- ``GET /proxies/{name}``: one proxy
- ``PUT /proxies/{name}/faults/{kind}``: switch fault ``kind`` on (body: its parameters)
- ``DELETE /proxies/{name}/faults/{kind}``: switch it off
- ``DELETE /proxies/{name}/faults``: heal the proxy (every fault off)

The app runs on the proxies' event loop: a fault change acts on open connections at once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from breakwater.chaos.faults import FAULT_TYPES, parse_fault
from breakwater.chaos.proxy import ChaosProxy
from breakwater.core.errors import BreakwaterError, NotFound, ValidationError

MAX_BODY_BYTES = 64 * 1024


def _problem(error: BreakwaterError) -> Response:
    return JSONResponse(
        error.to_problem(), status_code=error.status, media_type="application/problem+json"
    )


def control_app(proxies: Mapping[str, ChaosProxy]) -> Starlette:
    """The control API over ``proxies`` (by name)."""

    def proxy_of(request: Request) -> ChaosProxy:
        name = request.path_params["name"]
        if name not in proxies:
            raise NotFound(f"no proxy named {name!r}; known: {sorted(proxies)}")
        return proxies[name]

    def kind_of(request: Request) -> str:
        kind: str = request.path_params["kind"]
        if kind not in FAULT_TYPES:
            raise NotFound(f"unknown fault {kind!r}; known: {sorted(FAULT_TYPES)}")
        return kind

    async def list_proxies(request: Request) -> Response:
        return JSONResponse({name: proxy.describe() for name, proxy in proxies.items()})

    async def show(request: Request) -> Response:
        return JSONResponse(proxy_of(request).describe())

    async def put_fault(request: Request) -> Response:
        proxy, kind = proxy_of(request), kind_of(request)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise ValidationError(f"body over {MAX_BODY_BYTES} bytes")
        params: Any = {}
        if body.strip():
            try:
                params = json.loads(body)
            except ValueError as exc:
                raise ValidationError(f"body is not valid JSON: {exc}") from exc
        if not isinstance(params, dict):
            raise ValidationError("body must be a JSON object of fault parameters")
        proxy.set_fault(parse_fault(kind, params))
        return JSONResponse(proxy.describe())

    async def delete_fault(request: Request) -> Response:
        proxy, kind = proxy_of(request), kind_of(request)
        proxy.clear_fault(kind)
        return JSONResponse(proxy.describe())

    async def heal(request: Request) -> Response:
        proxy = proxy_of(request)
        proxy.heal()
        return JSONResponse(proxy.describe())

    async def on_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BreakwaterError)
        return _problem(exc)

    return Starlette(
        routes=[
            Route("/proxies", list_proxies, methods=["GET"]),
            Route("/proxies/{name}", show, methods=["GET"]),
            Route("/proxies/{name}/faults", heal, methods=["DELETE"]),
            Route("/proxies/{name}/faults/{kind}", put_fault, methods=["PUT"]),
            Route("/proxies/{name}/faults/{kind}", delete_fault, methods=["DELETE"]),
        ],
        exception_handlers={BreakwaterError: on_error},
    )
