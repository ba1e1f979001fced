"""Document bodies as a store keeps them: JSON text, or (SQLite) a zstd frame where that pays.

A realistic 1 KB document (prose, ids, numbers) takes about 0.6 of its size as a zstd frame, for
about 10 µs of the writer's CPU and 5 µs per read (ADR 0050); in SQLite, where the body is most
of a row, that is most of the bytes a document costs on disk. A body stays text when it is short
or shrinks by less than an eighth, and rows written as text (every row of a store made before
ADR 0050, and PostgreSQL's JSONB) read as before: readers tell the two apart by type and magic.

SQLite reads bodies inside SQL too (the queries' and configured indexes' ``json_extract``), so
every connection to a store file registers :func:`register`, and those expressions read
:data:`BODY_SQL` instead of the column.
"""

from __future__ import annotations

import sqlite3
import threading

import zstandard

MIN_BYTES = 128
"""Shorter bodies stay text: a frame's header outweighs what zstd finds in them."""
LEVEL = 1
"""zstd's fastest positive level: within 1 % of level 3's size on realistic documents."""
BODY_SQL = "CASE WHEN typeof(data) = 'blob' THEN bw_body(data) ELSE data END"
"""The body as JSON text, in SQL: what ``json_extract`` reads in queries and indexes. Text
rows do not call into Python (a scan of short documents costs what it cost before)."""

_MAGIC = b"\x28\xb5\x2f\xfd"  # a zstd frame's first bytes; JSON text never starts with "("
_local = threading.local()  # zstandard's (de)compressors are not safe across threads


def _compressor() -> zstandard.ZstdCompressor:
    compressor: zstandard.ZstdCompressor | None = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = zstandard.ZstdCompressor(level=LEVEL)
    return compressor


def _decompressor() -> zstandard.ZstdDecompressor:
    decompressor: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = _local.decompressor = zstandard.ZstdDecompressor()
    return decompressor


def pack(json_bytes: bytes) -> str | bytes:
    """The stored form of a body: a zstd frame when it saves an eighth, else the text."""
    if len(json_bytes) >= MIN_BYTES:
        frame = _compressor().compress(json_bytes)
        if len(frame) * 8 <= len(json_bytes) * 7:
            return frame
    return json_bytes.decode()


def unpack(stored: str | bytes) -> str | bytes:
    """The JSON of a stored body, text or frame (a JSON text stored as bytes stays as it is)."""
    if isinstance(stored, bytes) and stored[:4] == _MAGIC:
        return _decompressor().decompress(stored)
    return stored


_last: tuple[bytes, str] = (b"", "")
"""The frame :func:`_body_text` read last and its text. SQLite evaluates each expression of a
row on its own, so a scan that filters on one field and orders by another reads every body
twice; one entry serves the second read. A tuple replaced whole: no thread can see one body's
frame with another's text."""


def _body_text(stored: str | bytes | None) -> str | None:
    """The body as text for SQL (``NULL``, a tombstone's body, stays ``NULL``)."""
    global _last
    if not isinstance(stored, bytes):
        return stored
    last = _last
    if last[0] == stored:
        return last[1]
    body = unpack(stored)
    text = body.decode() if isinstance(body, bytes) else body
    _last = (stored, text)
    return text


def register(conn: sqlite3.Connection) -> None:
    """Make :data:`BODY_SQL` work on ``conn`` (deterministic, so that indexes may use it)."""
    conn.create_function("bw_body", 1, _body_text, deterministic=True)
