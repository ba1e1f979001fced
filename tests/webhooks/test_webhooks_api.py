"""``/v1/admin/webhooks``: admins only, secrets shown once, bad input refused with 4xx."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.server import test_admin_api
from tests.server.test_admin_api import Admin
from tests.webhooks.conftest import subscribe

BASE = "/v1/admin/webhooks"
URL = "https://hooks.example.com/in"
admin = test_admin_api.admin  # the fixture: a node with admin and non-admin callers


@dataclass(frozen=True)
class Bad:
    """A body the create endpoint refuses, and a word its problem names."""

    body: Any
    names: str


BAD_CREATES = [
    Bad([], "JSON object"),
    Bad({}, "url"),
    Bad({"url": "ftp://x/y"}, "http"),
    Bad({"url": "http://u:p@x.example/"}, "credentials"),
    Bad({"url": URL, "collections": "notes"}, "collections"),
    Bad({"url": URL, "collections": ["no/slash"]}, "collection"),
    Bad({"url": URL, "operations": []}, "operations"),
    Bad({"url": URL, "operations": ["upsert"]}, "operations"),
    Bad({"url": URL, "description": 5}, "description"),
    Bad({"url": URL, "secret": "mine"}, "secret must match"),
    Bad({"url": URL, "id": "../x"}, "id must match"),
    Bad({"url": URL, "owner": "me"}, "unknown"),
]


@pytest.mark.parametrize("bad", BAD_CREATES, ids=lambda b: str(b.body)[:40])
async def test_bad_input_is_a_400_problem_and_creates_nothing(admin: Admin, bad: Bad) -> None:
    """Each bad body gets a problem+json 400 naming the field; no subscription is made."""
    headers = admin.headers["admin key"]
    response = await admin.client.post(BASE, json=bad.body, headers=headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert bad.names in response.json()["detail"]
    assert (await admin.client.get(BASE, headers=headers)).json()["webhooks"] == []


@pytest.mark.parametrize(
    ("caller", "status"), [(None, 401), ("read key", 403), ("plain user", 403)]
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", BASE),
        ("POST", BASE),
        ("GET", f"{BASE}/wh_x"),
        ("PATCH", f"{BASE}/wh_x"),
        ("DELETE", f"{BASE}/wh_x"),
        ("GET", f"{BASE}/wh_x/deliveries"),
        ("GET", f"{BASE}/wh_x/dead-letters"),
        ("POST", f"{BASE}/wh_x/dead-letters/d/redeliver"),
    ],
)
async def test_non_admins_are_refused(
    admin: Admin, caller: str | None, status: int, method: str, path: str
) -> None:
    """Without a credential 401; with a non-admin one 403."""
    headers = admin.headers[caller] if caller else {}
    body = {"url": URL} if method in ("POST", "PATCH") else None
    response = await admin.client.request(method, path, json=body, headers=headers)
    assert response.status_code == status


async def test_the_secret_is_shown_once_and_the_subscription_is_managed(admin: Admin) -> None:
    """Create shows the secret; list, get and patch never do; delete removes it (then 404)."""
    client: httpx.AsyncClient = admin.client
    headers = admin.headers["admin user"]
    created = await subscribe(client, headers, URL, collections=["notes"], operations=["set"])
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    sub = f"{BASE}/{created['id']}"
    listed = (await client.get(BASE, headers=headers)).json()["webhooks"]
    got = await client.get(sub, headers=headers)
    patched = await client.patch(
        sub, json={"operations": ["delete", "set"], "collections": []}, headers=headers
    )
    for shown in (listed[0], got.json(), patched.json()):
        assert "secret" not in shown and created["secret"] not in str(shown)
    assert patched.json()["operations"] == ["set", "delete"]
    assert patched.json()["collections"] == []
    assert got.json()["cursor"] is not None
    assert (await client.patch(sub, json={"url": "nope"}, headers=headers)).status_code == 400
    assert (await client.get(sub, headers=headers)).json()["operations"] == ["set", "delete"]
    assert (await client.delete(sub, headers=headers)).status_code == 204
    for method in ("GET", "DELETE", "PATCH"):
        response = await client.request(method, sub, json={}, headers=headers)
        assert response.status_code == 404


async def test_a_redelivery_of_an_unknown_letter_is_404(admin: Admin) -> None:
    """Only a dead letter can be redelivered."""
    headers = admin.headers["admin key"]
    created = await subscribe(admin.client, headers, URL)
    path = f"{BASE}/{created['id']}/dead-letters/whd_none/redeliver"
    assert (await admin.client.post(path, headers=headers)).status_code == 404


async def test_a_subscription_made_with_a_given_id_and_secret_keeps_them_once(
    admin: Admin,
) -> None:
    """An id and secret given at creation are the subscription's (as in every region of a
    deployment); creating the same id again is a 409 that changes nothing."""
    headers = admin.headers["admin key"]
    given = {"url": URL, "id": "wh_everywhere", "secret": "whsec_" + "k" * 43}
    created = await admin.client.post(BASE, json=given, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["id"] == "wh_everywhere"
    assert created.json()["secret"] == given["secret"]
    again = await admin.client.post(BASE, json={**given, "url": URL + "2"}, headers=headers)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    [only] = (await admin.client.get(BASE, headers=headers)).json()["webhooks"]
    assert only["url"] == URL
