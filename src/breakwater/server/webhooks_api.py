"""``/v1/admin/webhooks``: subscriptions, their delivery logs and dead letters, for admins.

Same access as every admin route (an ``admin``-scoped API key or a user with the ``admin``
role; 404 while no admin key exists). A subscription's secret is shown once, in the answer
that creates it; no other answer contains it.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from breakwater.core import codec
from breakwater.core.errors import Conflict, NotFound, ValidationError
from breakwater.server.admin_api import require_admin
from breakwater.server.body import read_json
from breakwater.server.responses import json_response, node_of
from breakwater.server.webhooks.records import Attempt, DeadLetter, Subscription
from breakwater.server.webhooks.store import WebhookStore
from breakwater.server.webhooks.subscriptions import changed, new_subscription

router = APIRouter(tags=["webhooks"])
MAX_LIST = 500
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no credential"},
    403: {"description": "not an admin"},
    404: {"description": "no such subscription (or the console is off)"},
}
_BAD: dict[int | str, dict[str, Any]] = {400: {"description": "bad input"}}
BASE = "/v1/admin/webhooks"


def _shown(subscription: Subscription) -> dict[str, Any]:
    """A subscription as admins see it after its creation: never its secret."""
    return {
        "id": subscription.sub_id,
        "url": subscription.url,
        "collections": list(subscription.collections),
        "operations": list(subscription.operations),
        "description": subscription.description,
        "created_ms": subscription.created_ms,
    }


def _attempt(attempt: Attempt) -> dict[str, Any]:
    return {
        "delivery_id": attempt.delivery_id,
        "attempt": attempt.attempt,
        "outcome": attempt.outcome,
        "status": attempt.status,
        "latency_ms": attempt.latency_ms,
        "error": attempt.error,
        "at_ms": attempt.at_ms,
    }


def _letter(letter: DeadLetter) -> dict[str, Any]:
    return {
        "delivery_id": letter.delivery_id,
        "state": letter.state,
        "attempts": letter.attempts,
        "error": letter.error,
        "at_ms": letter.at_ms,
        "event": codec.loads(letter.payload),
    }


async def _store(request: Request) -> WebhookStore:
    await require_admin(request)
    return node_of(request).webhooks.store


async def _existing(store: WebhookStore, sub_id: str) -> Subscription:
    subscription = await store.subscription(sub_id)
    if subscription is None:
        raise NotFound(f"no webhook subscription {sub_id!r}")
    return subscription


async def _fields(request: Request) -> dict[str, Any]:
    body = await read_json(request, node_of(request).config.limits.max_body_bytes)
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object")
    return body


@router.get(BASE, summary="List webhook subscriptions", responses=_ERRORS)
async def list_subscriptions(request: Request) -> Response:
    """Every subscription, oldest first, with how many dead letters wait (no secrets)."""
    store = await _store(request)
    shown = []
    for subscription in await store.subscriptions():
        dead = await store.count_dead(subscription.sub_id)
        shown.append(_shown(subscription) | {"dead_letters": dead})
    return json_response({"webhooks": shown})


@router.post(
    BASE, summary="Create a webhook subscription", status_code=201, responses=_ERRORS | _BAD
)
async def create_subscription(request: Request) -> Response:
    """``{url, collections?, operations?, description?, id?, secret?}`` → the subscription and
    its signing secret, shown this once. It delivers the changes committed from now on. Give
    the same ``id`` and ``secret`` in every region of a deployment (409 if the id exists)."""
    store = await _store(request)
    node = node_of(request)
    subscription = new_subscription(await _fields(request), int(time.time() * 1000))
    if await store.subscription(subscription.sub_id) is not None:
        raise Conflict(f"webhook subscription {subscription.sub_id!r} exists already")
    await store.add(subscription, await node.store.head())
    body = _shown(subscription) | {"secret": subscription.secret}
    return json_response(body, 201, {"Cache-Control": "no-store"})


@router.get(f"{BASE}/{{sub_id}}", summary="A webhook subscription", responses=_ERRORS)
async def get_subscription(request: Request, sub_id: str) -> Response:
    """One subscription (no secret) and its cursor into the change feed."""
    store = await _store(request)
    subscription = await _existing(store, sub_id)
    return json_response(
        _shown(subscription)
        | {"cursor": await store.cursor(sub_id), "dead_letters": await store.count_dead(sub_id)}
    )


@router.patch(
    f"{BASE}/{{sub_id}}", summary="Change a webhook subscription", responses=_ERRORS | _BAD
)
async def update_subscription(request: Request, sub_id: str) -> Response:
    """Replace any of ``url``, ``collections``, ``operations``, ``description``; the cursor and
    the secret stay."""
    store = await _store(request)
    fields = await _fields(request)
    subscription = changed(await _existing(store, sub_id), fields)
    if not await store.update(subscription):
        raise NotFound(f"no webhook subscription {sub_id!r}")
    return json_response(_shown(subscription))


@router.delete(
    f"{BASE}/{{sub_id}}",
    summary="Remove a webhook subscription",
    status_code=204,
    responses=_ERRORS,
)
async def remove_subscription(request: Request, sub_id: str) -> Response:
    """Stop delivering and forget the subscription, its log and its dead letters."""
    store = await _store(request)
    if not await store.remove(sub_id):
        raise NotFound(f"no webhook subscription {sub_id!r}")
    return Response(status_code=204)


@router.get(f"{BASE}/{{sub_id}}/deliveries", summary="Delivery log", responses=_ERRORS)
async def deliveries(
    request: Request,
    sub_id: str,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 50,
    delivery_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The newest attempts (status code, latency, attempt number, error), newest first."""
    store = await _store(request)
    await _existing(store, sub_id)
    attempts = await store.attempts(sub_id, limit, delivery_id)
    return json_response({"deliveries": [_attempt(a) for a in attempts]})


@router.get(f"{BASE}/{{sub_id}}/dead-letters", summary="Dead letters", responses=_ERRORS)
async def dead_letters(
    request: Request,
    sub_id: str,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 50,
) -> Response:
    """Deliveries that failed every attempt, newest first, with the event they carry."""
    store = await _store(request)
    await _existing(store, sub_id)
    letters = await store.dead_letters(sub_id, limit)
    return json_response({"dead_letters": [_letter(letter) for letter in letters]})


@router.post(
    f"{BASE}/{{sub_id}}/dead-letters/{{delivery_id}}/redeliver",
    summary="Redeliver a dead letter",
    status_code=202,
    responses=_ERRORS,
)
async def redeliver(request: Request, sub_id: str, delivery_id: str) -> Response:
    """Queue a dead letter for delivery again (same body, same idempotency key, attempts
    anew); 404 unless it is dead now."""
    store = await _store(request)
    await _existing(store, sub_id)
    if not await store.queue_redelivery(sub_id, delivery_id):
        raise NotFound(f"no dead letter {delivery_id!r} of {sub_id!r}")
    node_of(request).webhooks.wake()
    return json_response({"delivery_id": delivery_id, "state": "queued"}, 202)
