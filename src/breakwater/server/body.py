"""Reading request bodies within the configured size limit, before any parsing."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from breakwater.core import codec
from breakwater.core.ascii import is_digits
from breakwater.core.errors import PayloadTooLarge, UnsupportedEncoding, ValidationError


async def read_json(request: Request, max_bytes: int) -> Any:
    """The parsed JSON body; 413 past ``max_bytes`` (checked on the header and while reading).

    A body with a ``Content-Encoding`` other than ``identity`` is refused (415) before it is
    read: the node decodes none, and parsing compressed bytes as JSON fails with a detail
    about the bytes that says nothing of the real cause.
    """
    _check_encoding(request.headers.getlist("content-encoding"))
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


def _check_encoding(values: list[str]) -> None:
    codings = [c.strip(" \t").lower() for value in values for c in value.split(",")]
    unsupported = [c for c in codings if c != "identity"]
    if unsupported:
        shown = ", ".join(repr(c[:40]) for c in unsupported[:4])
        raise UnsupportedEncoding(
            f"Content-Encoding {shown} is not supported; send the body uncompressed"
        )
