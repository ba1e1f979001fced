"""Single-document REST endpoints and queries; writes go through the node's write path."""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from breakwater.auth.identity import Identity
from breakwater.core import codec
from breakwater.core import query as query_mod
from breakwater.core.engine import MutationResult, StoredDoc
from breakwater.core.errors import Forbidden, NotFound, ValidationError
from breakwater.core.mutation import Mutation, check_collection, check_doc_id, check_document
from breakwater.server import openapi
from breakwater.server.access import identity_of
from breakwater.server.body import read_json
from breakwater.server.conditional import if_none_match_hits, parse_if_match
from breakwater.server.node import Node
from breakwater.server.params import AsciiInt
from breakwater.server.queries import query_page
from breakwater.server.responses import json_response, node_of
from breakwater.server.wire import doc_json, etag

router = APIRouter(prefix="/v1/collections/{collection}", tags=["documents"])


IDEMPOTENCY_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.:~-]{1,100}$", re.ASCII)


def _mutation_id(request: Request, collection: str, doc_id: str, identity: Identity | None) -> str:
    """A fresh mutation id, or one derived from ``Idempotency-Key`` and the request's target.

    The key is scoped to caller, method and document, so reusing a key on another document, by
    another user (or a key that equals some pushed mutation id) is a new request, never a
    replay of an unrelated one.
    """
    key = request.headers.get("idempotency-key")
    if key is None:
        return uuid.uuid4().hex
    if not IDEMPOTENCY_KEY_PATTERN.fullmatch(key):
        raise ValidationError(f"Idempotency-Key must match {IDEMPOTENCY_KEY_PATTERN.pattern}")
    caller = "" if identity is None else identity.uid
    target = f"{caller} {request.method} {collection}/{doc_id}".encode()
    return f"{key}.{hashlib.blake2b(target, digest_size=6).hexdigest()}"


def _writing(request: Request, collection: str) -> tuple[Node, Identity | None]:
    """The node and the caller of a write that the policy admits to ``collection``."""
    node = node_of(request)
    identity = identity_of(request)
    node.region.require_writable()  # before anything else: a standby takes no write
    node.policy.admit(identity, check_collection(collection), "write")
    return node, identity


def _write_concern(request: Request) -> str:
    """The ``Write-Concern`` header (or ``write_concern`` parameter): local or replicated."""
    value = request.headers.get("write-concern") or request.query_params.get("write_concern")
    concern = (value or "local").strip().lower()
    if concern not in ("local", "replicated"):
        raise ValidationError("Write-Concern must be local or replicated", field="write_concern")
    return concern


def _readable(node: Node, identity: Identity | None, doc: StoredDoc) -> bool:
    return doc.data is not None and node.policy.may_read(identity, doc.collection, doc.data)


async def _write(
    node: Node, mutation: Mutation, identity: Identity | None, concern: str = "local"
) -> Response:
    mutation = node.writes.admit(identity, mutation)
    [result] = await node.writes.apply([mutation], "rest")
    if concern == "replicated" and result.status != "rejected":
        held = await node.writes.replicated([result], node.config.topology.write_concern_timeout)
        response = await _written(node, mutation, identity, result)
        response.headers["Replicated"] = "true" if held else "false"
        if not held:
            response.status_code = 202
        return response
    return await _written(node, mutation, identity, result)


async def _written(
    node: Node, mutation: Mutation, identity: Identity | None, result: MutationResult
) -> Response:
    if result.status == "rejected":
        assert result.error is not None
        raise result.error
    if result.status == "duplicate":
        return await _replayed(node, mutation, identity)
    assert result.doc is not None
    status = 201 if result.created and mutation.op != "delete" else 200
    headers = {"ETag": etag(result.doc.version)}
    if not result.doc.deleted and not _readable(node, identity, result.doc):
        return Response(status_code=204, headers=headers)
    return json_response(doc_json(result.doc), status, headers)


async def _replayed(node: Node, mutation: Mutation, identity: Identity | None) -> Response:
    """A retried request (same Idempotency-Key): the current document, marked as a replay."""
    doc = await node.store.get(mutation.collection, mutation.doc_id)
    if doc is None:
        raise NotFound(f"document {mutation.collection}/{mutation.doc_id} does not exist")
    headers = {"ETag": etag(doc.version), "Idempotent-Replayed": "true"}
    if not doc.deleted and not _readable(node, identity, doc):
        return Response(status_code=204, headers=headers)
    return json_response(doc_json(doc), 200, headers)


