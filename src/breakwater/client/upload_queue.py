"""Files uploaded from the device: queued durably, sent with tus when the network allows.

``enqueue`` copies the file next to the device database, hashes it and records it in the
database's ``file_uploads`` table before it returns, so the app can at once write a document
that refers to it (``{"$file": sha256}``), offline included; the upload survives the app's
restart. Sending uses tus 1.0 (docs/files.md): the upload URL is stored as soon as the node
creates it, and a resumed upload asks the node its offset (HEAD) and sends only the rest.

A network failure or a transient answer (5xx, 429, 423) leaves the upload queued and raises
:class:`EndpointUnavailable`; :meth:`UploadQueue.run` retries with backoff. A permanent
refusal (a type or size the node refuses, no write access) marks the upload ``failed`` with
the problem, for the app to show; it is not retried.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from breakwater.client.errors import EndpointUnavailable, error_for_problem
from breakwater.client.node_api import HeadersProvider, auth_headers
from breakwater.core.errors import BreakwaterError

T = TypeVar("T")
TUS = {"Tus-Resumable": "1.0.0"}
STREAM = "application/offset+octet-stream"
TRANSIENT = (423, 429)

SCHEMA = """
CREATE TABLE IF NOT EXISTS file_uploads (
    id INTEGER PRIMARY KEY AUTOINCREMENT, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    collection TEXT NOT NULL, content_type TEXT NOT NULL, filename TEXT NOT NULL,
    local_path TEXT NOT NULL, location TEXT, state TEXT NOT NULL DEFAULT 'pending',
    problem TEXT);
