"""Invariant I7: bad input gets a clear 4xx problem+json and changes nothing; never a 5xx."""

from __future__ import annotations

import base64
import gzip
import re
import time
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from breakwater.core import codec
from tests.conftest import origin_of

PUSH = "/v1/sync/push"
PULL = "/v1/sync/pull"
SSE = "/v1/realtime/sse"
DOCS = "/v1/collections/todos/docs"
STRICT = "/v1/collections/strict/docs"
PROBLEM_KEYS = ("type", "title", "status", "detail")
STAMP = re.compile(r"^\d{13}-\d{4}-[A-Za-z0-9_.~:-]{1,64}$")
MakeClient = Callable[..., Any]

MAX_BODY = 4096
MAX_DOCUMENT = 512
MAX_QUERY = 200
MAX_PULL = 200
LIMITS_TOML = f"""
[limits]
max_body_bytes = {MAX_BODY}
max_document_bytes = {MAX_DOCUMENT}
max_mutations_per_push = 5
max_depth = 6
max_query_limit = {MAX_QUERY}
max_pull_limit = {MAX_PULL}
max_wait_seconds = 10

[collections.strict]
schema = {{type="object", required=["title"], properties={{title={{type="string"}}}}}}
"""
STALE_VERSION = '"00000000000000000000"'
V = "validation_error"
TOO_LARGE = "payload_too_large"


def mut(**changes: Any) -> dict[str, Any]:
    """A valid mutation with ``changes`` applied; a value of ``...`` removes the key."""
    body: dict[str, Any] = {
        "mutation_id": "bad-1",
        "collection": "todos",
        "id": "t1",
        "op": "set",
        "data": {"title": "changed"},
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not ...}


def pushing(*mutations: Any) -> dict[str, Any]:
    """A push body."""
    return {"client_id": "phone-1", "mutations": list(mutations)}


