"""``/v1/auth``: sign-up, sign-in, anonymous accounts, token refresh, sign-out, password change,
email linking, TOTP enrolment, and the account lifecycle (email verification, password reset,
change of email, deletion and export). Responses carrying tokens are never cached."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from breakwater.auth.identity import Identity
from breakwater.auth.service import Session
from breakwater.core.errors import BreakwaterError, Unauthorized, ValidationError
from breakwater.server import openapi
from breakwater.server.access import client_ip, identity_of
from breakwater.server.account_data import account_json, delete_user, export_user
from breakwater.server.body import read_json
from breakwater.server.responses import json_response, node_of

router = APIRouter(prefix="/v1/auth", tags=["auth"])
AUTH_BODY_BYTES = 16 * 1024
ACCEPTED = {"status": "accepted"}
"""The answer of every mailing request: the same whether or not a mail goes out."""


async def _body(request: Request, fields: set[str]) -> dict[str, Any]:
    body = await read_json(request, AUTH_BODY_BYTES)
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object")
    unknown = set(body) - fields
    if unknown:
        raise ValidationError(f"unknown fields: {sorted(unknown)}")
    return body


def _session_body(session: Session) -> dict[str, Any]:
    return {
        "access_token": session.access_token,
        "token_type": "Bearer",
        "expires_in": session.expires_in,
        "refresh_token": session.refresh_token,
        "uid": session.uid,
        "anonymous": session.anonymous,
    }


def _session(session: Session, status: int = 200) -> Response:
    return json_response(_session_body(session), status)


def _caller(request: Request) -> Identity:
    identity = identity_of(request)
    if identity is None:
        raise Unauthorized("this endpoint needs a bearer token")
    return identity


def _count(request: Request, event: str) -> None:
    node_of(request).metrics.auth_events.labels(event).inc()


@router.post(
    "/signup",
    summary="Create an account with email and password",
    openapi_extra=openapi.CREDENTIALS_BODY,
    responses=openapi.SESSION_RESPONSES,
    status_code=201,
)
async def signup(request: Request) -> Response:
    """A new account, signed in (201); 409 ``email_taken`` when the email has an account."""
    body = await _body(request, {"email", "password"})
    node = node_of(request)
    session = await node.auth.signup(body.get("email"), body.get("password"))
    await node.lifecycle.signed_up(session.uid)
    _count(request, "signup")
    return _session(session, 201)


@router.post(
    "/login",
    summary="Sign in with email and password (and a one-time code once MFA is on)",
    openapi_extra=openapi.LOGIN_BODY,
    responses=openapi.SESSION_RESPONSES,
)
async def login(request: Request) -> Response:
    """A session; 401 ``unauthorized`` (``mfa_required: true`` when a code is missing); 429
    while the account's failed sign-ins are limited (server/sign_in_guard.py)."""
    body = await _body(request, {"email", "password", "otp", "recovery_code"})
    node = node_of(request)
    try:
        async with node.sign_in_guard.attempt(
            body.get("email"), client_ip(request.scope, node.limiter.trusted)
        ):
            session = await node.auth.login(
                body.get("email"), body.get("password"), body.get("otp"), body.get("recovery_code")
            )
    except BreakwaterError:
        _count(request, "login_failed")
        raise
    _count(request, "login_ok")
    return _session(session)


@router.post(
    "/anonymous",
    summary="Create an anonymous account",
    responses=openapi.SESSION_RESPONSES,
    status_code=201,
)
async def anonymous(request: Request) -> Response:
    """A new anonymous account, signed in; link an email later to keep its uid and data."""
    session = await node_of(request).auth.anonymous()
    _count(request, "anonymous")
    return _session(session, 201)


@router.post(
    "/refresh",
    summary="Exchange a refresh token for new tokens (rotation)",
    openapi_extra=openapi.REFRESH_BODY,
    responses=openapi.SESSION_RESPONSES,
)
async def refresh(request: Request) -> Response:
    """New access and refresh tokens; the old refresh token is spent (reuse revokes all)."""
    body = await _body(request, {"refresh_token"})
    try:
        session = await node_of(request).auth.refresh(body.get("refresh_token"))
    except BreakwaterError:
        _count(request, "refresh_failed")
        raise
    _count(request, "refresh_ok")
    return _session(session)


