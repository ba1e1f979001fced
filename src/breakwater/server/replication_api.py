"""The replication endpoint peer regions pull from, and the admin endpoints of replication.

``GET /v1/replication/pull`` answers only an API key with the ``replication`` scope (a peer
region's key): it returns every change past the cursor with the document's full CRDT state, so a
device credential can never read through it. The puller's ``held`` vector (its ``cursor`` when
``held`` is left out, as older peers do) tells this region what the puller durably holds (write
concern ``replicated``, ``stable``); a pull sent before the previous page is applied carries a
``held`` behind its ``cursor`` (ADR 0047). Pages are gzip-compressed when the caller
accepts it, and their bytes are counted before and after.
"""

from __future__ import annotations

import gzip
import json
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response, StreamingResponse

from breakwater.auth.identity import Identity
from breakwater.core import codec
from breakwater.core import cursor as cursor_mod
from breakwater.core.errors import Forbidden, NotFound, Unauthorized, ValidationError
from breakwater.core.incarnation import REGION_PATTERN
from breakwater.core.mutation import COLLECTION_PATTERN
from breakwater.core.topology import MAX_BUCKETS
from breakwater.files.references import is_sha256
from breakwater.replication.anti_entropy import read_bucket, read_digest
from breakwater.replication.files import INFO_HEADER
from breakwater.replication.wire import bucket_json, digest_json, page_json
from breakwater.server import openapi
from breakwater.server.access import identity_of
from breakwater.server.node import Node
from breakwater.server.params import AsciiFloat, AsciiInt
from breakwater.server.responses import json_response, node_of

router = APIRouter(tags=["replication"])
GZIP_LEVEL = 5
"""zlib level 5: within a few percent of level 9's ratio on replication pages at a third of the
CPU (docs/adr/0022-replication.md)."""


def _replicator(request: Request) -> Identity:
    identity = identity_of(request)
    if identity is None:
        raise Unauthorized("the replication endpoints require a replication API key")
    if not identity.is_replicator:
        raise Forbidden("the replication endpoints are for API keys with the replication scope")
    return identity


def _accepts_gzip(request: Request) -> bool:
    accepted = request.headers.get("accept-encoding", "")
    return any(part.split(";")[0].strip() == "gzip" for part in accepted.split(","))


@router.get(
    "/v1/replication/pull",
    summary="Pull changes for a peer region",
    responses=openapi.REPLICATION_RESPONSES,
)
async def replication_pull(
    request: Request,
    cursor: Annotated[str, Query(description="the puller's cursor for this region")] = "",
    limit: Annotated[AsciiInt, Query(description="entries per page")] = 500,
    wait: Annotated[AsciiFloat, Query(description="long-poll seconds when nothing is new")] = 0.0,
    region: Annotated[str | None, Query(description="the pulling region's name")] = None,
    held: Annotated[
        str | None,
        Query(description="what the puller durably holds, when behind its cursor (ADR 0047)"),
    ] = None,
    transfer: Annotated[
        bool, Query(description="a full state transfer continuing past the retention horizon")
    ] = False,
) -> Response:
    """Feed entries past ``cursor`` with full document states, original positions, mutation ids
    and HLCs, and this region's name, state, head and stable vector."""
    _replicator(request)
    node = node_of(request)
    limits = node.config.limits
    if not 1 <= limit <= limits.max_pull_limit:
        raise ValidationError(f"limit must be between 1 and {limits.max_pull_limit}", field="limit")
    if not 0 <= wait <= limits.max_wait_seconds:
        raise ValidationError(
            f"wait must be between 0 and {limits.max_wait_seconds} seconds", field="wait"
        )
    if region is not None and not REGION_PATTERN.fullmatch(region):
        raise ValidationError("region is not a region name", field="region")
    vector = cursor_mod.decode(cursor)
    holds = vector if held is None else _held(held)
    if region is not None:
        if not transfer:
            # Without ``held`` a region pulls only from a cursor it has durably applied, so it
            # holds all of it; with ``held`` the cursor may run ahead of what it has committed
            # (not so a transfer's cursor: a change it covers may come in a later document).
            node.region.record_held(region, holds)
        node.replication.heard_from(region)
    deadline = time.monotonic() + wait
    page = await node.store.pull(vector, None, limit, include_state=True, past_horizon=transfer)
    while not transfer and not page.entries and not page.has_more and not node.draining:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not await node.feed.wait_beyond(page.vector, remaining):
            break
        page = await node.store.pull(page.vector, None, limit, include_state=True)
    body = codec.dumps(
        page_json(
            page,
            region=node.config.region,
            origin=node.store.origin,
            state=node.region.state,
            stable=node.region.stable_for(page.head),
            regions=sorted(node.config.topology.peers),
            webhooks=await node.webhooks.progress(),
            traces=None
            if node.tracing is None
            else node.tracing.traces_of((e.change.origin, e.change.seq) for e in page.entries),
        )
    )
    peer = region if region in node.config.topology.peers else "unknown"
    node.metrics.replication_bytes.labels(peer, "out", "json").inc(len(body))
    headers = {"Vary": "Accept-Encoding"}
    if _accepts_gzip(request):
        body = gzip.compress(body, GZIP_LEVEL)
        headers["Content-Encoding"] = "gzip"
    node.metrics.replication_bytes.labels(peer, "out", "wire").inc(len(body))
    if region is not None and region in node.config.topology.peers:
        node.replication.served(region, len(body))
    return Response(body, media_type="application/json", headers=headers)