def nest(levels: int) -> dict[str, Any]:
    """An object nested ``levels`` deep."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def deep_array(levels: int) -> bytes:
    """A JSON array nested ``levels`` deep (too deep for the codec to encode, so built by hand)."""
    return b"[" * levels + b"]" * levels


def raw_push(field_name: str, value: bytes) -> bytes:
    """A push body whose one mutation has ``field_name`` set to the raw JSON ``value``."""
    fields = {
        b"mutation_id": b'"bad-1"',
        b"collection": b'"todos"',
        b"id": b'"t1"',
        b"op": b'"set"',
        b"data": b'{"title": "changed"}',
    }
    fields[field_name.encode()] = value
    mutation = b",".join(b'"' + key + b'":' + raw for key, raw in fields.items())
    return b'{"mutations": [{' + mutation + b"}]}"


def b64(raw: bytes) -> str:
    """URL-safe base64 without padding, like cursors and page tokens."""
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_of(raw: bytes) -> str:
    """A cursor with the right prefix around arbitrary bytes."""
    return "c1." + b64(raw)


def future_stamp(ahead_ms: int) -> str:
    """An HLC stamp ``ahead_ms`` ahead of now."""
    return f"{int(time.time() * 1000) + ahead_ms:013d}-0000-devA"


@dataclass(frozen=True)
class Bad:
    """One bad request and the problem it must get."""

    name: str
    method: str
    path: str
    status: int
    type: str
    json: Any = None  # a callable is called at send time (for stamps relative to now)
    content: bytes | None = None
    stream: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str | bytes] = field(default_factory=dict)
    keys: Sequence[str] = ()
    says: str = ""  # a piece of the detail, to show the request failed for the intended reason

    def param(self) -> Any:
        """This case as a pytest parameter named after it."""
        return pytest.param(self, id=self.name)


def _get(name: str, path: str, status: int, type_: str, *, says: str, **params: Any) -> Bad:
    return Bad(name, "GET", path, status, type_, params=params, says=says)


def _push(name: str, body: Any, status: int = 400, type_: str = V) -> Bad:
    return Bad(name, "POST", PUSH, status, type_, json=body)


def _put(name: str, body: Any, status: int = 400, type_: str = V) -> Bad:
    return Bad(name, "PUT", f"{DOCS}/t1", status, type_, json=body)


def _raw_put(name: str, content: bytes, headers: dict[str, str | bytes] | None = None) -> Bad:
    return Bad(name, "PUT", f"{DOCS}/t1", 400, V, content=content, headers=headers or {})


PADDING = "x" * (MAX_BODY + 100)

BAD_INPUTS: list[Bad] = [
    # -- bodies: syntax, emptiness, shape -----------------------------------------------------
    _raw_put("put malformed json", b'{"title": '),
    _raw_put("put empty body", b""),
    _raw_put("put json null", b"null"),
    _raw_put("put invalid utf-8", b'{"title": "\xff"}'),
    _raw_put("put lone surrogate", b'{"title": "\\ud800"}'),
    _raw_put("put trailing garbage", b'{"title": "a"} x'),
    _raw_put("put NaN", b'{"n": NaN}'),
    _raw_put("put form data", b"title=a"),
    _put("put body is an array", [{"title": "a"}]),
    _put("put body is a string", "title"),
    _put("put body is a number", 42),
    Bad("patch body is an array", "PATCH", f"{DOCS}/t1", 400, V, json=[1]),
    Bad("push malformed json", "POST", PUSH, 400, V, content=b'{"mutations": [}'),
    Bad("push empty body", "POST", PUSH, 400, V, content=b""),
    _push("push body is an array", [mut()]),
    _push("push body is a string", "mutations"),
    Bad("push json null", "POST", PUSH, 400, V, content=b"null"),
    # -- duplicate keys (one parser keeps the first, another the last) -------------------------
    _raw_put("put duplicate field", b'{"title": "a", "title": "b"}'),
    Bad(
        "push two mutation ids",
        "POST",
        PUSH,
        400,
        V,
        content=b'{"mutations":[{"mutation_id":"m-a","mutation_id":"m-b","collection":"todos",'
        b'"id":"t1","op":"set","data":{"title":"twice"}}]}',
        says="'mutation_id' twice",
    ),
    Bad(
        "push duplicate key written as an escape",
        "POST",
        PUSH,
        400,
        V,
        content=b'{"mutations":[{"mutation_id":"m-a","collection":"todos","id":"t1","op":"set",'
        b'"data":{"title":"x","\\u0074itle":"y"}}]}',
        says="'title' twice",
    ),
    Bad(
        "push duplicate top-level key",
        "POST",
        PUSH,
        400,
        V,
        content=b'{"mutations":[],"mutations":[{"mutation_id":"m","collection":"todos",'
        b'"id":"t1","op":"delete"}]}',
        says="twice",
    ),
    _get(
        "pull cursor with a duplicate origin",
        PULL,
        400,
        V,
        cursor=cursor_of(b'{"local":1,"local":9}'),
        says="cursor",
    ),
    # -- content encodings (the node decodes none) ---------------------------------------------
    Bad(
        "put gzip body",
        "PUT",
        f"{DOCS}/t1",
        415,
        "unsupported_media_type",
        content=gzip.compress(b'{"title": "zipped"}'),
        headers={"Content-Encoding": "gzip"},
        says="'gzip' is not supported",
    ),
    Bad(
        "push gzip body",
        "POST",
        PUSH,
        415,
        "unsupported_media_type",
        content=gzip.compress(codec.dumps(pushing(mut()))),
        headers={"Content-Encoding": "gzip"},
        says="'gzip' is not supported",
    ),
    Bad(
        "push br after identity",
        "POST",
        PUSH,
        415,
        "unsupported_media_type",
        content=codec.dumps(pushing(mut())),
        headers={"Content-Encoding": "identity, br"},
        says="'br' is not supported",
    ),
    Bad(
        "signup deflate body",
        "POST",
        "/v1/auth/signup",
        415,
        "unsupported_media_type",
        content=zlib.compress(b'{"email": "z@example.com", "password": "pppppppppppp"}'),
        headers={"Content-Encoding": "deflate"},
        says="'deflate' is not supported",
    ),
    # -- sizes --------------------------------------------------------------------------------
    _put("put body over max_body_bytes", {"pad": PADDING}, 413, TOO_LARGE),
    Bad(
        "put streamed body without length", "PUT", f"{DOCS}/t1", 413, TOO_LARGE, stream=2 * MAX_BODY
    ),
    Bad(
        "put streamed body with a lying length",
        "PUT",
        f"{DOCS}/t1",
        413,
        TOO_LARGE,
        stream=2 * MAX_BODY,
        headers={"Content-Length": "20"},
    ),
    Bad(
        "put declared length over the limit",
        "PUT",
        f"{DOCS}/t1",
        413,
        TOO_LARGE,
        content=b'{"a": 1}',
        headers={"Content-Length": str(MAX_BODY + 1)},
    ),
    _raw_put("put content-length not a number", b'{"a": 1}', {"Content-Length": "ten"}),
    _raw_put("put content-length non-ascii digit", b'{"a": 1}', {"Content-Length": b"\xb2"}),
    _push("push body over max_body_bytes", pushing(mut(data={"pad": PADDING})), 413, TOO_LARGE),
    Bad("push streamed body over the limit", "POST", PUSH, 413, TOO_LARGE, stream=2 * MAX_BODY),
    _put("put document over max_document_bytes", {"pad": "x" * 1000}, 413, TOO_LARGE),
    _push(
        "push document over max_document_bytes",
        pushing(mut(data={"p": "x" * 1000})),
        413,
        TOO_LARGE,
    ),
    Bad(
        "patch making the document too large",
        "PATCH",
        f"{DOCS}/t1",
        413,
        TOO_LARGE,
        json={"more": "y" * 300},
    ),
    _push(
        "push too many mutations",
        pushing(*(mut(mutation_id=f"m{i}") for i in range(6))),
        413,
        TOO_LARGE,
    ),
    _put("put nested deeper than max_depth", nest(10)),
    _raw_put("put nested 300 deep", b'{"a":' * 300 + b"1" + b"}" * 300),
    _raw_put("put arrays nested 1000 deep", b'{"a":' + deep_array(1000) + b"}"),
    _raw_put("put nested past the parser's limit", b'{"a":' + deep_array(1100) + b"}"),
    Bad("push op nested 1000 deep", "POST", PUSH, 400, V, content=raw_push("op", deep_array(1000))),
    Bad(
        "push collection nested 1000 deep",
        "POST",
        PUSH,
        400,
        V,
        content=raw_push("collection", deep_array(1000)),
    ),
    Bad("push id nested 1000 deep", "POST", PUSH, 400, V, content=raw_push("id", deep_array(1000))),
    Bad(
        "push data nested 1000 deep",
        "POST",
        PUSH,
        400,
        V,
        content=raw_push("data", b'{"a":' + deep_array(1000) + b"}"),
    ),
    _push("push data nested deeper than max_depth", pushing(mut(data=nest(10)))),
    _put("put empty field name", {"": 1}),
    _put("put field name with control char", {"a\u0001b": 1}),
    _put("put field name too long", {"f" * 257: 1}),
    # -- document REST: collection, id, headers -----------------------------------------------
    Bad("put bad collection name", "PUT", "/v1/collections/bad-name/docs/x", 400, V, json={}),
    Bad(
        "put collection starting with a digit",
        "PUT",
        "/v1/collections/1abc/docs/x",
        400,
        V,
        json={},
    ),
    Bad(
        "put collection name too long", "PUT", f"/v1/collections/{'c' * 65}/docs/x", 400, V, json={}
    ),
    Bad(
        "put unicode collection name",
        "PUT",
        "/v1/collections/%C3%A9t%C3%A9/docs/x",
        400,
        V,
        json={},
    ),
    Bad("get bad collection name", "GET", "/v1/collections/a.b/docs/x", 400, V),
    Bad("put id with ../", "PUT", f"{DOCS}/..%2Fx", 404, "not_found", json={}),
    Bad("put id ..", "PUT", f"{DOCS}/%2E%2E", 400, V, json={}),
    Bad("put empty id", "PUT", f"{DOCS}/", 404, "not_found", json={}),
    Bad("put id of 300 chars", "PUT", f"{DOCS}/{'i' * 300}", 400, V, json={}),
    Bad("put unicode id", "PUT", f"{DOCS}/%C3%A9", 400, V, json={}),
    Bad("put id with a space", "PUT", f"{DOCS}/a%20b", 400, V, json={}),
    Bad("put id starting with a dash", "PUT", f"{DOCS}/-x", 400, V, json={}),
    Bad("put id with a trailing newline", "PUT", f"{DOCS}/t1%0A", 400, V, json={}),
    Bad(
        "put collection with a trailing newline",
        "PUT",
        "/v1/collections/todos%0A/docs/x",
        400,
        V,
        json={},
    ),
    _put("put field name with a trailing newline", {"title\n": "x"}),
    Bad("get id of 300 chars", "GET", f"{DOCS}/{'i' * 300}", 400, V),
    Bad("delete unicode id", "DELETE", f"{DOCS}/%E2%98%83", 400, V),
    Bad("put bad if-match", "PUT", f"{DOCS}/t1", 400, V, json={}, headers={"If-Match": "nope"}),
    Bad("put empty if-match", "PUT", f"{DOCS}/t1", 400, V, json={}, headers={"If-Match": ""}),
    Bad(
        "put if-match unterminated quote",
        "PUT",
        f"{DOCS}/t1",
        400,
        V,
        json={},
        headers={"If-Match": '"abc'},
    ),
    Bad("delete bad if-match", "DELETE", f"{DOCS}/t1", 400, V, headers={"If-Match": "W/x"}),
    Bad(
        "put stale if-match",
        "PUT",
        f"{DOCS}/t1",
        412,
        "precondition_failed",
        json={"title": "lost"},
        headers={"If-Match": STALE_VERSION},
        keys=("current_version",),
    ),
    Bad(
        "delete stale if-match",
        "DELETE",
        f"{DOCS}/t1",
        412,
        "precondition_failed",
        headers={"If-Match": STALE_VERSION},
    ),
    Bad(
        "put if-match * on a missing document",
        "PUT",
        f"{DOCS}/new",
        412,
        "precondition_failed",
        json={},
        headers={"If-Match": "*"},
    ),
    Bad(
        "put idempotency-key with a space",
        "PUT",
        f"{DOCS}/t1",
        400,
        V,
        json={},
        headers={"Idempotency-Key": "a b"},
    ),
    Bad(
        "put idempotency-key too long",
        "PUT",
        f"{DOCS}/t1",
        400,
        V,
        json={},
        headers={"Idempotency-Key": "k" * 129},
    ),
    Bad(
        "delete empty idempotency-key",
        "DELETE",
        f"{DOCS}/t1",
        400,
        V,
        headers={"Idempotency-Key": ""},
    ),
    Bad("patch a missing document", "PATCH", f"{DOCS}/nope", 404, "not_found", json={"a": 1}),
    Bad("patch a deleted document", "PATCH", f"{DOCS}/gone", 404, "not_found", json={"a": 1}),
    Bad("delete a missing document", "DELETE", f"{DOCS}/nope", 404, "not_found"),
    Bad("delete a deleted document", "DELETE", f"{DOCS}/gone", 404, "not_found"),
    Bad("get a missing document", "GET", f"{DOCS}/nope", 404, "not_found"),
    Bad(
        "put schema violation",
        "PUT",
        f"{STRICT}/s1",
        422,
        "schema_violation",
        json={"title": 5},
        keys=("errors",),
    ),
    Bad("put missing required field", "PUT", f"{STRICT}/new", 422, "schema_violation", json={}),
    Bad(
        "patch removing a required field",
        "PATCH",
        f"{STRICT}/s1",
        422,
        "schema_violation",
        json={"title": None},
    ),
    # -- push: every field, wrong ----------------------------------------------------------------
    _push("push unknown top-level field", {**pushing(mut()), "extra": 1}),
    _push("push client_id a number", {**pushing(mut()), "client_id": 5}),
    _push("push client_id with a space", {**pushing(mut()), "client_id": "my phone"}),
    _push("push mutations missing", {"client_id": "phone-1"}),
    _push("push mutations empty", pushing()),
    _push("push mutations an object", {"mutations": {"0": mut()}}),
    _push("push mutations a string", {"mutations": "set"}),
    _push("push mutation a string", pushing("set t1")),
    _push("push mutation null", pushing(None)),
    _push("push mutation unknown field", pushing(mut(when="now"))),
    _push("push mutation_id missing", pushing(mut(mutation_id=...))),
    _push("push mutation_id a number", pushing(mut(mutation_id=7))),
    _push("push mutation_id empty", pushing(mut(mutation_id=""))),
    _push("push mutation_id with a slash", pushing(mut(mutation_id="a/b"))),
    _push("push mutation_id too long", pushing(mut(mutation_id="m" * 129))),
    _push("push collection missing", pushing(mut(collection=...))),
    _push("push collection a number", pushing(mut(collection=3))),
    _push("push collection bad name", pushing(mut(collection="to-dos"))),
    _push("push id missing", pushing(mut(id=...))),
    _push("push id a number", pushing(mut(id=1))),
    _push("push id empty", pushing(mut(id=""))),
    _push("push id ../x", pushing(mut(id="../x"))),
    _push("push id of 300 chars", pushing(mut(id="i" * 300))),
    _push("push unicode id", pushing(mut(id="idé"))),
    _push("push id with a trailing newline", pushing(mut(id="t1\n"))),
    _push("push collection with a trailing newline", pushing(mut(collection="todos\n"))),
    _push("push mutation_id with a trailing newline", pushing(mut(mutation_id="m1\n"))),
    _push("push client_id with a trailing newline", {**pushing(mut()), "client_id": "phone\n"}),
    Bad(
        "push hlc with a trailing newline",
        "POST",
        PUSH,
        400,
        V,
        json=lambda: pushing(mut(hlc=future_stamp(0) + "\n")),
        says="hlc",
    ),
    _push("push op missing", pushing(mut(op=...))),
    _push("push unknown op", pushing(mut(op="upsert"))),
    _push("push op a number", pushing(mut(op=1))),
    _push("push op a list", pushing(mut(op=["set"]))),
    _push("push set without data", pushing(mut(data=...))),
    _push("push set data a list", pushing(mut(data=[1, 2]))),
    _push("push patch data a string", pushing(mut(op="patch", data="title"))),
    _push("push delete with data", pushing(mut(op="delete", data={"title": "x"}))),
    _push("push increment of a string", pushing(mut(op="increment", data={"n": "1"}))),
    _push("push increment of a bool", pushing(mut(op="increment", data={"n": True}))),
    _push("push increment of null", pushing(mut(op="increment", data={"n": None}))),
    _push("push increment of nothing", pushing(mut(op="increment", data={}))),
    _push("push hlc a number", pushing(mut(hlc=1700000000000))),
    _push("push hlc malformed", pushing(mut(hlc="2024-01-01T00:00:00Z"))),
    _push("push hlc short wall", pushing(mut(hlc="17000-0000-devA"))),
    _push("push hlc bad node", pushing(mut(hlc="1700000000000-0000-dev A"))),
    Bad(
        "push hlc far in the future",
        "POST",
        PUSH,
        400,
        "clock_skew",
        json=lambda: pushing(mut(hlc=future_stamp(3_600_000))),
        keys=("hlc",),
    ),
    _push("push if_match a number", pushing(mut(if_match=1))),
    _push("push if_match malformed", pushing(mut(if_match="v1"))),
    _push("push valid then invalid is refused whole", pushing(mut(), mut(mutation_id="b", op="x"))),
    Bad(
        "push valid then skewed is refused whole",
        "POST",
        PUSH,
        400,
        "clock_skew",
        json=lambda: pushing(mut(), mut(mutation_id="b", hlc=future_stamp(120_000))),
    ),
    # -- pull ---------------------------------------------------------------------------------
    _get("pull garbage cursor", PULL, 400, V, cursor="garbage", says="cursor"),
    _get(
        "pull cursor with a wrong prefix",
        PULL,
        400,
        V,
        cursor="c2." + b64(b'{"local":1}'),
        says="cursor",
    ),
    _get("pull cursor corrupt base64", PULL, 400, V, cursor="c1.!!!!", says="cursor"),
    _get("pull cursor not json", PULL, 400, V, cursor=cursor_of(b"\xff\xfe"), says="cursor"),
    _get("pull cursor not an object", PULL, 400, V, cursor=cursor_of(b"[1]"), says="cursor"),
    _get(
        "pull cursor negative seq", PULL, 400, V, cursor=cursor_of(b'{"local":-1}'), says="cursor"
    ),
    _get("pull cursor float seq", PULL, 400, V, cursor=cursor_of(b'{"local":1.5}'), says="cursor"),
    _get("pull cursor bool seq", PULL, 400, V, cursor=cursor_of(b'{"local":true}'), says="cursor"),
    _get(
        "pull cursor seq past 2**63",
        PULL,
        400,
        V,
        cursor=cursor_of(b'{"local":9223372036854775808}'),
        says="cursor",
    ),
    _get(
        "pull cursor bad origin", PULL, 400, V, cursor=cursor_of(b'{"bad origin":1}'), says="cursor"
    ),
    Bad(
        "pull cursor origin with a trailing newline",
        "GET",
        PULL,
        400,
        V,
        params={"cursor": cursor_of(b'{"local\\n":1}')},
        says="cursor",
    ),
    _get("pull cursor too long", PULL, 400, V, cursor="c1." + "A" * 17000, says="cursor"),
    _get("pull unicode cursor", PULL, 400, V, cursor="c1.\u00e9", says="cursor"),
    _get("pull limit 0", PULL, 400, V, limit=0, says="limit"),
    _get("pull limit too big", PULL, 400, V, limit=MAX_PULL + 1, says="limit"),
    _get("pull limit negative", PULL, 400, V, limit=-5, says="limit"),
    _get("pull limit not a number", PULL, 400, V, limit="ten", says="limit"),
    _get("pull limit a float", PULL, 400, V, limit="1.5", says="limit"),
    _get("pull wait negative", PULL, 400, V, wait=-1, says="wait"),
    _get("pull wait too big", PULL, 400, V, wait=11, says="wait"),
    _get("pull wait not a number", PULL, 400, V, wait="soon", says="wait"),
    _get("pull wait nan", PULL, 400, V, wait="nan", says="wait"),
    _get("pull wait inf", PULL, 400, V, wait="inf", says="wait"),
    _get("pull bad collection", PULL, 400, V, collections="todos,bad-name", says="collection"),
    _get("pull empty collection name", PULL, 400, V, collections="todos,,x", says="empty name"),
    _get("pull trailing comma", PULL, 400, V, collections="todos,", says="empty name"),
    _get("pull only commas", PULL, 400, V, collections=",", says="empty name"),
    _get("pull blank name", PULL, 400, V, collections="todos, ,x", says="empty name"),
    _get("sse empty collection name", SSE, 400, V, collections="todos,,x", says="empty name"),
    _get(
        "pull too many collections",
        PULL,
        400,
        V,
        collections=",".join(f"c{i}" for i in range(65)),
        says="collections per pull",
    ),
    _get(
        "pull include_state not a bool", PULL, 400, V, include_state="maybe", says="include_state"
    ),
    # -- queries ------------------------------------------------------------------------------
    _get("query where without operator", DOCS, 400, V, where="title", says="FIELD:OP:VALUE"),
    _get("query where without value", DOCS, 400, V, where="title:eq", says="FIELD:OP:VALUE"),
    _get("query unknown operator", DOCS, 400, V, where="title:like:a%", says="operator"),
    _get("query object as value", DOCS, 400, V, where='title:eq:{"a":1}', says="filter values"),
    _get("query array as value", DOCS, 400, V, where="title:eq:[1]", says="filter values"),
    _get("query nested field", DOCS, 400, V, where="a.b:eq:1", says="queryable field"),
    _get(
        "query field with a trailing newline",
        DOCS,
        400,
        V,
        where="title\n:eq:one",
        says="queryable field",
    ),
    _get(
        "query order with a trailing newline", DOCS, 400, V, order="title\n", says="queryable field"
    ),
    _get("query field with a digit first", DOCS, 400, V, where="1a:eq:1", says="queryable field"),
    _get("query empty field", DOCS, 400, V, where=":eq:1", says="queryable field"),
    _get("query null with lt", DOCS, 400, V, where="n:lt:null", says="null can only"),
    _get(
        "query too many filters",
        DOCS,
        400,
        V,
        where=[f"f{i}:eq:1" for i in range(17)],
        says="at most 16",
    ),
    _get("query bad order field", DOCS, 400, V, order="a-b", says="queryable field"),
    _get("query empty order", DOCS, 400, V, order="", says="queryable field"),
    _get("query order of a dash", DOCS, 400, V, order="-", says="queryable field"),
    _get("query order double dash", DOCS, 400, V, order="--n", says="queryable field"),
    _get("query limit 0", DOCS, 400, V, limit=0, says="limit"),
    _get("query limit too big", DOCS, 400, V, limit=MAX_QUERY + 1, says="limit"),
    _get("query limit not a number", DOCS, 400, V, limit="all", says="limit"),
    _get("query garbage after", DOCS, 400, V, after="!!!", says="page token"),
    _get("query after not json", DOCS, 400, V, after=b64(b"\xff"), says="page token"),
    _get("query after an object", DOCS, 400, V, after=b64(b'{"a":1}'), says="page token"),
    _get("query after without id", DOCS, 400, V, after=b64(b"[1]"), says="page token"),
    _get("query after with a numeric id", DOCS, 400, V, after=b64(b"[1,2]"), says="page token"),
    _get("query after with a list value", DOCS, 400, V, after=b64(b'[[1],"a"]'), says="page token"),
    _get("query unicode after", DOCS, 400, V, after="\u00e9\u00e9", says="page token"),
    _get("query bad collection", "/v1/collections/no-such/docs", 400, V, says="collection"),
    # -- routes -------------------------------------------------------------------------------
    _get("unknown route", "/v1/nothing", 404, "not_found", says="Not Found"),
    _get("unknown version prefix", "/v2/sync/pull", 404, "not_found", says="Not Found"),
    _get("collection without docs", "/v1/collections/todos", 404, "not_found", says="Not Found"),
    _get("query with a trailing slash", f"{DOCS}/", 404, "not_found", says="Not Found"),
    Bad("post to a document", "POST", f"{DOCS}/t1", 405, "method_not_allowed", json={}),
    Bad("get the push endpoint", "GET", PUSH, 405, "method_not_allowed"),
    Bad("put the pull endpoint", "PUT", PULL, 405, "method_not_allowed", json={}),
    Bad("delete a query", "DELETE", DOCS, 405, "method_not_allowed"),
]


async def _chunks(size: int) -> AsyncIterator[bytes]:
    """A JSON body of about ``size`` bytes, streamed in small chunks."""
    body = b'{"pad": "' + b"x" * size + b'"}'
    for start in range(0, len(body), 256):
        yield body[start : start + 256]


async def send(client: httpx.AsyncClient, bad: Bad) -> httpx.Response:
    """Send one bad request."""
    content: Any = bad.content
    if bad.stream is not None:
        content = _chunks(bad.stream)
    elif bad.json is not None:
        content = codec.dumps(bad.json() if callable(bad.json) else bad.json)
    # Raw header bytes, so that a value may hold what no well-behaved client would send.
    headers = [
        (name.encode(), value if isinstance(value, bytes) else value.encode())
        for name, value in bad.headers.items()
    ]
    return await client.request(
        bad.method, bad.path, content=content, params=bad.params, headers=headers
    )


async def seed(client: httpx.AsyncClient) -> None:
    """Live, deleted and counted documents for the bad requests to (fail to) change."""
    writes = [
        await client.put(f"{DOCS}/t1", json={"title": "one", "pad": "p" * 300}),
        await client.put(f"{STRICT}/s1", json={"title": "ok"}),
        await client.put(f"{DOCS}/gone", json={"title": "gone"}),
        await client.delete(f"{DOCS}/gone"),
        await client.post(
            PUSH,
            json=pushing(mut(mutation_id="inc", id="c1", op="increment", data={"n": 1})),
        ),
    ]
    assert all(w.status_code < 300 for w in writes), [w.text for w in writes]


async def snapshot(client: httpx.AsyncClient) -> dict[str, Any]:
    """The whole store as the feed shows it: every change with document state, and the head."""
    changes: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(1000):
        response = await client.get(
            PULL, params={"cursor": cursor, "limit": MAX_PULL, "include_state": "true"}
        )
        assert response.status_code == 200
        page = response.json()
        changes.extend(page["changes"])
        cursor = page["cursor"]
        if not page["has_more"]:
            return {"changes": changes, "stable": page["stable"]}
    raise AssertionError("the feed did not end")


def test_the_table_is_large_and_names_are_unique() -> None:
    """The I7 table holds at least 35 distinct bad inputs."""
    names = [bad.name for bad in BAD_INPUTS]
    assert len(names) >= 35
    assert len(names) == len(set(names))


@pytest.mark.parametrize("bad", [bad.param() for bad in BAD_INPUTS])
async def test_bad_input_gets_a_problem_and_changes_nothing(
    make_client: MakeClient, bad: Bad
) -> None:
    """A bad request gets its 4xx problem+json with the documented type and changes nothing."""
    client: httpx.AsyncClient = await make_client(LIMITS_TOML)
    await seed(client)
    before = await snapshot(client)

    response = await send(client, bad)

    assert response.status_code == bad.status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    for key in PROBLEM_KEYS:
        assert key in problem, f"problem lacks {key!r}: {problem}"
    assert problem["status"] == response.status_code
    assert problem["type"] == bad.type
    assert isinstance(problem["title"], str)
    assert problem["title"]
    assert isinstance(problem["detail"], str)
    assert problem["detail"]
    for key in bad.keys:
        assert key in problem, f"problem lacks {key!r}: {problem}"
    assert bad.says in problem["detail"]
    assert await snapshot(client) == before


async def test_no_bad_input_gets_a_5xx(make_client: MakeClient) -> None:
    """Every bad input of the table, sent to one node in turn, answers below 500."""
    client: httpx.AsyncClient = await make_client(LIMITS_TOML)
    await seed(client)
    app = client.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as raw:
        failures = []
        for bad in BAD_INPUTS:
            response = await send(raw, bad)
            if response.status_code >= 500:
                failures.append(f"{bad.name}: {response.status_code} {response.text}")
        assert failures == []
        assert (await raw.get("/readyz")).status_code == 200


async def test_clock_skew_names_the_node_hlc(make_client: MakeClient) -> None:
    """A clock_skew problem carries the node's own HLC (near now) so that a device can re-stamp."""
    client: httpx.AsyncClient = await make_client()
    response = await client.post(PUSH, json=pushing(mut(hlc=future_stamp(3_600_000))))
    assert response.status_code == 400
    problem = response.json()
    assert problem["type"] == "clock_skew"
    assert STAMP.match(problem["hlc"])
    assert abs(int(problem["hlc"][:13]) - time.time() * 1000) < 60_000
    assert problem["index"] == 0


