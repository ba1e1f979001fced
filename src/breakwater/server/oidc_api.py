"""``/v1/auth/oidc``: sign in with an OpenID Connect provider (authorization code + PKCE, as
native apps do it), and link a provider to the signed-in account. See auth/oidc_sign_in.py."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from breakwater.auth.oidc_sign_in import Callback
from breakwater.auth.records import LinkedIdentity
from breakwater.core.errors import BreakwaterError
from breakwater.server import openapi
from breakwater.server.auth_api import caller_of, count_event, read_fields, session_response
from breakwater.server.responses import json_response, node_of

router = APIRouter(prefix="/v1/auth/oidc", tags=["auth"])
CALLBACK_FIELDS = {"state", "code", "code_verifier", "redirect_uri", "otp", "recovery_code", "iss"}


def _identities(linked: list[LinkedIdentity]) -> Response:
    return json_response({"identities": [{"provider": i.provider, "sub": i.sub} for i in linked]})


@router.post(
    "/{provider}/start",
    summary="Start a sign-in with an OpenID Connect provider",
    openapi_extra=openapi.OIDC_START_BODY,
    responses=openapi.OIDC_START_RESPONSES,
)
async def start(provider: str, request: Request) -> Response:
    """The provider's authorize URL (with state, nonce and the app's PKCE challenge)."""
    body = await read_fields(request, {"redirect_uri", "code_challenge"})
    started = await node_of(request).oidc.start(
        provider, body.get("redirect_uri"), body.get("code_challenge")
    )
    return json_response(
        {
            "authorize_url": started.authorize_url,
            "state": started.state,
            "expires_in": started.expires_in,
        }
    )


@router.post(
    "/{provider}/callback",
    summary="Finish a sign-in: exchange the code (with the PKCE verifier) for a session",
    openapi_extra=openapi.OIDC_CALLBACK_BODY,
    responses=openapi.OIDC_SESSION_RESPONSES,
)
async def callback(provider: str, request: Request) -> Response:
    """A session for the account linked to the provider's user (created on first sign-in);
    401 for a spent or unknown state, a refused code or a bad ID token; 409 ``account_exists``
    when the email has an account that may not be linked automatically."""
    body = await read_fields(request, CALLBACK_FIELDS)
    try:
        session = await node_of(request).oidc.finish(Callback.of(provider, body))
    except BreakwaterError:
        count_event(request, "oidc_failed")
        raise
    count_event(request, "oidc_ok")
    return session_response(session)


@router.post(
    "/{provider}/link",
    summary="Link an OpenID Connect provider to the signed-in account",
    openapi_extra=openapi.OIDC_CALLBACK_BODY,
    responses=openapi.OIDC_IDENTITIES_RESPONSES,
)
async def link(provider: str, request: Request) -> Response:
    """The account's linked identities; 409 ``identity_taken`` when another account has it."""
    caller = caller_of(request)
    body = await read_fields(request, CALLBACK_FIELDS)
    linked = await node_of(request).oidc.link(caller, Callback.of(provider, body))
    count_event(request, "oidc_linked")
    return _identities(linked)


@router.get(
    "/identities",
    summary="The OpenID Connect identities linked to the signed-in account",
    responses=openapi.OIDC_IDENTITIES_RESPONSES,
)
async def identities(request: Request) -> Response:
    """Which providers the caller can sign in with."""
    return _identities(await node_of(request).oidc.identities(caller_of(request)))