@router.get("/docs/{doc_id}", responses=openapi.DOC_RESPONSES, summary="Read one document")
async def get_document(collection: str, doc_id: str, request: Request) -> Response:
    """The live document with its version as ``ETag``; ``If-None-Match`` gives 304."""
    node = node_of(request)
    identity = identity_of(request)
    node.policy.admit(identity, check_collection(collection), "read")
    doc_id = check_doc_id(doc_id)
    # The cache holds the store's answer, the same for every caller; the read rule is applied
    # to it on every request.
    doc = await node.cache.document(collection, doc_id, lambda: node.store.get(collection, doc_id))
    if doc is None:
        raise NotFound(f"document {collection}/{doc_id} does not exist")
    reader = node.policy.reader(identity, collection)
    filters = node.policy.filters_reads(identity, collection)
    if not reader(codec.loads(doc.body)["data"] if filters else {}):
        node.metrics.access_denied.labels("rest").inc()
        raise Forbidden(f"the collection's read rule refuses {collection}/{doc_id}")
    tag = etag(doc.version)
    if if_none_match_hits(request.headers.get("if-none-match"), doc.version):
        return Response(status_code=304, headers={"ETag": tag})
    return Response(doc.body, media_type="application/json", headers={"ETag": tag})


@router.put(
    "/docs/{doc_id}",
    responses=openapi.DOC_RESPONSES,
    openapi_extra=openapi.DOCUMENT_BODY,
    summary="Create or replace a document",
)
async def put_document(collection: str, doc_id: str, request: Request) -> Response:
    """Replace the whole document (``set``). 201 when it did not exist."""
    node, identity = _writing(request, collection)
    mutation = Mutation(
        mutation_id=_mutation_id(request, collection, doc_id, identity),
        collection=check_collection(collection),
        doc_id=check_doc_id(doc_id),
        op="set",
        data=check_document(
            await read_json(request, node.config.limits.max_body_bytes), node.config.limits
        ),
        if_match=parse_if_match(request.headers.get("if-match")),
    )
    return await _write(node, mutation, identity, _write_concern(request))


@router.patch(
    "/docs/{doc_id}",
    responses=openapi.DOC_RESPONSES,
    openapi_extra=openapi.DOCUMENT_BODY,
    summary="Update fields of a document",
)
async def patch_document(collection: str, doc_id: str, request: Request) -> Response:
    """Set the given top-level fields; ``null`` removes a field. 404 if the document is absent."""
    node, identity = _writing(request, collection)
    mutation = Mutation(
        mutation_id=_mutation_id(request, collection, doc_id, identity),
        collection=check_collection(collection),
        doc_id=check_doc_id(doc_id),
        op="patch",
        data=check_document(
            await read_json(request, node.config.limits.max_body_bytes), node.config.limits
        ),
        if_match=parse_if_match(request.headers.get("if-match")),
        must_exist=True,
    )
    return await _write(node, mutation, identity, _write_concern(request))


@router.delete("/docs/{doc_id}", responses=openapi.DOC_RESPONSES, summary="Delete a document")
async def delete_document(collection: str, doc_id: str, request: Request) -> Response:
    """Leave a tombstone (synced to every replica). 404 if the document is absent."""
    node, identity = _writing(request, collection)
    mutation = Mutation(
        mutation_id=_mutation_id(request, collection, doc_id, identity),
        collection=check_collection(collection),
        doc_id=check_doc_id(doc_id),
        op="delete",
        data=None,
        if_match=parse_if_match(request.headers.get("if-match")),
        must_exist=True,
    )
    return await _write(node, mutation, identity, _write_concern(request))


@router.get("/docs", responses=openapi.QUERY_RESPONSES, summary="Query documents")
async def query_documents(
    collection: str,
    request: Request,
    where: Annotated[list[str], Query(description="FIELD:OP:VALUE, repeatable")] = [],  # noqa: B006
    order: Annotated[str | None, Query(description="FIELD or -FIELD (descending)")] = None,
    limit: Annotated[AsciiInt, Query(description="page size")] = 100,
    after: Annotated[str | None, Query(description="the `next` token of the last page")] = None,
) -> Response:
    """Live documents matching every filter, in ``order`` then id, one keyset page; documents
    the read rule refuses take no part in it."""
    node = node_of(request)
    identity = identity_of(request)
    node.policy.admit(identity, check_collection(collection), "read")
    parsed = query_mod.parse_query(
        collection, where, order, limit, after, node.config.limits.max_query_limit
    )
    return Response(await query_page(node, identity, parsed), media_type="application/json")
