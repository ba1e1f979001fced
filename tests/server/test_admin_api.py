"""The admin endpoints and the console page: admins only, off without an admin key, bad input
refused with problem+json."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest

from tests.auth.conftest import FAST_HASH, sign_up

CONFIG = (
    FAST_HASH
    + """mode = "enforce"

[collections.notes]
conflict = "document"

[collections.notes.rules]
read = "auth != null && doc.owner == auth.uid"
write = "auth != null && (doc.owner == auth.uid || 'editor' in auth.roles) && op != 'delete'"
"""
)
OVERVIEW = "/v1/admin/overview"
RULE_TEST = "/v1/admin/collections/notes/rules/test"


@dataclass
class Admin:
    """A node in enforce mode with an admin key, a plain key, an admin user and a plain user."""

    client: httpx.AsyncClient
    headers: dict[str, dict[str, str]] = field(default_factory=dict)


async def _bearer(client: httpx.AsyncClient, email: str, roles: tuple[str, ...]) -> str:
    user = await sign_up(client, email)
    store = client.app.state.node.auth_store  # type: ignore[attr-defined]
    store.update_account(replace(store.account(user.uid), roles=roles))
    login = await client.post("/v1/auth/login", json={"email": email, "password": "correct horse"})
    return f"Bearer {login.json()['access_token']}"


@pytest.fixture
async def admin(make_client: Callable[..., Any]) -> Admin:
    """The node and a header per caller."""
    client: httpx.AsyncClient = await make_client(CONFIG)
    auth = client.app.state.node.auth  # type: ignore[attr-defined]
    return Admin(
        client,
        {
            "admin key": {"Authorization": f"ApiKey {auth.create_key('ops', ['admin'])[0]}"},
            "read key": {"Authorization": f"ApiKey {auth.create_key('r', ['read:*'])[0]}"},
            "admin user": {"Authorization": await _bearer(client, "a@example.com", ("admin",))},
            "plain user": {"Authorization": await _bearer(client, "p@example.com", ())},
        },
    )


@dataclass(frozen=True)
class Call:
    """One admin request."""

    method: str
    path: str
    body: Any = None
    ok: int = 200


CALLS = [
    Call("GET", OVERVIEW),
    Call("POST", RULE_TEST, {"action": "read", "auth": None, "doc": {}}),
    Call("GET", "/_/"),
    Call("GET", "/v1/admin/keys"),
    Call("POST", "/v1/admin/keys", {"name": "ci", "scopes": ["read:*"]}, 201),
    Call("DELETE", "/v1/admin/keys/000000000000", ok=404),
    Call("GET", "/v1/admin/accounts"),
    Call("GET", "/v1/admin/conflicts"),
    Call("DELETE", "/v1/admin/accounts/nobody", ok=404),
    Call("PUT", "/v1/admin/accounts/nobody/roles", {"roles": []}, 404),
    Call("POST", "/v1/admin/accounts/nobody/disable", ok=404),
    Call("POST", "/v1/admin/accounts/nobody/enable", ok=404),
    Call("GET", "/v1/admin/accounts/nobody/export", ok=404),
]


@pytest.mark.parametrize("call", CALLS, ids=lambda call: f"{call.method} {call.path}")
@pytest.mark.parametrize(
    ("caller", "status"),
    [("admin key", 200), ("admin user", 200), (None, 401), ("read key", 403), ("plain user", 403)],
)
async def test_only_admins_are_let_in(
    admin: Admin, call: Call, caller: str | None, status: int
) -> None:
    """Admin keys and admin users get 200; no credential 401; any other caller 403 (the
    console's page itself is shown to anyone once the console is on: its data is not)."""
    headers = admin.headers[caller] if caller else {}
    response = await admin.client.request(call.method, call.path, json=call.body, headers=headers)
    expected = 200 if call.path == "/_/" else status
    if expected == 200:
        expected = call.ok
    assert response.status_code == expected, response.text
    if expected in (401, 403):
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == {401: "unauthorized", 403: "forbidden"}[expected]


@pytest.mark.parametrize("call", CALLS, ids=lambda call: f"{call.method} {call.path}")
async def test_the_console_is_off_without_an_admin_key(
    make_client: Callable[..., Any], call: Call
) -> None:
    """With no live admin key, every admin path is 404, even for an admin user; revoking the
    last admin key turns it off again."""
    client: httpx.AsyncClient = await make_client(CONFIG)
    node = client.app.state.node  # type: ignore[attr-defined]
    node.auth.create_key("r", ["read:*"])
    headers = {"Authorization": await _bearer(client, "a@example.com", ("admin",))}
    off = await client.request(call.method, call.path, json=call.body, headers=headers)
    assert off.status_code == 404
    assert off.headers["content-type"] == "application/problem+json"
    _, record = node.auth.create_key("ops", ["admin"])
    on = await client.request(call.method, call.path, json=call.body, headers=headers)
    assert on.status_code == call.ok
    node.auth_store.revoke_key(record.key_id, 1)
    again = await client.request(call.method, call.path, json=call.body, headers=headers)
    assert again.status_code == 404


async def test_overview_names_the_region_rules_and_no_replication(admin: Admin) -> None:
    """One region, this one; replication not built; each collection with its rules."""
    body = (await admin.client.get(OVERVIEW, headers=admin.headers["admin key"])).json()
    assert body["auth_mode"] == "enforce"
    assert body["regions"] == [{"name": body["region"], "local": True, "state": "operational"}]
    assert body["replication"] == {"peers": [], "built": True, "state": "active"}
    assert body["collections"] == [
        {
            "name": "notes",
            "conflict": "document",
            "rules": {
                "read": "auth != null && doc.owner == auth.uid",
                "write": "auth != null && (doc.owner == auth.uid || 'editor' in auth.roles)"
                " && op != 'delete'",
                "owner": None,
            },
        }
    ]


@pytest.mark.parametrize(
    ("request_body", "allowed"),
    [
        ({"action": "read", "auth": {"uid": "u1"}, "doc": {"owner": "u1"}}, True),
        ({"action": "read", "auth": {"uid": "u2"}, "doc": {"owner": "u1"}}, False),
        ({"action": "read", "auth": None, "doc": {"owner": "u1"}}, False),
        ({"action": "write", "auth": {"uid": "u2", "roles": ["editor"]}, "doc": {}}, True),
        ({"action": "write", "op": "delete", "auth": {"uid": "u1"}, "doc": {"owner": "u1"}}, False),
        ({"action": "write", "auth": {"uid": "u2", "roles": ["viewer"]}, "doc": {}}, False),
    ],
)
async def test_the_rule_tester_evaluates_the_collection_rule(
    admin: Admin, request_body: dict[str, Any], allowed: bool
) -> None:
    """The verdict is the configured rule's, for the given caller, document and op."""
    response = await admin.client.post(
        RULE_TEST, json=request_body, headers=admin.headers["admin user"]
    )
    assert response.status_code == 200, response.text
    assert response.json()["allowed"] is allowed
    assert response.json()["rule"].startswith("auth != null")


async def test_the_rule_tester_without_a_rule_follows_the_mode(admin: Admin) -> None:
    """A collection with no rule is closed in enforce mode, and the verdict says so."""
    response = await admin.client.post(
        "/v1/admin/collections/other/rules/test",
        json={"action": "read", "auth": {"uid": "u1"}, "doc": {}},
        headers=admin.headers["admin key"],
    )
    assert response.json() == {
        "allowed": False,
        "rule": None,
        "reason": "no read rule: mode enforce refuses",
    }


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (RULE_TEST, {"action": "delete", "auth": None, "doc": {}}, "action"),
        (RULE_TEST, {"action": "read", "auth": "u1", "doc": {}}, "auth"),
        (RULE_TEST, {"action": "read", "auth": {"uid": ""}, "doc": {}}, "auth.uid"),
        (
            RULE_TEST,
            {"action": "read", "auth": {"uid": "u", "roles": "x"}, "doc": {}},
            "auth.roles",
        ),
        (RULE_TEST, {"action": "read", "auth": {"uid": "u", "mfa": 1}, "doc": {}}, "auth.mfa"),
        (RULE_TEST, {"action": "read", "auth": None, "doc": [1]}, "doc"),
        (RULE_TEST, {"action": "read", "auth": None}, "doc"),
        (RULE_TEST, {"action": "write", "op": "x", "auth": None, "doc": {}}, "op"),
        (RULE_TEST, {"action": "write", "auth": None, "doc": {}, "before": 3}, "before"),
        (RULE_TEST, [1, 2], None),
        ("/v1/admin/collections/9bad/rules/test", {"action": "read", "doc": {}}, None),
    ],
)
async def test_bad_rule_tests_are_refused_with_a_problem(
    admin: Admin, path: str, body: Any, field: str | None
) -> None:
    """Each malformed field gets a 400 validation_error naming it."""
    response = await admin.client.post(path, json=body, headers=admin.headers["admin key"])
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "validation_error"
    if field is not None:
        assert problem["field"] == field


