"""``POST /v1/sync/push`` and ``GET /v1/sync/pull``: the protocol devices and regions sync with."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from breakwater.auth.policy import Change
from breakwater.core import cursor as cursor_mod
from breakwater.core.errors import ValidationError
from breakwater.core.mutation import check_collection
from breakwater.server import openapi, pushes
from breakwater.server.access import identity_of
from breakwater.server.body import read_json
from breakwater.server.params import AsciiFloat, AsciiInt
from breakwater.server.responses import json_response, node_of
from breakwater.server.wire import change_json
from breakwater.storage.base import FeedPage

router = APIRouter(prefix="/v1/sync", tags=["sync"])


@router.post(
    "/push",
    openapi_extra=openapi.PUSH_BODY,
    responses=openapi.PUSH_RESPONSES,
    summary="Push a batch of mutations",
)
async def push(request: Request) -> Response:
    """Apply mutations once each; every result names the change ``(origin, seq)`` or a problem.

    ``?include_state=true`` adds each applied document's state and ``stable`` (read here, not
    as a declared parameter: :mod:`.direct_routes` calls this endpoint with the request only)."""
    node = node_of(request)
    identity = identity_of(request)
    pushes.admit(node, identity)
    include_state = _flag(request.query_params.get("include_state", "false"), "include_state")
    body = await read_json(request, node.config.limits.max_body_bytes)
    pushed = await pushes.push(node, identity, body)
    status = 200 if pushed.replicated in (None, True) else 202
    return json_response(pushes.full_answer(node, pushed, include_state), status)


def _flag(raw: str, name: str) -> bool:
    """A ``true``/``false`` query parameter; anything else is refused before any write."""
    if raw not in ("true", "false"):
        raise ValidationError(f"{name} must be true or false", field=name)
    return raw == "true"


def parse_collections(raw: str | None) -> list[str] | None:
    """The names of a comma-separated ``collections`` parameter (None: every collection).

    An empty name (``a,,b``, a trailing comma) is refused, not skipped: a caller who meant a
    name there would otherwise get a silently narrower subscription than it asked for.
    """
    if not raw:
        return None
    names = [name.strip(" ") for name in raw.split(",")]
    if len(names) > 64:
        raise ValidationError("at most 64 collections per pull", field="collections")
    if "" in names:
        raise ValidationError("collections has an empty name", field="collections")
    return [check_collection(name) for name in names]


def _shown(page: FeedPage, view: Callable[[Change], Change | None] | None) -> list[Change]:
    """The changes of ``page`` as the caller's view shows them."""
    changes = [change_json(entry) for entry in page.entries]
    if view is None:
        return changes
    return [shown for change in changes if (shown := view(change)) is not None]


@router.get("/pull", responses=openapi.PULL_RESPONSES, summary="Pull changes after a cursor")
async def pull(
    request: Request,
    cursor: Annotated[
        str, Query(description="the cursor of the last pull; empty: from start")
    ] = "",
    collections: Annotated[str | None, Query(description="comma-separated names")] = None,
    limit: Annotated[AsciiInt, Query(description="changes per page")] = 100,
    wait: Annotated[AsciiFloat, Query(description="long-poll seconds when nothing is new")] = 0.0,
    include_state: Annotated[bool, Query(description="add each document's CRDT state")] = False,
) -> Response:
    """Changes not covered by ``cursor``, in commit order, with the cursor to continue from."""
    node = node_of(request)
    identity = identity_of(request)
    node.policy.admit_caller(identity)
    limits = node.config.limits
    if not 1 <= limit <= limits.max_pull_limit:
        raise ValidationError(f"limit must be between 1 and {limits.max_pull_limit}", field="limit")
    if not 0 <= wait <= limits.max_wait_seconds:
        raise ValidationError(
            f"wait must be between 0 and {limits.max_wait_seconds} seconds", field="wait"
        )
    vector = cursor_mod.decode(cursor)
    names = parse_collections(collections)
    for name in names or ():
        node.policy.admit(identity, name, "read")
    view = node.policy.viewer(identity, names)
    deadline = time.monotonic() + wait
    page = await node.store.pull(vector, names, limit, include_state)
    cursor_mod.require_honourable(vector, page.head, node.region.peers)
    changes = _shown(page, view)
    while not changes and not node.draining:
        # Nothing the caller may see yet: wait for the node's feed follower to see a commit
        # past what this pull covered (it hears of local commits at once, through the bus).
        # Changes the caller may not see do not end the wait, so its length tells nothing
        # of them.
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        if not page.has_more and not await node.feed.wait_beyond(page.vector, remaining):
            break
        page = await node.store.pull(page.vector, names, limit, include_state)
        changes = _shown(page, view)
    if node.tracing is not None:
        node.tracing.describe(
            **{
                "breakwater.changes": len(changes),
                "breakwater.has_more": page.has_more,
                "breakwater.waited_s": round(time.monotonic() - deadline + wait, 3),
            }
        )
    return json_response(
        {
            "changes": changes,
            "cursor": cursor_mod.encode(page.vector),
            "has_more": page.has_more,
            # One region: its head. With peers: what every region holds (docs/multi-region.md).
            "stable": node.region.stable_for(page.head),
            "hlc": node.clock.now(),
        }
    )
