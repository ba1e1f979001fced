"""Files over HTTP: tus 1.0 uploads at ``/v1/uploads`` and downloads at ``/v1/files/<sha256>``.

tus 1.0 core with the creation, creation-with-upload, termination, checksum and expiration
extensions (https://tus.io/protocols/resumable-upload), so stock tus clients work. Every
answer under ``/v1/uploads`` carries ``Tus-Resumable``, errors included. Downloads are
content-addressed: the strong ``ETag`` is the hash, ``Range`` gives 206, and a file anyone
may read is cacheable by shared caches for a year (it can never change). Access is decided
by :mod:`breakwater.server.application.files`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from email.utils import formatdate
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response, StreamingResponse

from breakwater.core.ascii import is_digits
from breakwater.core.errors import (
    BreakwaterError,
    PreconditionFailed,
    UnsupportedEncoding,
    ValidationError,
)
from breakwater.files.checksums import ALGORITHMS, parse_checksum
from breakwater.files.direct_bodies import FileBody
from breakwater.files.ranges import parse_range
from breakwater.files.uploads import Upload
from breakwater.server import openapi, problems
from breakwater.server.access import identity_of
from breakwater.server.params import AsciiFloat
from breakwater.server.responses import json_response, node_of
from breakwater.server.socket_bodies import SocketBody, socket_body_of

router = APIRouter(tags=["files"])

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,checksum,expiration"
OFFSET_STREAM = "application/offset+octet-stream"
FILE_HEADER = "Breakwater-File"
"""Names the stored file (its SHA-256) once an upload is complete."""
YEAR = 31_536_000
# Whatever the stored type, a file never runs as a page of the node's origin.
SANDBOX = "default-src 'none'; sandbox"


def _tus(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, **(extra or {})}


async def _tus_answer(request: Request, act: Callable[[], Awaitable[Response]]) -> Response:
    """Run a tus endpoint: check the protocol version, and answer errors with tus headers."""
    try:
        if request.headers.get("tus-resumable") != TUS_VERSION:
            raise PreconditionFailed(f"this server speaks Tus-Resumable {TUS_VERSION}")
        return await act()
    except BreakwaterError as error:
        headers = _tus({"Tus-Version": TUS_VERSION})
        if "offset" in error.extra:
            headers["Upload-Offset"] = str(error.extra["offset"])
        return problems.error_response(error, headers=headers)


def _upload_headers(upload: Upload) -> dict[str, str]:
    headers = _tus(
        {
            "Upload-Offset": str(upload.offset),
            "Upload-Expires": formatdate(upload.expires, usegmt=True),
            "Cache-Control": "no-store",
        }
    )
    if upload.sha256:
        headers[FILE_HEADER] = upload.sha256
    return headers


def _number(request: Request, name: str) -> int:
    value = request.headers.get(name)
    if value is None or not is_digits(value) or len(value) > 19:
        raise ValidationError(f"{name} must be a non-negative integer", field=name)
    return int(value)


def _body(request: Request) -> AsyncIterator[bytes | bytearray] | FileBody:
    """The request body; a client that goes away ends it (the bytes so far are kept).

    A tus PATCH body is usually moved from the socket into the file by a thread (ADRs 0055,
    0057), else read through ASGI.
    """
    direct = socket_body_of(request.scope)
    return _asgi_body(request) if direct is None else direct


async def _asgi_body(request: Request) -> AsyncIterator[bytes | bytearray]:
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:
        return


def _check_stream(request: Request) -> None:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != OFFSET_STREAM:
        raise UnsupportedEncoding(f"a PATCH body must be {OFFSET_STREAM}")
    if request.headers.get("content-encoding", "identity").lower() != "identity":
        raise UnsupportedEncoding("send the chunk uncompressed")


@router.options("/v1/uploads", status_code=204, summary="tus capabilities")
async def upload_options(request: Request) -> Response:
    """What this tus server supports (needs no ``Tus-Resumable``)."""
    node = node_of(request)
    return Response(
        status_code=204,
        headers=_tus(
            {
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": TUS_EXTENSIONS,
                "Tus-Max-Size": str(node.config.files_max_size),
                "Tus-Checksum-Algorithm": ",".join(ALGORITHMS),
            }
        ),
    )


@router.post(
    "/v1/uploads",
    status_code=201,
    responses=openapi.UPLOAD_CREATE_RESPONSES,
    summary="Create an upload (tus creation)",
)
async def create_upload(request: Request) -> Response:
    """A new upload of ``Upload-Length`` bytes into the collection named in
    ``Upload-Metadata``; a body of ``application/offset+octet-stream`` is its first chunk."""

    async def act() -> Response:
        node = node_of(request)
        identity = identity_of(request)
        if "upload-defer-length" in request.headers:
            raise ValidationError("Upload-Defer-Length is not supported; send Upload-Length")
        length = _number(request, "upload-length")
        upload = await node.files.create(
            identity, length, request.headers.get("upload-metadata", "")
        )
        if request.headers.get("content-type") and not upload.finished:
            _check_stream(request)
            upload = await node.files.append(
                identity,
                upload.id,
                0,
                _body(request),
                parse_checksum(request.headers.get("upload-checksum")),
            )
        headers = _upload_headers(upload)
        headers["Location"] = f"/v1/uploads/{upload.id}"
        return Response(status_code=201, headers=headers)

    return await _tus_answer(request, act)


@router.head(
    "/v1/uploads/{upload_id}",
    responses=openapi.UPLOAD_RESPONSES,
    summary="Resume: the upload's offset (tus HEAD)",
)
async def upload_status(upload_id: str, request: Request) -> Response:
    """``Upload-Offset`` and ``Upload-Length`` for the upload's creator."""

    async def act() -> Response:
        upload = await node_of(request).files.status(identity_of(request), upload_id)
        headers = _upload_headers(upload)
        headers["Upload-Length"] = str(upload.length)
        if upload.metadata:
            headers["Upload-Metadata"] = upload.metadata
        return Response(status_code=200, headers=headers)

    return await _tus_answer(request, act)