async def test_an_hlc_within_the_skew_window_is_accepted(make_client: MakeClient) -> None:
    """A stamp a little ahead of the node (inside max_clock_skew) is not clock skew."""
    client: httpx.AsyncClient = await make_client()
    response = await client.post(PUSH, json=pushing(mut(hlc=future_stamp(5_000))))
    assert response.status_code == 200
    assert response.json()["results"][0]["status"] == "applied"


async def test_a_bad_mutation_names_its_index(make_client: MakeClient) -> None:
    """A refused push says which mutation was wrong."""
    client: httpx.AsyncClient = await make_client()
    body = pushing(mut(), mut(mutation_id="m2"), mut(mutation_id="m3", op="nope"))
    response = await client.post(PUSH, json=body)
    assert response.status_code == 400
    assert response.json()["index"] == 2
    assert response.json()["detail"].startswith("mutations[2]:")


@pytest.mark.parametrize(
    ("mutations", "expected"),
    [
        ([mut(hlc="SKEW"), mut(mutation_id="m2", op="nope")], (0, "clock_skew")),
        ([mut(op="nope"), mut(mutation_id="m2", hlc="SKEW")], (0, V)),
        ([mut(), mut(mutation_id="m2", hlc="SKEW")], (1, "clock_skew")),
    ],
)
async def test_a_push_is_refused_for_its_first_problem_in_order(
    make_client: MakeClient, mutations: list[dict[str, Any]], expected: tuple[int, str]
) -> None:
    """Whether a mutation is invalid or not admitted, the first one in order is named."""
    client: httpx.AsyncClient = await make_client()
    for mutation in mutations:
        if mutation.get("hlc") == "SKEW":
            mutation["hlc"] = future_stamp(3_600_000)
    response = await client.post(PUSH, json=pushing(*mutations))
    problem = response.json()
    assert (problem["index"], problem["type"]) == expected


