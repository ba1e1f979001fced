"""Golden test vectors: what the Python core computes, as JSON that every SDK's tests replay.

Each vector is an input and the core's own output for it, made by calling the core's public
functions (never written by hand), so another language's SDK proves it computes the same HLC
stamps, merged states, counters, tombstones, cursors and query answers. Regenerate the files
after a core change with::

    .venv/bin/python -m tests.golden_vectors

``tests/core/test_golden_vectors.py`` fails while the committed files differ from the core.
"""

from __future__ import annotations

import json
import math
import random
import sqlite3
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from breakwater.client.local_query import build_query, query_sql
from breakwater.client.rebase import rebase, view_of
from breakwater.core import codec, document, hlc
from breakwater.core import cursor as cursor_mod
from breakwater.core.canonical import dumps_canonical
from breakwater.core.errors import ValidationError

VECTORS_DIR = Path(__file__).resolve().parent.parent / "sdks" / "vectors"

Mutation = tuple[str, dict[str, Any] | None, str, str]


def stamp(wall: int, node: str = "a", counter: int = 0) -> str:
    """An HLC stamp at a small wall time."""
    return hlc.encode(wall, counter, node)


def hlc_vectors() -> dict[str, Any]:
    """Stamp encoding, decoding, ordering, and clocks driven by a scripted physical time."""
    stamps = [
        stamp(1_795_306_552_290, "local-5d8101"),
        stamp(1_795_306_552_290, "a", 1),
        stamp(1_795_306_552_290, "b"),
        stamp(1_795_306_552_291, "a"),
        stamp(0, "z", 9999),
        stamp(1, "A"),
        stamp(1, "a"),
    ]
    invalid = [
        "",
        "1-0000-a",
        "0000000000001-000-a",
        "0000000000001-0000-",
        "0000000000001-0000-a b",
    ]

    def clock_run(events: list[dict[str, Any]]) -> dict[str, Any]:
        now = [0]
        clock = hlc.HybridClock("dev", physical_ms=lambda: now[0])
        for event in events:
            now[0] = event["physical"]
            if event["event"] == "now":
                event["result"] = clock.now()
            else:
                clock.observe(event["stamp"])
                event["result"] = clock.now()
        return {"node": "dev", "events": events}

    runs = [
        [{"event": "now", "physical": 10}, {"event": "now", "physical": 10}],
        [{"event": "now", "physical": 10}, {"event": "now", "physical": 5}],
        [{"event": "now", "physical": 10}, {"event": "now", "physical": 11}],
        [{"event": "observe", "physical": 10, "stamp": stamp(50, "srv", 7)}],
        [{"event": "observe", "physical": 60, "stamp": stamp(50, "srv", 7)}],
        [
            {"event": "now", "physical": 50},
            {"event": "observe", "physical": 50, "stamp": stamp(50, "srv", 3)},
        ],
        [
            {"event": "observe", "physical": 1, "stamp": stamp(50, "srv", 9998)},
            {"event": "now", "physical": 1},
        ],
    ]
    return {
        "decode": [{"stamp": s, "decoded": list(hlc.decode(s))} for s in stamps],
        "invalid": invalid,
        "sorted": sorted(stamps),
        "clocks": [clock_run(events) for events in runs],
    }


def _fold(mutations: list[Mutation]) -> document.State:
    state = document.empty_state()
    for op, data, at, mutation_id in mutations:
        state = document.join(state, document.delta_for(op, data, at, mutation_id))
    return state


