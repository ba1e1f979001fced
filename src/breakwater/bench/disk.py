"""``breakwater bench disk``: bytes on disk per stored document, against its raw JSON.

Issue 22 asks what a realistic 1 KB document costs on disk once stored: the document row, its
feed entry and every index, after a checkpoint (the write-ahead log folded into the file). The
documents are realistic rather than padding, which would compress or pack unrealistically:
prose cut from the Python documentation that ships with the interpreter (``pydoc_data``), ids,
timestamps, numbers, booleans, a tag list and nested objects. In the same run, the same JSON in
a one-table SQLite file (``id`` key and the JSON text, the store's page size: what SQLite
itself needs) and the JSON's
zlib size are the references; ``stored_body_bytes_per_doc`` is what the store keeps of each JSON
(a zstd frame where that pays, ADR 0050).
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import tempfile
import zlib
from pathlib import Path
from typing import Any

from breakwater.core import codec
from breakwater.core.engine import Engine
from breakwater.core.hlc import HybridClock
from breakwater.core.mutation import Mutation
from breakwater.storage._bodies import pack
from breakwater.storage.sqlite import PAGE_BYTES, SqliteStore

DOC_BYTES = 1024
BATCH = 100


def _prose() -> list[str]:
    """Sentences of English prose from the interpreter's own documentation topics."""
    from pydoc_data.topics import topics

    text = " ".join(" ".join(topic.split()) for _, topic in sorted(topics.items()))
    return [sentence.strip() + "." for sentence in text.split(". ") if len(sentence) > 20]


def realistic_documents(count: int, seed: int = 22) -> list[dict[str, Any]]:
    """``count`` app-like documents of about :data:`DOC_BYTES` bytes of JSON each."""
    sentences = _prose()
    rng = random.Random(seed)

    def text(words: int) -> str:
        start = rng.randrange(len(sentences))
        return " ".join(" ".join(sentences[start : start + words // 4 + 2]).split()[:words])

    documents = []
    for _ in range(count):
        doc: dict[str, Any] = {
            "title": text(7),
            "owner": f"user-{rng.getrandbits(40):010x}",
            "created_at": f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T"
            f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z",
            "done": rng.random() < 0.5,
            "priority": rng.randrange(5),
            "estimate_h": round(rng.uniform(0.25, 40), 2),
            "tags": [text(1).lower().strip(".,:;()") for _ in range(rng.randrange(1, 5))],
            "location": {
                "lat": round(rng.uniform(-90, 90), 6),
                "lon": round(rng.uniform(-180, 180), 6),
                "label": text(3),
            },
            "checklist": [{"item": text(5), "done": rng.random() < 0.5} for _ in range(3)],
            "body": text(400),
        }
        over = len(codec.dumps(doc)) - DOC_BYTES
        if over > 0:
            doc["body"] = doc["body"][: len(doc["body"]) - over]
        documents.append(doc)
    return documents


async def _store_documents(path: Path, documents: list[dict[str, Any]]) -> None:
    """Write ``documents`` as new documents through the store, in batches of :data:`BATCH`."""
    store = SqliteStore(path, Engine("bench", HybridClock("bench")))
    await store.open()
    try:
        for start in range(0, len(documents), BATCH):
            batch = documents[start : start + BATCH]
            await store.apply(
                [
                    Mutation(f"m{start + k}", "notes", f"d{start + k}", "set", data)
                    for k, data in enumerate(batch)
                ]
            )
    finally:
        await store.aclose()


def _one_table(path: Path, documents: list[dict[str, Any]]) -> None:
    """The same JSON in a one-table SQLite file with the store's page size: the reference of
    what SQLite itself needs."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA page_size = {PAGE_BYTES}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE docs (id TEXT PRIMARY KEY, data TEXT NOT NULL)")
        for start in range(0, len(documents), BATCH):
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO docs (id, data) VALUES (?, ?)",
                [
                    (f"d{start + k}", codec.dumps(data).decode())
                    for k, data in enumerate(documents[start : start + BATCH])
                ],
            )
            conn.execute("COMMIT")
    finally:
        conn.close()


def _checkpointed_size(path: Path) -> tuple[int, dict[str, dict[str, int]]]:
    """The file's bytes after folding the WAL in, and each table's and index's pages and the
    bytes its rows use (``dbstat``; empty when this SQLite lacks it)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        try:
            rows = conn.execute(
                "SELECT name, sum(pgsize), sum(pgsize - unused) FROM dbstat GROUP BY name"
            ).fetchall()
        except sqlite3.OperationalError:
            rows = []
    finally:
        conn.close()
    return path.stat().st_size, {
        str(name): {"bytes": int(pages), "used": int(used)} for name, pages, used in rows
    }


def _encoded(body: str | bytes) -> bytes:
    return body.encode() if isinstance(body, str) else body


def run(count: int) -> dict[str, Any]:
    """Bytes per document stored by the node's SQLite store, and the references."""
    documents = realistic_documents(count)
    raw = sum(len(codec.dumps(doc)) for doc in documents)
    compressed = sum(len(zlib.compress(codec.dumps(doc))) for doc in documents)
    stored = sum(len(_encoded(pack(codec.dumps(doc)))) for doc in documents)
    with tempfile.TemporaryDirectory(prefix="bw-bench-disk-") as tmp:
        store_path, plain_path = Path(tmp) / "store.db", Path(tmp) / "plain.db"
        asyncio.run(_store_documents(store_path, documents))
        _one_table(plain_path, documents)
        store_bytes, parts = _checkpointed_size(store_path)
        plain_bytes, _ = _checkpointed_size(plain_path)
    per_doc = store_bytes / count
    return {
        "documents": count,
        "raw_json_bytes_per_doc": round(raw / count, 1),
        "store_bytes_per_doc": round(per_doc, 1),
        "store_over_raw": round(store_bytes / raw, 3),
        "one_table_bytes_per_doc": round(plain_bytes / count, 1),
        "one_table_over_raw": round(plain_bytes / raw, 3),
        "zlib_json_bytes_per_doc": round(compressed / count, 1),
        "stored_body_bytes_per_doc": round(stored / count, 1),
        "parts_bytes_per_doc": {
            name: {key: round(value / count, 1) for key, value in sizes.items()}
            for name, sizes in sorted(parts.items(), key=lambda item: -item[1]["bytes"])
            if sizes["bytes"] / count >= 1
        },
    }
