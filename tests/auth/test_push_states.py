"""A push never shows more than a pull: under read rules it answers no document states."""

from __future__ import annotations

import httpx

from tests.auth.conftest import sign_up


async def test_a_caller_under_read_rules_gets_stable_but_no_state(
    rules_node: httpx.AsyncClient,
) -> None:
    """Bob's own note comes back without its state (the device pulls it as the rules show it)."""
    bob = await sign_up(rules_node, "bob@example.com")
    body = {
        "mutations": [
            {"mutation_id": "b.1", "collection": "notes", "id": "n1", "op": "set", "data": {}}
        ]
    }
    response = await rules_node.post(
        "/v1/sync/push", params={"include_state": "true"}, json=body, headers=bob.headers
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    [result] = answer["results"]
    assert result["status"] == "applied"
    assert "state" not in result
    assert answer["stable"] == {result["origin"]: result["seq"]}