@router.post(
    "/logout",
    summary="Sign out: revoke the session of a refresh token",
    openapi_extra=openapi.REFRESH_BODY,
    responses=openapi.LOGOUT_RESPONSES,
    status_code=204,
)
async def logout(request: Request) -> Response:
    """204; access tokens already issued stay valid until they expire (minutes)."""
    body = await _body(request, {"refresh_token"})
    await node_of(request).auth.logout(body.get("refresh_token"))
    _count(request, "logout")
    return Response(status_code=204)


@router.post(
    "/password",
    summary="Change the password (signs out every other session)",
    openapi_extra=openapi.PASSWORD_BODY,
    responses=openapi.SESSION_RESPONSES,
)
async def change_password(request: Request) -> Response:
    """A new session; every refresh token of the account issued before is revoked."""
    caller = _caller(request)
    body = await _body(request, {"current_password", "new_password"})
    session = await node_of(request).auth.change_password(
        caller, body.get("current_password"), body.get("new_password")
    )
    _count(request, "password_changed")
    return _session(session)


@router.post(
    "/link",
    summary="Give an anonymous account an email and password",
    openapi_extra=openapi.CREDENTIALS_BODY,
    responses=openapi.SESSION_RESPONSES,
)
async def link(request: Request) -> Response:
    """The same uid (and so the same documents), now with an email; a new session."""
    caller = _caller(request)
    body = await _body(request, {"email", "password"})
    node = node_of(request)
    session = await node.auth.link(caller, body.get("email"), body.get("password"))
    await node.lifecycle.signed_up(session.uid)
    _count(request, "linked")
    return _session(session)


@router.get("/me", summary="Who the credential stands for", responses=openapi.ME_RESPONSES)
async def me(request: Request) -> Response:
    """The caller's uid, kind, roles, whether it signed in with MFA and whether its token says
    its email is verified."""
    caller = _caller(request)
    return json_response(
        {
            "uid": caller.uid,
            "kind": caller.kind,
            "anonymous": caller.anonymous,
            "roles": list(caller.roles),
            "mfa": caller.mfa,
            "email_verified": caller.email_verified,
        },
    )


@router.post(
    "/mfa/enroll",
    summary="Start TOTP enrolment",
    responses=openapi.ENROL_RESPONSES,
)
async def mfa_enroll(request: Request) -> Response:
    """A TOTP secret and its otpauth:// URI; MFA is on once confirmed with a code."""
    enrolment = await node_of(request).auth.mfa_enroll(_caller(request))
    return json_response({"secret": enrolment.secret, "uri": enrolment.uri})


@router.post(
    "/mfa/confirm",
    summary="Confirm TOTP enrolment with a first code",
    openapi_extra=openapi.CODE_BODY,
    responses=openapi.CONFIRM_RESPONSES,
)
async def mfa_confirm(request: Request) -> Response:
    """MFA is on: ten single-use recovery codes (shown once) and a session signed in with MFA."""
    caller = _caller(request)
    body = await _body(request, {"code"})
    codes, session = await node_of(request).auth.mfa_confirm(caller, body.get("code"))
    _count(request, "mfa_enabled")
    return json_response({"recovery_codes": codes, "session": _session_body(session)})


# account lifecycle -------------------------------------------------------------------------------


@router.post(
    "/email/verify",
    summary="Mail the caller's address a verification link",
    responses=openapi.MAILED_RESPONSES,
    status_code=202,
)
async def request_verification(request: Request) -> Response:
    """202; 403 when there is no email or it is verified already; 503 without SMTP."""
    await node_of(request).lifecycle.request_verification(_caller(request))
    return json_response(ACCEPTED, 202)