def _held(held: str) -> cursor_mod.VersionVector:
    try:
        return cursor_mod.decode(held)
    except ValidationError as exc:
        raise ValidationError("held is not a Breakwater cursor", field="held") from exc


def _buckets(buckets: int) -> int:
    if not 1 <= buckets <= MAX_BUCKETS:
        raise ValidationError(f"buckets must be between 1 and {MAX_BUCKETS}", field="buckets")
    return buckets


@router.get(
    "/v1/replication/digest",
    summary="Anti-entropy digests",
    responses=openapi.REPLICATION_RESPONSES,
)
async def replication_digest(
    request: Request,
    buckets: Annotated[AsciiInt, Query(description="hash buckets per collection")] = 256,
) -> Response:
    """Per collection, a digest of each hash bucket of its live documents' ``(id, version)``,
    and the head they were read at (docs/multi-region.md#anti-entropy)."""
    _replicator(request)
    node = node_of(request)
    _buckets(buckets)
    return json_response(digest_json(await read_digest(node.store, node.config.region, buckets)))


@router.get(
    "/v1/replication/bucket",
    summary="One anti-entropy bucket",
    responses=openapi.REPLICATION_RESPONSES,
)
async def replication_bucket(
    request: Request,
    collection: Annotated[str, Query(description="the collection")],
    bucket: Annotated[AsciiInt, Query(description="the bucket, 0 to buckets - 1")],
    buckets: Annotated[AsciiInt, Query(description="hash buckets per collection")] = 256,
) -> Response:
    """Every document of one bucket, tombstones included, with its full CRDT state, and the
    head read before them."""
    _replicator(request)
    node = node_of(request)
    _buckets(buckets)
    if not COLLECTION_PATTERN.fullmatch(collection):
        raise ValidationError("collection is not a collection name", field="collection")
    if not 0 <= bucket < buckets:
        raise ValidationError(f"bucket must be between 0 and {buckets - 1}", field="bucket")
    listing = await read_bucket(node.store, node.config.region, collection, bucket, buckets)
    return json_response(bucket_json(listing))


@router.get(
    "/v1/replication/files/{sha256}",
    summary="A file's bytes for a peer region",
    responses=openapi.REPLICATION_RESPONSES,
)
async def replication_file(sha256: str, request: Request) -> Response:
    """The stored file ``sha256`` and, in ``Breakwater-File-Info``, its type, collection,
    uploader and creation time; 404 when this node does not hold it (ADR 0042)."""
    _replicator(request)
    node = node_of(request)
    if not is_sha256(sha256):
        raise NotFound("a file is named by its lower-case hex SHA-256")
    info = await node.files.blobs.stat(sha256)
    if info is None:
        raise NotFound(f"file {sha256} is not stored in region {node.config.region}")
    described = {
        "content_type": info.content_type,
        "collection": info.collection,
        "uploader": info.uploader,
        "created": info.created,
    }
    return StreamingResponse(
        node.files.blobs.read(sha256, 0, info.size),
        media_type="application/octet-stream",
        headers={"Content-Length": str(info.size), INFO_HEADER: json.dumps(described)},
    )


def _admin(request: Request, node: Node) -> Identity:
    return node.policy.admit_admin(identity_of(request))


@router.post(
    "/v1/admin/region/promote",
    summary="Promote a standby region",
    responses=openapi.REPLICATION_RESPONSES,
)
async def promote(request: Request) -> Response:
    """Make this region active for every node of it, durably (idempotent)."""
    node = node_of(request)
    _admin(request, node)
    before = await node.region.promote()
    return json_response({"region": node.config.region, "state": "active", "before": before})


@router.get(
    "/v1/admin/replication",
    summary="Replication peers and cursors",
    responses=openapi.REPLICATION_RESPONSES,
)
async def replication_report(request: Request) -> Response:
    """Each peer's state, cursor, caught-up head, lag, breaker, lease holder, repairs and this
    node's bytes in and out; the region's head, stable vector and stable lag."""
    node = node_of(request)
    _admin(request, node)
    return json_response(await node.replication.report())
