"""Mutations: the only way a document changes, and their static validation.

Everything that can be checked without the current document is checked here, at the edge, so that
a request with any bad mutation is refused whole (4xx, nothing applied) before it reaches a store.
What depends on the stored document (``If-Match``, the collection schema) is checked when applied.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

from breakwater.core import codec
from breakwater.core.errors import PayloadTooLarge, ValidationError
from breakwater.core.limits import Limits
from breakwater.core.records import record

OPS = ("set", "patch", "delete", "increment")
COLLECTION_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$", re.ASCII)
ID_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@~+=-]{0,255}$", re.ASCII)
MUTATION_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:~-]{1,128}$", re.ASCII)
FIELD_PATTERN = re.compile(r"^[^\x00-\x1f]{1,256}$", re.ASCII)
MUTATION_FIELDS = frozenset(("mutation_id", "collection", "id", "op", "data", "hlc", "if_match"))
VERSION_PATTERN = re.compile(r"^[0-9a-f]{20}$", re.ASCII)


class WriteGuard(Protocol):
    """Access control of one write, run by the engine inside the write transaction.

    Because it runs there, it sees exactly the state it guards (no check-then-write race).
    ``None`` stands for a document that is absent or deleted. Either method raises a
    :class:`~breakwater.core.errors.BreakwaterError` (``forbidden``) to reject the mutation.
    """

    def prepare(
        self, before: dict[str, Any] | None, op: str, data: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """The data to apply: ``data`` with server-owned fields filled in or refused."""

    def check(self, before: dict[str, Any] | None, after: dict[str, Any] | None, op: str) -> None:
        """Refuse the write unless the caller may turn ``before`` into ``after``."""


@record
class Mutation:
    """One client-made change. ``hlc`` is ``None`` until a node stamps it (simple clients).

    ``if_match`` lists the versions (``*``: any live version) the document may have; ``must_exist``
    makes a missing document a ``not_found`` rejection (REST ``PATCH`` and ``DELETE``);
    ``guard`` (set by the server from the caller's access rules) may reject it on its content.
    """

    mutation_id: str
    collection: str
    doc_id: str
    op: str
    data: dict[str, Any] | None
    hlc: str | None = None
    if_match: tuple[str, ...] | None = None
    must_exist: bool = False
    guard: WriteGuard | None = None


def _shown(value: Any) -> str:
    """``value`` for an error message: short strings and scalars as is, arrays and objects by kind.

    Never ``repr`` an untrusted JSON value whole: a list nested a thousand deep makes ``repr``
    hit the recursion limit, and a megabyte string would be echoed back in the problem.
    """
    if isinstance(value, str):
        return repr(value) if len(value) <= 80 else f"{value[:80]!r}..."
    if isinstance(value, list):
        return "[...]"
    if isinstance(value, dict):
        return "{...}"
    return repr(value)


def check_collection(name: Any) -> str:
    """Return ``name`` if it is a valid collection name."""
    if not isinstance(name, str) or not COLLECTION_PATTERN.fullmatch(name):
        raise ValidationError(
            f"collection {_shown(name)} must match {COLLECTION_PATTERN.pattern}",
            field="collection",
        )
    return name


def check_doc_id(doc_id: Any) -> str:
    """Return ``doc_id`` if it is a valid document id."""
    if not isinstance(doc_id, str) or not ID_PATTERN.fullmatch(doc_id):
        raise ValidationError(f"id {_shown(doc_id)} must match {ID_PATTERN.pattern}", field="id")
    return doc_id


def check_version(value: Any) -> str:
    """Return a mutation's ``if_match``: a document version or ``*``; refuse anything else."""
    if not isinstance(value, str) or not (value == "*" or VERSION_PATTERN.fullmatch(value)):
        raise ValidationError(
            f"if_match {_shown(value)} is not a document version", field="if_match"
        )
    return value


def check_depth(value: Any, max_depth: int) -> None:
    """Refuse JSON nested deeper than ``max_depth`` (iteratively: no recursion limit to hit)."""
    if not isinstance(value, dict | list):
        return
    # Only containers go on the stack: the scalars of a flat document cost one check each.
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth or (node and depth == max_depth):  # members are a level deeper
            raise ValidationError(f"document is nested deeper than {max_depth} levels")
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))


def check_document(data: Any, limits: Limits) -> dict[str, Any]:
    """Validate a whole document body: an object, within size and depth, with sane field names."""
    if not isinstance(data, dict):
        raise ValidationError("a document must be a JSON object", field="data")
    for name in data:
        if not FIELD_PATTERN.fullmatch(name):
            raise ValidationError(
                f"field name {_shown(name)} is empty, too long or has control chars"
            )
    # Depth first: the codec refuses to encode very deep values, so measuring the size of an
    # over-deep document would fail with an encoder error instead of this 400.
    check_depth(data, limits.max_depth)
    try:
        size = len(codec.dumps(data))
    except TypeError as exc:  # the codec's encode error; reachable only if max_depth is huge
        raise ValidationError("document is nested too deeply to encode", field="data") from exc
    if size > limits.max_document_bytes:
        raise PayloadTooLarge(
            f"document is {size} bytes; the limit is {limits.max_document_bytes}",
            limit=limits.max_document_bytes,
        )
    return data


def _check_increment(data: dict[str, Any]) -> None:
    if not data:
        raise ValidationError("increment needs at least one field", field="data")
    for name, amount in data.items():
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            raise ValidationError(f"increment of {_shown(name)} must be a number", field="data")


