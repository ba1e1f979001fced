"""OpenAPI fragments for routes that read raw bodies (they parse with orjson, not pydantic)."""

from __future__ import annotations

from typing import Any

_PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "examples": ["validation_error"]},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
    "additionalProperties": True,
}
_PROBLEM_CONTENT = {"application/problem+json": {"schema": _PROBLEM}}
_DOCUMENT = {"type": "object", "additionalProperties": True, "examples": [{"title": "Milk"}]}
_ENVELOPE = {
    "type": "object",
    "required": ["collection", "id", "version", "hlc", "origin", "seq", "deleted", "data"],
    "properties": {
        "collection": {"type": "string"},
        "id": {"type": "string"},
        "version": {"type": "string"},
        "hlc": {"type": "string"},
        "origin": {"type": "string"},
        "seq": {"type": "integer"},
        "deleted": {"type": "boolean"},
        "data": {"anyOf": [_DOCUMENT, {"type": "null"}]},
    },
}
_MUTATION = {
    "type": "object",
    "required": ["mutation_id", "collection", "id", "op"],
    "properties": {
        "mutation_id": {"type": "string", "pattern": "^[A-Za-z0-9_.:~-]{1,128}$"},
        "collection": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,63}$"},
        "id": {"type": "string"},
        "op": {"type": "string", "enum": ["set", "patch", "delete", "increment"]},
        "data": {"anyOf": [_DOCUMENT, {"type": "null"}]},
        "hlc": {"type": "string"},
        "if_match": {"type": "string"},
    },
    "additionalProperties": False,
}
_RESULT = {
    "type": "object",
    "required": ["mutation_id", "status"],
    "properties": {
        "mutation_id": {"type": "string"},
        "status": {"type": "string", "enum": ["applied", "duplicate", "rejected"]},
        "origin": {"type": "string"},
        "seq": {"type": "integer"},
        "version": {"type": "string"},
        "hlc": {"type": "string"},
        "conflict": {"type": "array", "items": {"type": "string"}},
        "error": _PROBLEM,
        "state": {"type": "object"},
    },
}
_CHANGE = {
    "type": "object",
    "required": [
        "origin",
        "seq",
        "collection",
        "id",
        "op",
        "mutation_id",
        "hlc",
        "deleted",
        "version",
        "data",
    ],
    "properties": {
        **{
            k: {"type": "string"}
            for k in ("origin", "collection", "id", "mutation_id", "hlc", "version")
        },
        "seq": {"type": "integer"},
        "op": {"type": "string", "enum": ["set", "patch", "delete", "increment", "remove"]},
        "deleted": {"type": "boolean"},
        "data": {"anyOf": [_DOCUMENT, {"type": "null"}]},
        "state": {"type": "object"},
    },
}
_VECTOR = {"type": "object", "additionalProperties": {"type": "integer"}}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"description": "problem+json", "content": _PROBLEM_CONTENT} for code in codes}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