@router.patch(
    "/v1/uploads/{upload_id}",
    status_code=204,
    responses=openapi.UPLOAD_RESPONSES,
    summary="Append a chunk (tus PATCH)",
)
async def append_chunk(upload_id: str, request: Request) -> Response:
    """Append the body at ``Upload-Offset``: 409 at another offset, 460 on a bad
    ``Upload-Checksum``; the last chunk stores the file and names it in ``Breakwater-File``."""

    async def act() -> Response:
        _check_stream(request)
        offset = _number(request, "upload-offset")
        checksum = parse_checksum(request.headers.get("upload-checksum"))
        body = _body(request)
        try:
            upload = await node_of(request).files.append(
                identity_of(request), upload_id, offset, body, checksum
            )
        finally:
            if isinstance(body, SocketBody):
                body.end()
        return Response(status_code=204, headers=_upload_headers(upload))

    return await _tus_answer(request, act)


@router.delete(
    "/v1/uploads/{upload_id}",
    status_code=204,
    responses=openapi.UPLOAD_RESPONSES,
    summary="End an upload (tus)",
)
async def terminate_upload(upload_id: str, request: Request) -> Response:
    """Abandon an unfinished upload and free its space."""

    async def act() -> Response:
        await node_of(request).files.terminate(identity_of(request), upload_id)
        return Response(status_code=204, headers=_tus())

    return await _tus_answer(request, act)


def _none_match(header: str | None, sha256: str) -> bool:
    """True when ``If-None-Match`` is ``*`` or names the file's hash (weak comparison)."""
    if header is None:
        return False
    tags = [part.strip(" \t").removeprefix("W/").strip('"') for part in header.split(",")]
    return "*" in tags or sha256 in tags


def _signature(expires: int | None, signature: str | None) -> tuple[int, str] | None:
    if expires is None and signature is None:
        return None
    if expires is None or signature is None:
        raise ValidationError("a signed URL needs both expires and signature")
    return expires, signature


Doc = Annotated[
    str | None, Query(description="<collection>/<id> of a document that refers to the file")
]
Expires = Annotated[int | None, Query(description="of a signed URL (unix seconds)")]
Signature = Annotated[str | None, Query(description="of a signed URL")]


@router.get("/v1/files/{sha256}", responses=openapi.FILE_RESPONSES, summary="Download a file")
async def download(
    sha256: str,
    request: Request,
    doc: Doc = None,
    expires: Expires = None,
    signature: Signature = None,
) -> Response:
    """The file's bytes; ``Range`` gives 206, ``If-None-Match`` with its hash 304."""
    return await _answer(request, sha256, doc, _signature(expires, signature))


@router.head("/v1/files/{sha256}", responses=openapi.FILE_RESPONSES, summary="A file's headers")
async def download_head(
    sha256: str,
    request: Request,
    doc: Doc = None,
    expires: Expires = None,
    signature: Signature = None,
) -> Response:
    """What ``GET`` would answer, without the bytes."""
    return await _answer(request, sha256, doc, _signature(expires, signature))


async def _answer(
    request: Request, sha256: str, doc: str | None, signed: tuple[int, str] | None
) -> Response:
    node = node_of(request)
    identity = None if signed is not None else identity_of(request)
    grant = await node.files.grant(identity, sha256, doc, signed)
    info = grant.info
    cache = "public" if grant.public else "private"
    headers = {
        "ETag": f'"{info.sha256}"',
        "Cache-Control": f"{cache}, max-age={YEAR}, immutable",
        "Accept-Ranges": "bytes",
        "Content-Security-Policy": SANDBOX,
    }
    if _none_match(request.headers.get("if-none-match"), info.sha256):
        return Response(status_code=304, headers=headers)
    span = parse_range(request.headers.get("range"), info.size)
    if span is not None and request.headers.get("if-range", f'"{info.sha256}"') != (
        f'"{info.sha256}"'
    ):
        span = None  # RFC 9110 §13.1.5: a validator that does not match gets the whole file
    start, end = span if span is not None else (0, info.size)
    status = 200
    if span is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{info.size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=info.content_type)
    return StreamingResponse(
        node.files.blobs.read(info.sha256, start, end),
        status_code=status,
        headers=headers,
        media_type=info.content_type,
    )


@router.post(
    "/v1/files/{sha256}/url",
    responses=openapi.SIGNED_URL_RESPONSES,
    summary="A signed, expiring URL of a file",
)
async def signed_url(
    sha256: str,
    request: Request,
    doc: Annotated[str | None, Query(description="<collection>/<id> referring to it")] = None,
    ttl: Annotated[AsciiFloat | None, Query(description="seconds until it expires")] = None,
) -> Response:
    """For a caller who may download the file: a URL anyone can use until it expires."""
    node = node_of(request)
    url, expiry = await node.files.sign(identity_of(request), sha256, doc, ttl)
    return json_response({"url": url, "expires": expiry})
