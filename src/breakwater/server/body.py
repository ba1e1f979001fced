"""Reading request bodies within the configured size limit, before any parsing."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from breakwater.core import codec
from breakwater.core.ascii import is_digits
from breakwater.core.errors import PayloadTooLarge, ValidationError


async def read_json(request: Request, max_bytes: int) -> Any:
    """The parsed JSON body; 413 past ``max_bytes`` (checked on the header and while reading)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not is_digits(declared):
            raise ValidationError("Content-Length is not a number")
        if int(declared) > max_bytes:
            raise PayloadTooLarge(
                f"body is {declared} bytes; the limit is {max_bytes}", limit=max_bytes
            )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"body is over the limit of {max_bytes} bytes", limit=max_bytes)
        chunks.append(chunk)
    if size == 0:
        raise ValidationError("the request needs a JSON body")
    return codec.parse_body(b"".join(chunks))