DOCUMENT_CASES: dict[str, list[Mutation]] = {
    "set": [("set", {"a": 1, "b": "x"}, stamp(1), "m1")],
    "set_replaces_older_fields": [
        ("set", {"a": 1, "b": 2}, stamp(1), "m1"),
        ("set", {"c": 3}, stamp(2), "m2"),
    ],
    "older_set_loses": [
        ("set", {"c": 3}, stamp(2), "m2"),
        ("set", {"a": 1, "b": 2}, stamp(1), "m1"),
    ],
    "patch_fields_lww": [
        ("set", {"a": 1, "b": 2}, stamp(1), "m1"),
        ("patch", {"a": 5}, stamp(3, "b"), "m2"),
        ("patch", {"a": 4, "b": 9}, stamp(2, "c"), "m3"),
    ],
    "patch_null_removes": [
        ("set", {"a": 1, "b": 2}, stamp(1), "m1"),
        ("patch", {"b": None}, stamp(2), "m2"),
    ],
    "nested_value_replaced_whole": [
        ("set", {"tags": {"shop": "corner"}}, stamp(1), "m1"),
        ("patch", {"tags": {"due": "today"}}, stamp(2), "m2"),
    ],
    "delete_tombstone": [
        ("set", {"a": 1}, stamp(1), "m1"),
        ("delete", None, stamp(2), "m2"),
    ],
    "delete_then_newer_patch_revives": [
        ("set", {"a": 1, "b": 2}, stamp(1), "m1"),
        ("delete", None, stamp(2), "m2"),
        ("patch", {"c": 3}, stamp(3), "m3"),
    ],
    "older_write_after_delete_stays_dead": [
        ("delete", None, stamp(5), "m2"),
        ("patch", {"c": 3}, stamp(4), "m3"),
    ],
    "delete_kills_equal_stamp": [
        ("patch", {"a": 1}, stamp(5), "m1"),
        ("delete", None, stamp(5), "m2"),
    ],
    "never_written_patch_null": [("patch", {"a": None}, stamp(1), "m1")],
    "counter_from_nothing": [
        ("increment", {"n": 2}, stamp(1, "a"), "m1"),
        ("increment", {"n": 3}, stamp(1, "b"), "m2"),
    ],
    "counter_same_mutation_twice": [
        ("increment", {"n": 2}, stamp(1), "m1"),
        ("increment", {"n": 2}, stamp(1), "m1"),
    ],
    "counter_on_written_base": [
        ("set", {"n": 10, "t": "x"}, stamp(1), "m1"),
        ("increment", {"n": 5}, stamp(2), "m2"),
        ("increment", {"n": -1.5}, stamp(3), "m3"),
    ],
    "counter_reset_by_newer_patch": [
        ("increment", {"n": 5}, stamp(1), "m1"),
        ("patch", {"n": 100}, stamp(2), "m2"),
        ("increment", {"n": 1}, stamp(3), "m3"),
    ],
    "counter_older_increment_after_patch_is_dead": [
        ("patch", {"n": 100}, stamp(5), "m2"),
        ("increment", {"n": 1}, stamp(3), "m3"),
    ],
    "counter_non_number_base": [
        ("set", {"n": "text"}, stamp(1), "m1"),
        ("increment", {"n": 2}, stamp(2), "m2"),
    ],
    "counter_removed_base": [
        ("set", {"n": 7}, stamp(1), "m1"),
        ("patch", {"n": None}, stamp(2), "m2"),
        ("increment", {"n": 2}, stamp(3), "m3"),
    ],
    "counter_floats_fixed_order": [
        ("increment", {"x": 0.1}, stamp(3, "c"), "m3"),
        ("increment", {"x": 0.2}, stamp(1, "a"), "m1"),
        ("increment", {"x": 0.3}, stamp(2, "b"), "m2"),
    ],
    "counter_reset_by_delete": [
        ("increment", {"n": 4}, stamp(1), "m1"),
        ("delete", None, stamp(2), "m2"),
        ("increment", {"n": 1}, stamp(3), "m3"),
    ],
    "equal_stamp_tie_by_canonical_bytes": [
        ("patch", {"a": "x"}, stamp(1), "m1"),
        ("patch", {"a": 2}, stamp(1), "m2"),
    ],
    # Canonical JSON writes the whole float 1.0 as 1, which sorts before 1.5 ("1]" < "1.5").
    "equal_stamp_tie_whole_float": [
        ("patch", {"a": 1.5}, stamp(1), "m1"),
        ("patch", {"a": 1.0}, stamp(1), "m2"),
    ],
    "equal_stamp_tie_objects": [
        ("patch", {"a": {"k": 1, "b": [True, None]}}, stamp(1), "m1"),
        ("patch", {"a": {"a": "é"}}, stamp(1), "m2"),
    ],
    "unicode_field_names": [
        ("set", {"é": 1, "z": 2, "😀": 3, "\uffff": 4}, stamp(1), "m1"),
    ],
}


def _described(state: document.State) -> dict[str, Any]:
    newest = document.newest_write(state)
    return {
        "state": state,
        "visible": document.visible(state, newest),
        "newest": newest,
        "deleted": document.is_deleted(state, newest),
    }


def document_vectors() -> dict[str, Any]:
    """Mutations folded in order, in reverse, and two halves joined: the same state (I4)."""
    cases = []
    for name, mutations in DOCUMENT_CASES.items():
        half = len(mutations) // 2
        joined = document.join(_fold(mutations[:half]), _fold(mutations[half:]))
        reverse = _fold(list(reversed(mutations)))
        if joined != _fold(mutations) or reverse != _fold(mutations):
            raise AssertionError(f"{name}: the core's join does not converge")
        mutations_wire = [
            {"op": op, "data": data, "hlc": at, "mutation_id": mid}
            for op, data, at, mid in mutations
        ]
        deltas = [document.delta_for(op, data, at, mid) for op, data, at, mid in mutations]
        cases.append(
            {
                "name": name,
                "mutations": mutations_wire,
                "deltas": deltas,
                **_described(_fold(mutations)),
            }
        )
    return {"cases": cases}