async def test_limits_take_effect_only_above_their_value(make_client: MakeClient) -> None:
    """Exactly max_mutations_per_push mutations and a body just under the limit are accepted."""
    client: httpx.AsyncClient = await make_client(LIMITS_TOML)
    full = pushing(*(mut(mutation_id=f"m{i}", id=f"d{i}") for i in range(5)))
    assert (await client.post(PUSH, json=full)).status_code == 200
    near = {"pad": "x" * (MAX_DOCUMENT - 20)}
    assert len(codec.dumps(near)) <= MAX_DOCUMENT
    assert (await client.put(f"{DOCS}/near", json=near)).status_code == 201
    assert (await client.get(DOCS, params={"limit": MAX_QUERY})).status_code == 200
    assert (await client.get(PULL, params={"limit": MAX_PULL, "wait": 0})).status_code == 200


async def test_the_requests_the_table_varies_are_valid(make_client: MakeClient) -> None:
    """Without their one fault the table's requests succeed, so each case fails for its fault."""
    client: httpx.AsyncClient = await make_client(LIMITS_TOML)
    await seed(client)
    assert (await client.put(f"{DOCS}/t1", json={"title": "x"})).status_code == 200
    assert (await client.patch(f"{DOCS}/t1", json={"more": "y"})).status_code == 200
    assert (await client.put(f"{STRICT}/s1", json={"title": "fine"})).status_code == 200
    assert (await client.post(PUSH, json=pushing(mut()))).status_code == 200
    assert (await client.get(PULL)).status_code == 200
    cursor = cursor_of(codec.dumps({origin_of(client): 1}))  # the node's own origin
    assert (await client.get(PULL, params={"cursor": cursor})).status_code == 200
    assert (await client.get(DOCS)).status_code == 200
    query = {"where": "title:eq:one", "order": "-title", "after": b64(b'["z","a"]')}
    assert (await client.get(DOCS, params=query)).status_code == 200
    assert (await client.delete(f"{DOCS}/t1")).status_code == 200


@pytest.mark.parametrize(
    ("params", "field_name"),
    [
        ({"order": "a-b"}, "order"),
        ({"where": "a-b:eq:1"}, "where"),
        ({"after": "!!!"}, "after"),
        ({"limit": 0}, "limit"),
        ({"wait": -1}, "wait"),
        ({"cursor": "garbage"}, "cursor"),
    ],
)
async def test_a_bad_parameter_is_named_in_the_problem(
    client: httpx.AsyncClient, params: dict[str, Any], field_name: str
) -> None:
    """The problem's field names the query parameter that is wrong."""
    path = PULL if {"wait", "cursor"} & set(params) else DOCS
    response = await client.get(path, params=params)
    assert response.status_code == 400
    assert response.json()["field"] == field_name


async def test_an_identity_content_encoding_is_accepted(make_client: MakeClient) -> None:
    """``Content-Encoding: identity`` is no encoding: the write goes through."""
    client: httpx.AsyncClient = await make_client()
    response = await client.put(
        f"{DOCS}/plain", json={"title": "a"}, headers={"Content-Encoding": "Identity"}
    )
    assert response.status_code == 201