def _joined(pattern: str) -> re.Pattern[str]:
    """``pattern`` (one name, anchored) as a pattern for names each followed by a newline."""
    return re.compile(f"(?:{pattern.removeprefix('^').removesuffix('$')}\n)*", re.ASCII)


# None of these patterns accepts a newline, so names joined with newlines all match theirs
# exactly when the joined text matches and holds no newline but the separators.
_JOINED_IDS = _joined(ID_PATTERN.pattern)
_JOINED_COLLECTIONS = _joined(COLLECTION_PATTERN.pattern)
_JOINED_MUTATION_IDS = _joined(MUTATION_ID_PATTERN.pattern)
_JOINED_FIELDS = _joined(FIELD_PATTERN.pattern)


def _all_match(joined: re.Pattern[str], names: list[Any]) -> bool:
    """Whether every one of ``names`` is a string that the joined ``pattern`` accepts."""
    if not names:
        return True
    try:
        text = "\n".join(names) + "\n"
    except TypeError:  # a name that is not a string
        return False
    return text.count("\n") == len(names) and joined.fullmatch(text) is not None


def parse_valid_mutations(raws: list[Any], limits: Limits) -> list[Mutation] | None:
    """The mutations of ``raws`` if :func:`parse_mutation` accepts every one of them, else None.

    A push of a hundred mutations paid for a hundred of each name check; here each kind of
    name is checked by one regular expression over all of them joined. It decides nothing
    itself: on None the caller parses each mutation with :func:`parse_mutation`, which names
    the first problem, so the errors and their order stay that function's.
    """
    mutations: list[Mutation] = []
    mutation_ids: list[Any] = []
    collections: list[Any] = []
    doc_ids: list[Any] = []
    fields: list[Any] = []
    documents: list[dict[str, Any]] = []
    for raw in raws:
        if type(raw) is not dict or not raw.keys() <= MUTATION_FIELDS:
            return None
        get: Callable[[str], Any] = raw.get
        op = get("op")
        data = get("data")
        if op == "delete":
            if data is not None:
                return None
        elif op == "set" or op == "patch" or op == "increment":
            if type(data) is not dict or not _within_depth(data, limits.max_depth):
                return None
            if op == "increment" and not _valid_increment(data):
                return None
            fields.extend(data)
            documents.append(data)
        else:
            return None
        hlc = get("hlc")
        if hlc is not None and type(hlc) is not str:
            return None
        if_match = get("if_match")
        if if_match is not None and not _valid_version(if_match):
            return None
        mutation_id, collection, doc_id = get("mutation_id"), get("collection"), get("id")
        mutation_ids.append(mutation_id)
        collections.append(collection)
        doc_ids.append(doc_id)
        mutations.append(
            Mutation(
                mutation_id=mutation_id,
                collection=collection,
                doc_id=doc_id,
                op=op,
                data=data,
                hlc=hlc,
                if_match=None if if_match is None else (if_match,),
            )
        )
    valid = (
        _all_match(_JOINED_MUTATION_IDS, mutation_ids)
        and _all_match(_JOINED_COLLECTIONS, collections)
        and _all_match(_JOINED_IDS, doc_ids)
        and _all_match(_JOINED_FIELDS, fields)
        and _within_size(documents, limits.max_document_bytes)
    )
    return mutations if valid else None


def _within_size(documents: list[dict[str, Any]], max_bytes: int) -> bool:
    """Whether each document encodes within ``max_bytes``."""
    try:
        return all(len(codec.dumps(document)) <= max_bytes for document in documents)
    except TypeError:  # too deep for the encoder
        return False


def _within_depth(data: dict[str, Any], max_depth: int) -> bool:
    try:
        check_depth(data, max_depth)
    except ValidationError:
        return False
    return True


def _valid_increment(data: dict[str, Any]) -> bool:
    try:
        _check_increment(data)
    except ValidationError:
        return False
    return True


def _valid_version(value: Any) -> bool:
    try:
        check_version(value)
    except ValidationError:
        return False
    return True


def parse_mutation(raw: Any, limits: Limits) -> Mutation:
    """Build a :class:`Mutation` from its wire form, or raise a 4xx error naming what is wrong."""
    if not isinstance(raw, dict):
        raise ValidationError("a mutation must be a JSON object")
    if not raw.keys() <= MUTATION_FIELDS:
        raise ValidationError(f"unknown mutation fields: {sorted(set(raw) - MUTATION_FIELDS)}")
    mutation_id = raw.get("mutation_id")
    if not isinstance(mutation_id, str) or not MUTATION_ID_PATTERN.fullmatch(mutation_id):
        raise ValidationError(
            f"mutation_id must match {MUTATION_ID_PATTERN.pattern}", field="mutation_id"
        )
    op = raw.get("op")
    if op not in OPS:
        raise ValidationError(f"op {_shown(op)} is not one of {list(OPS)}", field="op")
    data = raw.get("data")
    if op == "delete":
        if data is not None:
            raise ValidationError("delete takes no data", field="data")
    else:
        data = check_document(data, limits)
        if op == "increment":
            _check_increment(data)
    hlc = raw.get("hlc")
    if hlc is not None and not isinstance(hlc, str):
        raise ValidationError("hlc must be a string", field="hlc")
    if_match = raw.get("if_match")
    return Mutation(
        mutation_id=mutation_id,
        collection=check_collection(raw.get("collection")),
        doc_id=check_doc_id(raw.get("id")),
        op=op,
        data=data,
        hlc=hlc,
        if_match=None if if_match is None else (check_version(if_match),),
    )
