"""JSON responses through the project's codec, and access to the node behind a request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request
from starlette.responses import Response

from breakwater.core import codec
from breakwater.server.node import Node


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """An ``application/json`` response encoded with orjson."""
    return Response(
        codec.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def node_of(request: Request) -> Node:
    """The :class:`Node` serving ``request``."""
    node: Node = request.app.state.node
    return node
