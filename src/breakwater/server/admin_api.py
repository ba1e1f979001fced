"""The admin console (``GET /_/``) and the admin endpoints under ``/v1/admin/`` it reads.

For admins only: an API key with the ``admin`` scope or a user with the ``admin`` role
(401 without a credential, 403 for anyone else). On a node where no live admin key exists
all of it answers 404: the console is off. Documents are browsed and edited through the
ordinary document endpoints with the admin's own credential, so the same access checks,
cache invalidation and metrics apply as for any caller; these routes add only what those
endpoints do not answer.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import HTMLResponse, Response

from breakwater.auth.identity import Identity
from breakwater.auth.records import ApiKey
from breakwater.auth.rule_tester import evaluate_rule
from breakwater.core.errors import NotFound, ValidationError
from breakwater.core.mutation import check_collection
from breakwater.server.access import identity_of
from breakwater.server.account_data import account_json, delete_user, disable_user, export_user
from breakwater.server.auth_api import export_response
from breakwater.server.body import read_json
from breakwater.server.readiness import check
from breakwater.server.responses import json_response, node_of

router = APIRouter(tags=["admin"])
MAX_ACCOUNTS = 200
MAX_CONFLICTS = 500
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no credential"},
    403: {"description": "not an admin"},
    404: {"description": "the console is off: no admin API key exists"},
}


@cache
def _page() -> str:
    return resources.files("breakwater.server").joinpath("static/console.html").read_text("utf-8")


async def _console_on(request: Request) -> None:
    if not await node_of(request).auth.admin_configured():
        raise NotFound("the admin console is off: create an API key with the admin scope")


async def _admin(request: Request) -> Identity:
    await _console_on(request)
    return node_of(request).policy.admit_admin(identity_of(request))


require_admin = _admin
"""For admin routes of other modules (webhooks): the same 404, 401 and 403 as these."""


@router.get("/_/", summary="Admin console", response_class=HTMLResponse, responses=_ERRORS)
async def console(request: Request) -> Response:
    """The console's page; it asks for an admin API key and reads the endpoints below."""
    await _console_on(request)
    return HTMLResponse(_page(), headers={"Cache-Control": "no-cache"})


@router.get("/v1/admin/overview", summary="Region, collections and rules", responses=_ERRORS)
async def overview(request: Request) -> Response:
    """This node's region and its health, its peers and state, auth mode, and each known
    collection with its merge policy and rules."""
    await _admin(request)
    node = node_of(request)
    readiness = await check(node)
    region = node.config.region
    names = sorted(set(node.engine.collections) | set(node.policy.rules))
    collections = []
    for name in names:
        rules = node.policy.rules.get(name)
        collections.append(
            {
                "name": name,
                "conflict": node.engine.collection(name).conflict,
                "rules": {
                    "read": rules.read.source if rules and rules.read else None,
                    "write": rules.write.source if rules and rules.write else None,
                    "owner": rules.owner_field if rules else None,
                },
            }
        )
    body = {
        "region": region,
        "node": node.clock.node,
        "auth_mode": node.policy.mode,
        "regions": [{"name": region, "local": True, "state": node.health_history.overall.label}],
        "replication": {
            "peers": sorted(node.config.topology.peers),
            "built": True,
            "state": node.region.state,
        },
        "checks": readiness.checks,
        "collections": collections,
    }
    return json_response(body)


@router.post(
    "/v1/admin/collections/{collection}/rules/test",
    summary="Evaluate a collection's rule for a given caller and document",
    responses=_ERRORS | {400: {"description": "bad input"}},
)
async def rule_test(request: Request, collection: str) -> Response:
    """``{action, auth, doc, before?, op?}`` → ``{allowed, rule, reason}``; nothing is written."""
    await _admin(request)
    node = node_of(request)
    name = check_collection(collection)
    body = await read_json(request, node.config.limits.max_body_bytes)
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object")
    verdict = evaluate_rule(node.policy, name, body.get("action"), body)
    return json_response(
        {"allowed": verdict.allowed, "rule": verdict.rule, "reason": verdict.reason}
    )


def _key(key: ApiKey) -> dict[str, Any]:
    """A key as the console lists it: never its secret or hash."""
    return {
        "key_id": key.key_id,
        "name": key.name,
        "scopes": sorted(key.scopes),
        "created_ms": key.created_ms,
        "revoked_ms": key.revoked_ms,
    }