@router.post(
    "/email/verify/confirm",
    summary="Verify an email with the mailed token",
    openapi_extra=openapi.TOKEN_BODY,
    responses=openapi.ACCOUNT_RESPONSES,
)
async def confirm_verification(request: Request) -> Response:
    """The account, ``email_verified: true`` (rules see ``auth.email_verified`` from its next
    token); 400 ``token_invalid`` for an unknown, used or expired token."""
    body = await _body(request, {"token"})
    account = await node_of(request).lifecycle.verify_email(body.get("token"))
    _count(request, "email_verified")
    return json_response(account_json(account))


@router.post(
    "/password/reset",
    summary="Mail a password-reset link (the same answer for every address)",
    openapi_extra=openapi.EMAIL_BODY,
    responses=openapi.MAILED_RESPONSES,
    status_code=202,
)
async def request_reset(request: Request) -> Response:
    """202 whether or not the address has an account (no user enumeration)."""
    body = await _body(request, {"email"})
    await node_of(request).lifecycle.request_reset(body.get("email"))
    _count(request, "reset_requested")
    return json_response(ACCEPTED, 202)


@router.post(
    "/password/reset/confirm",
    summary="Set a new password with the mailed token (signs out every session)",
    openapi_extra=openapi.RESET_BODY,
    responses=openapi.DONE_RESPONSES,
    status_code=204,
)
async def confirm_reset(request: Request) -> Response:
    """204: the password is changed and every refresh token of the account is revoked."""
    body = await _body(request, {"token", "new_password"})
    await node_of(request).lifecycle.confirm_reset(body.get("token"), body.get("new_password"))
    _count(request, "password_reset")
    return Response(status_code=204)


@router.post(
    "/email/change",
    summary="Change the email: a confirmation link goes to the new address",
    openapi_extra=openapi.EMAIL_CHANGE_BODY,
    responses=openapi.MAILED_RESPONSES,
    status_code=202,
)
async def request_email_change(request: Request) -> Response:
    """202 after the password is checked again; the old address gets a notice."""
    caller = _caller(request)
    body = await _body(request, {"new_email", "password"})
    await node_of(request).lifecycle.request_email_change(
        caller, body.get("new_email"), body.get("password")
    )
    return json_response(ACCEPTED, 202)


@router.post(
    "/email/change/confirm",
    summary="Confirm the new email with the mailed token",
    openapi_extra=openapi.TOKEN_BODY,
    responses=openapi.ACCOUNT_RESPONSES,
)
async def confirm_email_change(request: Request) -> Response:
    """The account with its new, verified email; 409 ``email_taken`` if taken meanwhile."""
    body = await _body(request, {"token"})
    account = await node_of(request).lifecycle.confirm_email_change(body.get("token"))
    _count(request, "email_changed")
    return json_response(account_json(account))


@router.post(
    "/account/delete",
    summary="Delete the caller's account and the documents it owns",
    openapi_extra=openapi.DELETE_BODY,
    responses=openapi.DONE_RESPONSES,
    status_code=204,
)
async def delete_account(request: Request) -> Response:
    """204 once the documents it owns are deleted and the account erased; the password is asked
    again (anonymous accounts have none). See docs/security.md#account-deletion."""
    caller = _caller(request)
    body = await _body(request, {"password"})
    node = node_of(request)
    account = await node.lifecycle.reauthenticate(caller, body.get("password"))
    await delete_user(node, account.uid)
    _count(request, "account_deleted")
    return Response(status_code=204)


@router.get(
    "/account/export",
    summary="Download the caller's account and documents (GDPR right of access)",
    responses=openapi.EXPORT_RESPONSES,
)
async def export_account(request: Request) -> Response:
    """The account record (no secret) and every document it owns, as a JSON file."""
    caller = _caller(request)
    node = node_of(request)
    account = await node.auth.own_account(caller)
    return export_response(await export_user(node, account))


def export_response(export: dict[str, Any]) -> Response:
    """An export as a JSON file to download."""
    uid = export["account"]["uid"]
    return json_response(
        export,
        200,
        {"Content-Disposition": f'attachment; filename="breakwater-export-{uid}.json"'},
    )


# The same body rules, session answer and counters for the OpenID Connect routes (oidc_api).
read_fields = _body
session_response = _session
caller_of = _caller
count_event = _count
