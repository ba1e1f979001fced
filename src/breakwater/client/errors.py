"""Errors the SDK raises or reports, in the project's one error tree (core/errors.py).

BreakwaterError
├── EndpointUnavailable    transient: the endpoint did not answer, or answered 5xx/429
├── TransportRefused       permanent for this transport: the endpoint refused the stream
├── ClientClosed           the client was used after ``aclose``
├── NotSignedIn            an account call that needs a signed-in user
├── Unauthorized
│   └── MfaRequired        sign-in needs a one-time code (``otp``) or a recovery code
└── (a problem answer)     mapped by :func:`error_for_problem` to the core type of its
                           ``type`` (ClockSkew, CursorExpired, CursorUnknown, ...) or a
                           RemoteProblem
"""

from __future__ import annotations

from typing import Any

from breakwater.core.errors import (
    BreakwaterError,
    ClockSkew,
    CursorExpired,
    CursorUnknown,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    SchemaViolation,
    Unauthorized,
    Unavailable,
    ValidationError,
)


class EndpointUnavailable(Unavailable):
    """The endpoint could not be reached or answered with a transient error; retry later."""

    def __init__(self, detail: str, retry_after: float | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.retry_after = retry_after


class TransportRefused(BreakwaterError):
    """The endpoint answers plain HTTP but refused this realtime transport: try the next one."""

    type = "transport_refused"


class ClientClosed(BreakwaterError):
    """The client was closed; open a new one."""

    type = "client_closed"


class NotSignedIn(BreakwaterError):
    """The call needs a signed-in user (``client.auth.sign_in`` first)."""

    type = "not_signed_in"


class MfaRequired(Unauthorized):
    """The account has MFA on: sign in again with ``otp`` (or ``recovery_code``)."""


class RemoteProblem(BreakwaterError):
    """A problem answer of a type the SDK has no class for (``type`` and ``status`` kept)."""

    def __init__(self, problem: dict[str, Any]) -> None:
        summary = problem.get("detail") or f"{problem.get('status')} {problem.get('type')}"
        super().__init__(str(summary), problem=problem)
        self.problem = problem


_BY_TYPE: dict[str, type[BreakwaterError]] = {
    cls.type: cls
    for cls in (
        ValidationError,
        PayloadTooLarge,
        ClockSkew,
        SchemaViolation,
        NotFound,
        PreconditionFailed,
        CursorExpired,
        CursorUnknown,
        Unauthorized,
        Forbidden,
    )
}


def error_for_problem(status: int, problem: dict[str, Any]) -> BreakwaterError:
    """The error for a problem+json answer; 5xx and 429 are transient (EndpointUnavailable)."""
    detail = str(problem.get("detail", f"HTTP {status}"))
    if status >= 500 or status == 429:
        # The type stays readable: ``region_standby`` tells the SDK to route writes elsewhere.
        return EndpointUnavailable(detail, retry_after=None, problem=str(problem.get("type", "")))
    extra = {k: v for k, v in problem.items() if k not in ("type", "title", "status", "detail")}
    cls = _BY_TYPE.get(str(problem.get("type")))
    if cls is None:
        return RemoteProblem(problem)
    return cls(detail, **extra)


def is_permanent_input_error(error: BreakwaterError) -> bool:
    """A refusal of the mutations themselves that re-sending them will never fix.

    Only input errors count (``validation_error``, ``payload_too_large``, ``schema_violation``);
    a refusal of the request as a whole (``unauthorized``, ``forbidden``, ``rate_limited``, an
    unknown type) says nothing about the writes, which stay queued and are retried.
    """
    return isinstance(error, InvalidInput) and not isinstance(error, ClockSkew)