async def test_a_rule_test_without_a_body_is_refused(admin: Admin) -> None:
    """An empty or non-JSON body is a 400, never a 500."""
    headers = admin.headers["admin key"]
    empty = await admin.client.post(RULE_TEST, headers=headers)
    garbage = await admin.client.post(
        RULE_TEST, content=b"{nope", headers=headers | {"Content-Type": "application/json"}
    )
    assert empty.status_code == garbage.status_code == 400


async def test_keys_are_created_listed_and_revoked_without_showing_secrets(admin: Admin) -> None:
    """A created key works at once, is listed by id and scopes only, and once revoked is
    refused and listed as revoked; revoking it again is 404."""
    headers = admin.headers["admin key"]
    created = await admin.client.post(
        "/v1/admin/keys", json={"name": "reports", "scopes": ["read:*"]}, headers=headers
    )
    assert created.status_code == 201
    assert created.headers["cache-control"] == "private, no-store"
    secret, key_id = created.json()["key"], created.json()["key_id"]
    reader = {"Authorization": f"ApiKey {secret}"}
    assert (
        await admin.client.get("/v1/collections/notes/docs/x", headers=reader)
    ).status_code == 404
    listed = (await admin.client.get("/v1/admin/keys", headers=headers)).json()["keys"]
    assert secret.split("_", 2)[2] not in str(listed)  # bw_<key id>_<secret>, "_" inside it too
    assert {"key_id": key_id, "name": "reports", "scopes": ["read:*"]}.items() <= next(
        key for key in listed if key["key_id"] == key_id
    ).items()
    revoked = await admin.client.delete(f"/v1/admin/keys/{key_id}", headers=headers)
    assert revoked.status_code == 204
    refused = await admin.client.get("/v1/collections/notes/docs/x", headers=reader)
    assert refused.status_code == 401
    listed = (await admin.client.get("/v1/admin/keys", headers=headers)).json()["keys"]
    assert next(key for key in listed if key["key_id"] == key_id)["revoked_ms"] is not None
    again = await admin.client.delete(f"/v1/admin/keys/{key_id}", headers=headers)
    assert again.status_code == 404
    assert again.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scopes": ["read:*"]}, "name"),
        ({"name": "", "scopes": ["read:*"]}, "name"),
        ({"name": "x" * 65, "scopes": ["read:*"]}, "name"),
        ({"name": "a\nb", "scopes": ["read:*"]}, "name"),
        ({"name": "k", "scopes": "read:*"}, "scopes"),
        ({"name": "k", "scopes": [1]}, "scopes"),
        ({"name": "k", "scopes": []}, None),
        ({"name": "k", "scopes": ["root"]}, None),
        ([], None),
    ],
)
async def test_bad_keys_are_refused_and_nothing_is_created(
    admin: Admin, body: Any, field: str | None
) -> None:
    """Each bad name or scope list is a 400 naming the field, and no key is added."""
    headers = admin.headers["admin key"]
    before = (await admin.client.get("/v1/admin/keys", headers=headers)).json()["keys"]
    response = await admin.client.post("/v1/admin/keys", json=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "validation_error"
    if field is not None:
        assert response.json()["field"] == field
    after = (await admin.client.get("/v1/admin/keys", headers=headers)).json()["keys"]
    assert after == before


async def test_an_admin_finds_an_account_and_grants_it_the_admin_role(admin: Admin) -> None:
    """Found by email prefix; once given the admin role, its next sign-in reaches the admin
    endpoints (until then its token still says what it was)."""
    headers = admin.headers["admin key"]
    found = await admin.client.get("/v1/admin/accounts", params={"q": "P@"}, headers=headers)
    assert [a["email"] for a in found.json()["accounts"]] == ["p@example.com"]
    account = found.json()["accounts"][0]
    assert set(account) == {
        "uid",
        "email",
        "email_verified",
        "anonymous",
        "roles",
        "mfa",
        "disabled",
        "created_ms",
    }
    path = f"/v1/admin/accounts/{account['uid']}/roles"
    granted = await admin.client.put(path, json={"roles": ["admin", "admin"]}, headers=headers)
    assert granted.status_code == 200
    assert granted.json()["roles"] == ["admin"]
    old = admin.headers["plain user"]
    assert (await admin.client.get(OVERVIEW, headers=old)).status_code == 403
    login = await admin.client.post(
        "/v1/auth/login", json={"email": "p@example.com", "password": "correct horse"}
    )
    promoted = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert (await admin.client.get(OVERVIEW, headers=promoted)).status_code == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"roles": "admin"}, 400),
        ({"roles": ["not a role"]}, 400),
        ({"roles": [1]}, 400),
        ({"roles": [f"r{i}" for i in range(33)]}, 400),
        ({}, 400),
        ("admin", 400),
    ],
)
async def test_bad_roles_are_refused_and_change_nothing(
    admin: Admin, body: Any, status: int
) -> None:
    """Each malformed roles body is a 400 and the account keeps its roles."""
    headers = admin.headers["admin key"]
    found = await admin.client.get("/v1/admin/accounts", params={"q": "a@"}, headers=headers)
    uid = found.json()["accounts"][0]["uid"]
    response = await admin.client.put(f"/v1/admin/accounts/{uid}/roles", json=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    again = await admin.client.get("/v1/admin/accounts", params={"q": uid}, headers=headers)
    assert again.json()["accounts"][0]["roles"] == ["admin"]


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "201"}, {"q": "x" * 321}])
async def test_bad_account_searches_are_refused(admin: Admin, params: dict[str, str]) -> None:
    """Limits out of range and overlong searches are 400 problems."""
    response = await admin.client.get(
        "/v1/admin/accounts", params=params, headers=admin.headers["admin key"]
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


async def test_conflicts_recorded_by_merges_are_listed(admin: Admin) -> None:
    """A push older than the stored field shows up as a conflict, newest first, filterable."""
    headers = admin.headers["admin key"]
    older, newer = "1796000000000-0000-dev", "1796000000001-0000-dev"
    for mutation_id, value, hlc in (("m1", "new", newer), ("m2", "old", older)):
        mutation: dict[str, Any] = {"mutation_id": mutation_id, "collection": "notes"}
        mutation |= {"id": "n1", "op": "set", "data": {"title": value}, "hlc": hlc}
        push = await admin.client.post(
            "/v1/sync/push", json={"client_id": "c", "mutations": [mutation]}, headers=headers
        )
        assert push.json()["results"][0]["status"] == "applied", push.text
    listed = await admin.client.get("/v1/admin/conflicts", headers=headers)
    [conflict] = listed.json()["conflicts"]
    assert conflict["collection"] == "notes" and conflict["mutation_id"] == "m2"
    assert conflict["winner_hlc"] == newer and "title" in conflict["fields"]
    other = await admin.client.get(
        "/v1/admin/conflicts", params={"collection": "todos"}, headers=headers
    )
    assert other.json() == {"conflicts": []}


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "501"}, {"collection": "9x"}])
async def test_bad_conflict_queries_are_refused(admin: Admin, params: dict[str, str]) -> None:
    """A limit out of range or a bad collection name is a 400 problem."""
    response = await admin.client.get(
        "/v1/admin/conflicts", params=params, headers=admin.headers["admin key"]
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_deleted_account_can_neither_sign_in_nor_refresh(admin: Admin) -> None:
    """Deleting an account ends its sessions and its password; deleting it again is 404."""
    user = await sign_up(admin.client, "gone@example.com")
    headers = admin.headers["admin key"]
    deleted = await admin.client.delete(f"/v1/admin/accounts/{user.uid}", headers=headers)
    assert deleted.status_code == 204
    refresh = await admin.client.post("/v1/auth/refresh", json={"refresh_token": user.refresh})
    assert refresh.status_code == 401
    login = await admin.client.post(
        "/v1/auth/login", json={"email": "gone@example.com", "password": "correct horse"}
    )
    assert login.status_code == 401
    found = await admin.client.get("/v1/admin/accounts", params={"q": "gone"}, headers=headers)
    assert found.json() == {"accounts": []}
    again = await admin.client.delete(f"/v1/admin/accounts/{user.uid}", headers=headers)
    assert again.status_code == 404