DOCUMENT_BODY: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": _DOCUMENT}}}
}
REPLICATION_RESPONSES: dict[int | str, dict[str, Any]] = _errors(400, 401, 403, 404, 410, 429, 503)
"""Peer regions' routes and their admin views (server/replication_api.py)."""
DOC_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _json("the document", _ENVELOPE),
    201: _json("the document, created", _ENVELOPE),
    304: {"description": "not modified (If-None-Match)"},
    204: {"description": "written, but the caller may not read the result"},
    **_errors(400, 401, 403, 404, 412, 413, 415, 422, 429, 503),
}
QUERY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _json(
        "one page of documents",
        {
            "type": "object",
            "required": ["docs", "next"],
            "properties": {
                "docs": {"type": "array", "items": _ENVELOPE},
                "next": {"type": ["string", "null"]},
            },
        },
    ),
    **_errors(400, 401, 403, 429, 503),
}
PUSH_BODY: dict[str, Any] = {
    "parameters": [
        {
            "name": "include_state",
            "in": "query",
            "required": False,
            "description": "add each applied document's CRDT state, and stable",
            "schema": {"type": "string", "enum": ["true", "false"]},
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["mutations"],
                    "properties": {
                        "client_id": {"type": "string"},
                        "mutations": {"type": "array", "items": _MUTATION, "minItems": 1},
                    },
                    "additionalProperties": False,
                }
            }
        },
    },
}
PUSH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _json(
        "one result per mutation, in order",
        {
            "type": "object",
            "required": ["results", "hlc"],
            "properties": {
                "results": {"type": "array", "items": _RESULT},
                "hlc": {"type": "string"},
                "stable": {"type": "object", "additionalProperties": {"type": "integer"}},
            },
        },
    ),
    **_errors(400, 401, 403, 413, 415, 429, 503),
}
PULL_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _json(
        "changes after the cursor",
        {
            "type": "object",
            "required": ["changes", "cursor", "has_more", "stable", "hlc"],
            "properties": {
                "changes": {"type": "array", "items": _CHANGE},
                "cursor": {"type": "string"},
                "has_more": {"type": "boolean"},
                "stable": _VECTOR,
                "hlc": {"type": "string"},
            },
        },
    ),
    **_errors(400, 401, 403, 410, 429, 503),
}
SSE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "an endless text/event-stream: `changes` events (id: the cursor; data: a changes"
            " message), `error` and `reconnect` events, and `: keep-alive` comments"
        ),
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    **_errors(400, 401, 403, 410, 429, 503),
}


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": False,
    }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_STRING = {"type": "string"}