"""

Progress = Callable[["QueuedFile", int], Any]
"""Called with a file and the bytes of it the node holds, after every chunk."""


@dataclass(frozen=True)
class QueuedFile:
    """A file waiting to be uploaded (or refused: ``state == "failed"``)."""

    id: int
    sha256: str
    size: int
    collection: str
    content_type: str
    filename: str
    state: str = "pending"
    problem: str = ""


class UploadQueue:
    """The device's durable queue of file uploads to one endpoint."""

    def __init__(
        self,
        db_path: Path | str,
        http: httpx.AsyncClient,
        base_url: str,
        headers: HeadersProvider | None = None,
        *,
        chunk_size: int = 4 << 20,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.db_path = Path(db_path)
        self.files_dir = self.db_path.with_name(self.db_path.name + ".files")
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.headers = headers
        self.chunk_size = chunk_size
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.sleep = sleep
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="breakwater-uploads")
        self._conn: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(self.db_path, isolation_level=None, timeout=30)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(SCHEMA)
        return self._conn

    async def open(self) -> None:
        """Create the table if needed."""
        await self._run(self._db)

    async def aclose(self) -> None:
        """Close the database connection (queued uploads stay queued)."""

        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self._run(close)
        self._thread.shutdown(wait=True)

    async def enqueue(
        self,
        path: Path | str,
        collection: str,
        content_type: str = "application/octet-stream",
        filename: str | None = None,
    ) -> QueuedFile:
        """Queue a copy of ``path`` for ``collection``; durable when it returns, no network."""
        source = Path(path)

        def add() -> QueuedFile:
            self.files_dir.mkdir(parents=True, exist_ok=True)
            db = self._db()
            cursor = db.execute(
                "INSERT INTO file_uploads (sha256, size, collection, content_type, filename,"
                " local_path) VALUES ('', 0, ?, ?, ?, '')",
                (collection, content_type, filename or source.name),
            )
            row_id = int(cursor.lastrowid or 0)
            copy = self.files_dir / str(row_id)
            hasher = hashlib.sha256()
            with source.open("rb") as reader, copy.open("wb") as writer:
                while block := reader.read(1 << 20):
                    hasher.update(block)
                    writer.write(block)
                writer.flush()
                os.fsync(writer.fileno())
            size = copy.stat().st_size
            db.execute(
                "UPDATE file_uploads SET sha256 = ?, size = ?, local_path = ? WHERE id = ?",
                (hasher.hexdigest(), size, str(copy), row_id),
            )
            return QueuedFile(
                row_id, hasher.hexdigest(), size, collection, content_type, filename or source.name
            )

        return await self._run(add)

    async def queued(self) -> list[QueuedFile]:
        """Files not yet uploaded: pending ones first in queue order, then failed ones."""

        def read() -> list[QueuedFile]:
            rows = self._db().execute(
                "SELECT id, sha256, size, collection, content_type, filename, state,"
                " COALESCE(problem, '') FROM file_uploads WHERE local_path != ''"
                " ORDER BY state = 'failed', id"
            )
            return [QueuedFile(*row) for row in rows]

        return await self._run(read)

    async def _location(self, file: QueuedFile) -> str | None:
        def read() -> str | None:
            row = (
                self._db()
                .execute("SELECT location FROM file_uploads WHERE id = ?", (file.id,))
                .fetchone()
            )
            return None if row is None else row[0]

        return await self._run(read)

    async def _set(self, file: QueuedFile, **values: Any) -> None:
        def write() -> None:
            columns = ", ".join(f"{name} = ?" for name in values)
            self._db().execute(
                f"UPDATE file_uploads SET {columns} WHERE id = ?",
                (*values.values(), file.id),
            )

        await self._run(write)

    async def _done(self, file: QueuedFile) -> None:
        def remove() -> None:
            self._db().execute("DELETE FROM file_uploads WHERE id = ?", (file.id,))
            (self.files_dir / str(file.id)).unlink(missing_ok=True)

        await self._run(remove)

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {**TUS, **await auth_headers(self.headers), **kwargs.pop("headers", {})}
        try:
            response = await self.http.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise EndpointUnavailable(f"{method} {url}: {type(exc).__name__}") from exc
        if response.status_code >= 500 or response.status_code in TRANSIENT:
            raise EndpointUnavailable(f"{method} {url}: HTTP {response.status_code}")
        return response

    @staticmethod
    def _refusal(response: httpx.Response) -> BreakwaterError:
        try:
            problem = response.json()
        except ValueError:
            problem = {"detail": f"HTTP {response.status_code}"}
        return error_for_problem(response.status_code, problem)

    async def _create(self, file: QueuedFile) -> str:
        pairs = {
            "collection": file.collection,
            "filetype": file.content_type,
            "filename": file.filename,
        }
        metadata = ",".join(
            f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items()
        )
        response = await self._request(
            "POST",
            f"{self.base_url}/v1/uploads",
            headers={"Upload-Length": str(file.size), "Upload-Metadata": metadata},
        )
        if response.status_code != 201:
            raise self._refusal(response)
        location = response.headers["Location"]
        await self._set(file, location=location)
        return location

    async def _offset(self, location: str) -> int | None:
        response = await self._request("HEAD", f"{self.base_url}{location}")
        if response.status_code in (404, 410):
            return None  # expired or collected: start again
        if response.status_code != 200:
            raise self._refusal(response)
        return int(response.headers["Upload-Offset"])

    async def upload(self, file: QueuedFile, progress: Progress | None = None) -> None:
        """Send one queued file from where the node has it; remove it from the queue when done."""
        location = await self._location(file)
        offset = None if location is None else await self._offset(location)
        if location is None or offset is None:
            location = await self._create(file)
            offset = 0
        if progress is not None:
            progress(file, offset)
        source = self.files_dir / str(file.id)
        while offset < file.size:
            chunk = await asyncio.to_thread(_read, source, offset, self.chunk_size)
            response = await self._request(
                "PATCH",
                f"{self.base_url}{location}",
                content=chunk,
                headers={"Upload-Offset": str(offset), "Content-Type": STREAM},
            )
            if response.status_code == 409:  # the node has another offset: ask it
                known = await self._offset(location)
                if known is None:
                    await self._set(file, location=None)
                    raise EndpointUnavailable("the upload expired on the node; starting again")
                offset = known
                continue
            if response.status_code != 204:
                raise self._refusal(response)
            offset = int(response.headers["Upload-Offset"])
            if progress is not None:
                progress(file, offset)
        if file.size == 0 and progress is not None:
            progress(file, 0)
        await self._done(file)

    async def run_once(self, progress: Progress | None = None) -> int:
        """Upload every pending file once; the number uploaded.

        A permanent refusal marks that file failed and goes on with the next; a transient
        failure stops the pass and raises :class:`EndpointUnavailable` (nothing is lost).
        """
        done = 0
        for file in await self.queued():
            if file.state != "pending":
                continue
            try:
                await self.upload(file, progress)
            except EndpointUnavailable:
                raise
            except BreakwaterError as error:
                await self._set(file, state="failed", problem=error.detail)
                continue
            done += 1
        return done

    async def run(self, progress: Progress | None = None, max_attempts: int | None = None) -> int:
        """Upload until the queue is empty, retrying transient failures with full-jitter
        backoff (``max_attempts`` bounds the passes; ``None``: until cancelled)."""
        done = attempt = 0
        while True:
            try:
                return done + await self.run_once(progress)
            except EndpointUnavailable:
                attempt += 1
                if max_attempts is not None and attempt >= max_attempts:
                    raise
                cap = min(self.backoff_cap, self.backoff_base * 2**attempt)
                await self.sleep(random.uniform(0, cap))


def _read(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(size)


__all__ = ["QueuedFile", "UploadQueue"]
