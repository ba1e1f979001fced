"""The replication page's JSON: what a region sends is what its peer reads back, and a
malformed answer (a peer's bug) is a ValidationError, never a crash or a partial page."""

from __future__ import annotations

from typing import Any

import pytest

from breakwater.core import codec
from breakwater.core.engine import Change
from breakwater.core.errors import ValidationError
from breakwater.core.hlc import encode
from breakwater.replication.wire import page_json, parse_page
from breakwater.storage.base import FeedEntry, FeedPage

STAMP = encode(1_795_306_552_962, 0, "eu-1")
TRACEPARENT = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
STATE = {"f": {"title": [STAMP, "milk"]}, "s": "", "x": "", "n": {}}


def page(traces: dict[str, list[tuple[str, int]]] | None = None) -> dict[str, Any]:
    """A one-entry page as a region answers it, through JSON."""
    entry = FeedEntry(
        Change("eu~0a1b2c3d4e5f", 7, "todos", "t1", "phone.1", STAMP, "patch"),
        {"title": "milk"},
        "v",
        STATE,
    )
    feed = FeedPage([entry], {"eu~0a1b2c3d4e5f": 7}, False, {"eu~0a1b2c3d4e5f": 7})
    body = page_json(
        feed,
        region="eu",
        origin="eu~0123456789ab",
        state="active",
        stable={},
        regions=["us"],
        traces=traces,
    )
    parsed: dict[str, Any] = codec.loads(codec.dumps(body))
    return parsed


def test_a_page_reads_back_as_it_was_sent() -> None:
    """Positions, mutation id, HLC, op and state survive; so do head, region and state."""
    read = parse_page(page())
    [entry] = read.entries
    assert (entry.change.origin, entry.change.seq, entry.change.mutation_id) == (
        "eu~0a1b2c3d4e5f",
        7,
        "phone.1",
    )
    assert entry.state == STATE
    assert (read.region, read.state, read.head, read.has_more) == (
        "eu",
        "active",
        {"eu~0a1b2c3d4e5f": 7},
        False,
    )
    assert read.vector == {"eu~0a1b2c3d4e5f": 7}
    assert read.regions == ("us",)
    assert read.origin == "eu~0123456789ab"


def test_a_page_from_a_peer_that_names_no_origin_reads_as_unknown() -> None:
    """A peer from before ADR 0037 sends no origin: none of its incarnations counts as retired."""
    body = page()
    del body["origin"]
    assert parse_page(body).origin is None


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("region",), "e~u"),
        (("origin",), "us~0123456789ab"),  # an origin of another region than the page's
        (("origin",), "eu origin"),
        (("origin",), 7),
        (("state",), "passive"),
        (("has_more",), "no"),
        (("cursor",), 7),
        (("head",), {"eu": -1}),
        (("regions",), ["ok", 3]),
        (("entries",), {}),
        (("entries", 0, "seq"), 0),
        (("entries", 0, "seq"), True),
        (("entries", 0, "op"), "merge"),
        (("entries", 0, "hlc"), "yesterday"),
        (("entries", 0, "origin"), "bad origin"),
        (("entries", 0, "id"), ""),
        (("entries", 0, "state"), {"f": {}}),
        (("entries", 0, "state"), None),
        (("webhooks",), ["wh_1"]),
        (("webhooks",), {"wh_1": {"eu": -1}}),
        (("traces",), []),
        (("traces",), {"00-abc-def-01": [["eu~0a1b2c3d4e5f", 7]]}),
        (("traces",), {TRACEPARENT: [["eu~0a1b2c3d4e5f", 0]]}),
        (("traces",), {TRACEPARENT: [["bad origin", 7]]}),
        (("traces",), {TRACEPARENT: [["eu~0a1b2c3d4e5f", 7], ["eu~0a1b2c3d4e5f", 8]]}),
    ],
)
def test_a_malformed_page_is_a_validation_error(path: tuple[Any, ...], value: Any) -> None:
    """Every field is checked before the page is used."""
    body = page()
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValidationError):
        parse_page(body)


def test_a_regions_webhook_progress_travels_with_its_page() -> None:
    """The responder's delivery progress per subscription reads back as sent; a page without
    it says nothing (``None``), so the puller keeps what it knew."""
    assert parse_page(page()).webhooks is None
    entry = parse_page(page()).entries
    feed = FeedPage(entry, {"eu~0a1b2c3d4e5f": 7}, False, {"eu~0a1b2c3d4e5f": 7})
    progress = {"wh_1": {"eu~0a1b2c3d4e5f": 5}}
    body = page_json(
        feed,
        region="eu",
        origin="eu~0a1b2c3d4e5f",
        state="active",
        stable={},
        regions=[],
        webhooks=progress,
    )
    assert parse_page(codec.loads(codec.dumps(body))).webhooks == progress


def test_a_page_carries_its_writes_traceparents_only_when_it_has_some() -> None:
    """``traces`` reads back position by position; without any, the key is not sent at all."""
    assert "traces" not in page()
    assert "traces" not in page({})
    assert parse_page(page()).traces == {}
    traced = page({TRACEPARENT: [("eu~0a1b2c3d4e5f", 7)]})
    assert parse_page(traced).traces == {TRACEPARENT: [("eu~0a1b2c3d4e5f", 7)]}