def _folded_over_an_erased_copy() -> document.State:
    """A server state as two regions fold it: both applied one increment before exchanging it,
    and A's patch of the field erased A's copy; B's base then covers B's copy and adds nothing."""
    increment: Mutation = ("increment", {"n": 4}, stamp(20, "dev"), "d.9")
    regions = []
    for origin in ("A", "B"):
        _, state, _, _ = document.apply(None, "", *increment)
        regions.append(document.settle(state, "d.9", origin, 1, {}))
    a, b = regions
    _, a, _, _ = document.apply(
        a, document.newest_write(a), "patch", {"n": "many"}, stamp(21, "srv"), "s3"
    )
    return document.settle(document.join(a, b), "d.9", "A", 1, {"A": 2, "B": 1})


def rebase_vectors() -> dict[str, Any]:
    """A server state with pending local mutations joined on top (the local view)."""
    server = _fold(
        [
            ("set", {"title": "milk", "done": False, "n": 1}, stamp(10, "srv"), "s1"),
            ("increment", {"n": 2}, stamp(11, "srv"), "s2"),
        ]
    )
    pendings: dict[str, list[Mutation]] = {
        "pending_patch": [("patch", {"done": True}, stamp(12, "dev"), "d.1")],
        "pending_older_than_server": [("patch", {"title": "eggs"}, stamp(5, "dev"), "d.1")],
        "pending_increment_and_delete": [
            ("increment", {"n": 5}, stamp(12, "dev"), "d.1"),
            ("delete", None, stamp(13, "dev"), "d.2"),
        ],
        "pending_already_on_server": [("increment", {"n": 2}, stamp(11, "srv"), "s2")],
        "no_server_state": [("set", {"a": 1}, stamp(1, "dev"), "d.1")],
        "folded_base_covering_an_erased_copy": [],
        "folded_base_covering_an_erased_copy_then_increment": [
            ("increment", {"n": 1}, stamp(22, "dev"), "d.10")
        ],
    }
    servers = {name: _folded_over_an_erased_copy() for name in pendings if "folded" in name}
    cases = []
    for name, pending in pendings.items():
        base = None if name == "no_server_state" else servers.get(name, server)
        # Pending entries not yet acknowledged: no feed position (see client/rebase.py).
        data, newest = view_of(rebase(base, [(*mutation, None) for mutation in pending]))
        cases.append(
            {
                "name": name,
                "server": base,
                "pending": [
                    {"op": op, "data": d, "hlc": at, "mutation_id": mid}
                    for op, d, at, mid in pending
                ],
                "visible": data,
                "newest": newest,
            }
        )
    return {"cases": cases}


def cursor_vectors() -> dict[str, Any]:
    """Cursor encoding of version vectors, and advance, merge and covers."""
    vectors: list[dict[str, int]] = [
        {},
        {"local": 1},
        {"local": 12, "eu": 3},
        {"us-east": 2**53 - 1, "a": 0, "Z": 7},
    ]
    invalid = ["x", "c1.", "c1.!!!", "c1." + "W10", "c1.eyJhIjotMX0", "c1.eyJhIGIiOjF9"]
    for text in invalid:
        try:
            cursor_mod.decode(text)
        except ValidationError:
            continue
        raise AssertionError(f"{text!r} decodes")
    left, right = {"a": 3, "b": 1}, {"b": 5, "c": 2}
    return {
        "encode": [{"vector": v, "cursor": cursor_mod.encode(v)} for v in vectors],
        "invalid": invalid,
        "advance": [
            {
                "vector": left,
                "changes": [["a", 2], ["b", 4], ["c", 1]],
                "result": cursor_mod.advance(left, [("a", 2), ("b", 4), ("c", 1)]),
            }
        ],
        "merge": [{"left": left, "right": right, "result": cursor_mod.merge(left, right)}],
        "covers": [
            {"vector": left, "origin": o, "seq": s, "result": cursor_mod.covers(left, o, s)}
            for o, s in [("a", 3), ("a", 4), ("c", 0), ("c", 1)]
        ],
    }


QUERY_DOCS: dict[str, dict[str, Any]] = {
    "d01": {"n": 1, "s": "apple", "b": True},
    "d02": {"n": 2.5, "s": "Banana", "b": False},
    "d03": {"n": -3, "s": "cherry", "b": None},
    "d04": {"n": "5", "s": "é"},
    "d05": {"n": 1.0, "s": "😀"},
    "d06": {"s": "\uffff", "b": 1},
    "d07": {"n": [1, 2], "s": {"k": "v"}, "b": 0},
    "d08": {"n": 10, "s": "", "b": "true"},
    "d09": {"n": 1e300, "s": "apple"},
    "d10": {"n": None, "s": "apples"},
}