@router.get("/v1/admin/keys", summary="List API keys", responses=_ERRORS)
async def list_keys(request: Request) -> Response:
    """Every API key, revoked ones included (id, name, scopes, times; no secret)."""
    await _admin(request)
    return json_response({"keys": [_key(key) for key in await node_of(request).auth.list_keys()]})


@router.post(
    "/v1/admin/keys",
    summary="Create an API key",
    status_code=201,
    responses=_ERRORS | {400: {"description": "bad input"}},
)
async def create_key(request: Request) -> Response:
    """``{name, scopes}`` → the key, shown this once, and its record."""
    await _admin(request)
    node = node_of(request)
    body = await read_json(request, node.config.limits.max_body_bytes)
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object")
    secret, record = await node.auth.issue_key(body.get("name"), body.get("scopes"))
    return json_response({"key": secret} | _key(record), 201, {"Cache-Control": "no-store"})


@router.delete(
    "/v1/admin/keys/{key_id}", summary="Revoke an API key", status_code=204, responses=_ERRORS
)
async def revoke_key(request: Request, key_id: str) -> Response:
    """Revoke a live key: nodes refuse it from their next request on; 404 if none is live.
    Revoking the last admin key turns the console off."""
    await _admin(request)
    await node_of(request).auth.revoke_key(key_id)
    return Response(status_code=204)


@router.get("/v1/admin/accounts", summary="Find accounts", responses=_ERRORS)
async def find_accounts(
    request: Request,
    q: Annotated[str, Query(max_length=320, description="a uid, or an email's start")] = "",
    limit: Annotated[int, Query(ge=1, le=MAX_ACCOUNTS)] = 50,
) -> Response:
    """Accounts whose uid is ``q`` or whose email starts with it (all with an email when empty)."""
    await _admin(request)
    accounts = await node_of(request).auth.find_accounts(q, limit)
    return json_response({"accounts": [account_json(account) for account in accounts]})


@router.put(
    "/v1/admin/accounts/{uid}/roles",
    summary="Set an account's roles",
    responses=_ERRORS | {400: {"description": "bad input"}},
)
async def set_roles(request: Request, uid: str) -> Response:
    """``{roles: [...]}`` replaces the roles; they reach the account's tokens at its next
    sign-in or refresh."""
    await _admin(request)
    node = node_of(request)
    body = await read_json(request, node.config.limits.max_body_bytes)
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object")
    return json_response(account_json(await node.auth.set_roles(uid, body.get("roles"))))


@router.post("/v1/admin/accounts/{uid}/disable", summary="Disable an account", responses=_ERRORS)
async def disable_account(request: Request, uid: str) -> Response:
    """Its sessions end and its tokens are refused at once (on other nodes within seconds);
    sign-in answers 403 ``account_disabled``. Its data stays."""
    await _admin(request)
    return json_response(account_json(await disable_user(node_of(request), uid)))


@router.post("/v1/admin/accounts/{uid}/enable", summary="Re-enable an account", responses=_ERRORS)
async def enable_account(request: Request, uid: str) -> Response:
    """The account may sign in again (its old sessions stay ended)."""
    await _admin(request)
    return json_response(account_json(await node_of(request).auth.set_disabled(uid, False)))


@router.get(
    "/v1/admin/accounts/{uid}/export", summary="Export an account's data", responses=_ERRORS
)
async def export_account(request: Request, uid: str) -> Response:
    """The account record (no secret) and every document it owns, as a JSON file."""
    await _admin(request)
    node = node_of(request)
    return export_response(await export_user(node, await node.auth.account(uid)))


@router.delete(
    "/v1/admin/accounts/{uid}", summary="Delete an account", status_code=204, responses=_ERRORS
)
async def delete_account(request: Request, uid: str) -> Response:
    """Delete the documents the account owns and erase the account (docs/security.md#account-
    deletion); 404 when there is no such account."""
    await _admin(request)
    await delete_user(node_of(request), uid)
    return Response(status_code=204)


@router.get("/v1/admin/conflicts", summary="Recent merge conflicts", responses=_ERRORS)
async def conflicts(
    request: Request,
    collection: Annotated[str | None, Query(description="only this collection's")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_CONFLICTS)] = 50,
) -> Response:
    """The most recent merges in which fields of a concurrent write lost, newest first."""
    await _admin(request)
    name = None if collection is None else check_collection(collection)
    recorded = await node_of(request).store.conflicts(limit, name)
    return json_response({"conflicts": [dataclasses.asdict(c) for c in recorded]})
