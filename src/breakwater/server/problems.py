"""Errors to RFC 9457 problem+json responses, in one place.

The public ``detail`` of a :class:`BreakwaterError` is shown; the raw cause never is. Anything
unexpected is logged with its traceback and answered with a bare 500 that leaks nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from breakwater.core import codec
from breakwater.core.errors import BreakwaterError, ValidationError
from breakwater.obs.logging import get_logger

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = 1
_log = get_logger("breakwater.server")

_HTTP_TYPES = {
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


def problem(
    status: int,
    type_: str,
    title: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    """A problem+json response (``Retry-After`` added on 429 and 503)."""
    body = {"type": type_, "title": title, "status": status, "detail": detail, **extra}
    all_headers = dict(headers or {})
    if status in (429, 503):
        all_headers.setdefault("Retry-After", str(RETRY_AFTER_SECONDS))
    return Response(
        codec.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=all_headers
    )


def error_response(error: BreakwaterError, headers: Mapping[str, str] | None = None) -> Response:
    """The problem+json response of a Breakwater error (``Retry-After`` from its extra)."""
    if "retry_after" in error.extra:
        headers = {"Retry-After": str(error.extra["retry_after"]), **(headers or {})}
    if error.status == 401:  # RFC 9110: a 401 names the scheme that would be accepted
        headers = {"WWW-Authenticate": 'Bearer realm="breakwater"', **(headers or {})}
    return problem(
        error.status, error.type, error.title, error.detail, headers=headers, **error.extra
    )


async def breakwater_error(request: Request, exc: Exception) -> Response:
    """The answer to a Breakwater error raised while handling ``request``."""
    assert isinstance(exc, BreakwaterError)
    if exc.status >= 500:
        _log.warning("unavailable", error=exc.type, detail=exc.detail, path=request.url.path)
    return error_response(exc)


async def _request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"location": ".".join(str(p) for p in err.get("loc", ())), "message": err.get("msg", "")}
        for err in exc.errors()
    ]
    first = errors[0] if errors else {"location": "request", "message": "invalid"}
    return error_response(
        ValidationError(f"{first['location']}: {first['message']}", errors=errors)
    )


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    type_, title = _HTTP_TYPES.get(exc.status_code, ("http_error", "HTTP error"))
    return problem(exc.status_code, type_, title, str(exc.detail), headers=exc.headers)


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client went away before its body was read (a reset, a closed app): nobody reads an
    answer and nothing failed on the node, so one quiet line, no traceback (499, as nginx)."""
    _log.info("client_disconnected", path=request.url.path)
    return Response(status_code=499)


async def _unexpected(request: Request, exc: Exception) -> Response:
    _log.error("unhandled_error", path=request.url.path, exc_info=exc)
    return problem(500, "internal_error", "Internal error", "the node failed to answer; see logs")


def install(app: FastAPI) -> None:
    """Register every error handler on ``app``."""
    app.add_exception_handler(BreakwaterError, breakwater_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(ClientDisconnect, client_gone)
    app.add_exception_handler(Exception, _unexpected)