QUERIES: list[dict[str, Any]] = [
    {},
    {"order_by": "n"},
    {"order_by": "-n"},
    {"order_by": "s"},
    {"order_by": "-s"},
    {"order_by": "b"},
    {"order_by": "missing"},
    {"order_by": "-b", "limit": 4},
    {"where": [["n", "eq", 1]]},
    {"where": [["n", "ne", 1]]},
    {"where": [["n", "gt", 1]]},
    {"where": [["n", "lte", 2.5]]},
    {"where": [["n", "gte", "5"]]},
    {"where": [["n", "lt", "a"]]},
    {"where": [["n", "eq", None]]},
    {"where": [["n", "ne", None]]},
    {"where": [["b", "eq", True]]},
    {"where": [["b", "eq", False]]},
    {"where": [["b", "ne", True]], "order_by": "-s"},
    {"where": [["s", "gte", "apple"], ["s", "lt", "b"]]},
    {"where": [["s", "gt", "z"]], "order_by": "s"},
    {"where": [["s", "eq", '{"k":"v"}']]},
    {"where": [["n", "eq", "[1,2]"]]},
    {"where": {"s": "apple"}, "order_by": "-n"},
    {"where": ["n:gt:1", "s:ne:Banana"], "order_by": "n"},
    {"where": ["s:eq:apple"]},
    {"where": ["b:eq:true"]},
    {"where": ["n:lt:1e400"], "order_by": "n", "limit": 3},
]


def _sqlite_answers(rows: dict[str, dict[str, Any]]) -> Iterator[tuple[dict[str, Any], list[str]]]:
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(
            "CREATE TABLE docs (collection TEXT, id TEXT, data TEXT, hlc TEXT, pending INTEGER,"
            " PRIMARY KEY (collection, id))"
        )
        for doc_id, data in rows.items():
            conn.execute(
                "INSERT INTO docs VALUES ('c', ?, ?, '', 0)", (doc_id, codec.dumps(data).decode())
            )
        for spec in QUERIES:
            where = spec.get("where")
            clauses = (
                where
                if isinstance(where, dict)
                else [
                    clause if isinstance(clause, str) else tuple(clause) for clause in where or ()
                ]
            )
            query = build_query("c", clauses, spec.get("order_by"), spec.get("limit"))
            sql, params = query_sql(query)
            yield spec, [row[0] for row in conn.execute(sql, params)]
    finally:
        conn.close()


def query_vectors() -> dict[str, Any]:
    """Queries over the local view with the device's (SQLite ``json_extract``) semantics."""
    return {
        "docs": QUERY_DOCS,
        "queries": [{**spec, "ids": ids} for spec, ids in _sqlite_answers(QUERY_DOCS)],
    }


def _random_doubles(count: int) -> list[float]:
    """Finite doubles from random bit patterns (every exponent), seeded so the file is stable."""
    rng = random.Random(8785)
    doubles: list[float] = []
    while len(doubles) < count:
        (value,) = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))
        if math.isfinite(value):
            doubles.append(value)
    return doubles


def canonical_vectors() -> dict[str, Any]:
    """JSON values and their canonical text (docs/protocol.md#canonical-json)."""
    values: list[Any] = [
        1.0,
        -0.0,
        0.1,
        100.0,
        1.5e20,
        1e21,
        1e-6,
        1e-7,
        1.23e-18,
        123456789.125,
        5e-324,
        1.7976931348623157e308,
        2**53,
        2**60,
        -(2**63),
        '\x1f\x7f\u2028/\b"\\é😀',
        {"b": [1.0, {"y": None, "x": True}], "a": {}, "é": 2.50},
        {"\uffff": 1, "😀": 2, "z": 3, "": 4},
        *_random_doubles(300),
    ]
    return {"cases": [{"value": v, "canonical": dumps_canonical(v).decode()} for v in values]}


BUILDERS: dict[str, Callable[[], dict[str, Any]]] = {
    "canonical": canonical_vectors,
    "hlc": hlc_vectors,
    "document": document_vectors,
    "rebase": rebase_vectors,
    "cursor": cursor_vectors,
    "query": query_vectors,
}


def render(build: Callable[[], dict[str, Any]]) -> str:
    """The file text of one vector set (stable: sorted keys, one trailing newline)."""
    return json.dumps(build(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> None:
    """Write every vector file."""
    VECTORS_DIR.mkdir(parents=True, exist_ok=True)
    for name, build in BUILDERS.items():
        (VECTORS_DIR / f"{name}.json").write_text(render(build), encoding="utf-8")


if __name__ == "__main__":
    main()