_SESSION = {
    "type": "object",
    "required": ["access_token", "token_type", "expires_in", "refresh_token", "uid", "anonymous"],
    "properties": {
        "access_token": _STRING,
        "token_type": {"type": "string", "enum": ["Bearer"]},
        "expires_in": {"type": "integer"},
        "refresh_token": _STRING,
        "uid": _STRING,
        "anonymous": {"type": "boolean"},
    },
}
CREDENTIALS_BODY = _body({"email": _STRING, "password": _STRING}, ["email", "password"])
LOGIN_BODY = _body(
    {"email": _STRING, "password": _STRING, "otp": _STRING, "recovery_code": _STRING},
    ["email", "password"],
)
REFRESH_BODY = _body({"refresh_token": _STRING}, ["refresh_token"])
PASSWORD_BODY = _body(
    {"current_password": _STRING, "new_password": _STRING}, ["current_password", "new_password"]
)
CODE_BODY = _body({"code": _STRING}, ["code"])
EMAIL_BODY = _body({"email": _STRING}, ["email"])
TOKEN_BODY = _body({"token": _STRING}, ["token"])
RESET_BODY = _body({"token": _STRING, "new_password": _STRING}, ["token", "new_password"])
EMAIL_CHANGE_BODY = _body({"new_email": _STRING, "password": _STRING}, ["new_email", "password"])
DELETE_BODY = _body({"password": _STRING}, [])
_ACCOUNT = {
    "type": "object",
    "required": ["uid", "email", "email_verified", "anonymous", "roles", "mfa", "disabled"],
    "properties": {
        "uid": _STRING,
        "email": {"type": ["string", "null"]},
        "email_verified": {"type": "boolean"},
        "anonymous": {"type": "boolean"},
        "roles": {"type": "array", "items": _STRING},
        "mfa": {"type": "boolean"},
        "disabled": {"type": "boolean"},
        "created_ms": {"type": "integer"},
    },
}
MAILED_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: _json(
        "accepted: a mail goes out when the request is valid (the same answer either way)",
        {"type": "object", "required": ["status"], "properties": {"status": _STRING}},
    ),
    **_errors(400, 401, 403, 404, 413, 415, 429, 503),
}
ACCOUNT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _json("the account", _ACCOUNT),
    **_errors(400, 401, 403, 409, 413, 415, 429, 503),
}
DONE_RESPONSES: dict[int | str, dict[str, Any]] = {
    204: {"description": "done"},
    **_errors(400, 401, 403, 404, 413, 415, 429, 503),
}
EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _json(
        "the account and every document it owns (a file to download)",
        {
            "type": "object",
            "required": ["format", "account", "collections"],
            "properties": {
                "format": _STRING,
                "account": _ACCOUNT,
                "collections": {"type": "object"},
            },
        },
    ),
    **_errors(401, 403, 429, 503),
}
SESSION_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _json("a signed-in session", _SESSION),
    201: _json("a new account, signed in", _SESSION),
    **_errors(400, 401, 403, 409, 413, 415, 429, 503),
}
LOGOUT_RESPONSES: dict[int | str, dict[str, Any]] = {
    204: {"description": "the session is revoked"},
    **_errors(400, 413, 415, 429, 503),
}
ENROL_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _json(
        "the TOTP secret (shown once) and its otpauth:// URI",
        {
            "type": "object",
            "required": ["secret", "uri"],
            "properties": {"secret": _STRING, "uri": _STRING},
        },
    ),
    **_errors(400, 401, 403, 429, 503),
}
CONFIRM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _json(
        "MFA is on: recovery codes (shown once) and a session signed in with MFA",
        {
            "type": "object",
            "required": ["recovery_codes", "session"],
            "properties": {
                "recovery_codes": {"type": "array", "items": _STRING},
                "session": _SESSION,
            },
        },
    ),
    **_errors(400, 401, 403, 413, 415, 429, 503),
}
ME_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _json(
        "the caller",
        {
            "type": "object",
            "required": ["uid", "kind", "anonymous", "roles", "mfa"],
            "properties": {
                "uid": _STRING,
                "kind": {"type": "string", "enum": ["user", "key"]},
                "anonymous": {"type": "boolean"},
                "roles": {"type": "array", "items": _STRING},
                "mfa": {"type": "boolean"},
                "email_verified": {"type": "boolean"},
            },
        },
    ),
    **_errors(401, 429),
}
OIDC_START_BODY = _body(
    {"redirect_uri": _STRING, "code_challenge": _STRING}, ["redirect_uri", "code_challenge"]
)
OIDC_CALLBACK_BODY = _body(
    {
        "state": _STRING,
        "code": _STRING,
        "code_verifier": _STRING,
        "redirect_uri": _STRING,
        "otp": _STRING,
        "recovery_code": _STRING,
        "iss": _STRING,
    },
    ["state", "code", "code_verifier", "redirect_uri"],
)
OIDC_START_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _json(
        "the provider's authorize URL to open in the system browser, and the state it carries",
        {
            "type": "object",
            "required": ["authorize_url", "state", "expires_in"],
            "properties": {
                "authorize_url": _STRING,
                "state": _STRING,
                "expires_in": {"type": "integer"},
            },
        },
    ),
    **_errors(400, 404, 413, 415, 429, 503),
}
OIDC_SESSION_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _json("a signed-in session", _SESSION),
    **_errors(400, 401, 404, 409, 413, 415, 429, 503),
}
_IDENTITIES = {
    "type": "object",
    "required": ["identities"],
    "properties": {
        "identities": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["provider", "sub"],
                "properties": {"provider": _STRING, "sub": _STRING},
            },
        }
    },
}
OIDC_IDENTITIES_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _json("the OpenID Connect identities linked to the account", _IDENTITIES),
    **_errors(400, 401, 403, 404, 409, 413, 415, 429, 503),
}
_TUS_ERRORS = _errors(400, 401, 403, 404, 409, 412, 413, 415, 423, 429, 460, 503)
UPLOAD_CREATE_RESPONSES: dict[int | str, dict[str, Any]] = {
    201: {"description": "created: Location, Upload-Offset, Upload-Expires"},
    **_TUS_ERRORS,
}
UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the upload: Upload-Offset, Upload-Length (HEAD)"},
    204: {"description": "appended or ended: Upload-Offset; Breakwater-File once complete"},
    **_TUS_ERRORS,
}
FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the file's bytes"},
    206: {"description": "the requested range (Content-Range)"},
    304: {"description": "not modified (If-None-Match with the hash)"},
    **_errors(400, 401, 403, 404, 416, 429, 503),
}
SIGNED_URL_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _json(
        "a signed URL and its expiry",
        {
            "type": "object",
            "required": ["url", "expires"],
            "properties": {"url": {"type": "string"}, "expires": {"type": "integer"}},
        },
    ),
    **_errors(400, 401, 403, 404, 429, 503),
}
