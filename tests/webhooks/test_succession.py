"""Which region takes over a lost region's webhook deliveries, and from where."""

from __future__ import annotations

from typing import Any

import pytest

from breakwater.server.webhooks.succession import adopted_regions, rewound

NOW = 1_000_000
AFTER = 60_000


def row(seconds_ago: float, webhooks: dict[str, Any] | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {"updated_ms": NOW - int(seconds_ago * 1000)}
    if webhooks is not None:
        value["webhooks"] = webhooks
    return value


@pytest.mark.parametrize(
    ("region", "rows", "adopted"),
    [
        ("us", {"eu": row(5), "ap": row(5)}, {}),
        ("ap", {"eu": row(61, {"wh_1": {"eu~a": 3}}), "us": row(1)}, {"eu": {"wh_1": {"eu~a": 3}}}),
        ("us", {"eu": row(61, {"wh_1": {"eu~a": 3}}), "ap": row(1)}, {}),
        ("us", {"eu": row(61), "ap": row(120)}, {"ap": {}, "eu": {}}),
        ("us", {"eu": {}, "ap": row(1)}, {}),
    ],
    ids=[
        "every peer live",
        "first live name takes over",
        "a later name leaves it",
        "alone, takes both",
        "never heard from is not lost",
    ],
)
def test_the_live_region_first_by_name_adopts_the_lost_ones(
    region: str, rows: dict[str, dict[str, Any]], adopted: dict[str, Any]
) -> None:
    """A peer silent for longer than the bound is lost; the first live region by name takes
    over its deliveries with the progress it reported."""
    assert adopted_regions(region, rows, NOW, AFTER) == adopted


def test_a_cursor_goes_back_only_over_the_lost_regions_origins() -> None:
    """Origins of the lost region go back to what it reported; others stay."""
    cursor = {"eu~a": 10, "eu~b": 4, "us~c": 7, "eu": 2}
    assert rewound(cursor, "eu", {"eu~a": 8, "eu": 2}) == {"eu~a": 8, "eu~b": 0, "us~c": 7, "eu": 2}
    assert rewound(cursor, "eu", {"eu~a": 12, "eu~b": 4, "eu": 2}) == cursor
