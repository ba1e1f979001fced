"""Files as the node serves them: who may upload, resume and download, and what is kept.

The access model (docs/adr/0031-files.md):

- an upload names a collection in its metadata and needs write access to it (the policy's
  ``admit``), like a write of a document there; only its creator may resume or end it;
- a finished file is readable by whoever may read a document that refers to it
  (``{"$file": "<sha256>"}``), named by the download as ``?doc=<collection>/<id>``; without
  one, by a caller who may read every document of the collection it was uploaded to (a
  public collection), and by its first uploader;
- a signed URL (made by someone who may read the file) opens it until it expires;
- a file no document refers to is deleted after a grace period (:meth:`Files.collect_garbage`);
- in several regions, a file a document refers to is copied from a peer region
  (:mod:`~breakwater.server.application.file_copies`).
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from breakwater.auth.identity import Identity
from breakwater.auth.policy import Policy
from breakwater.core.errors import (
    BreakwaterError,
    ContentTypeRefused,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ValidationError,
)
from breakwater.core.mutation import check_collection, check_doc_id
from breakwater.files.blobs import BlobInfo, BlobStore
from breakwater.files.checksums import ExpectedChecksum
from breakwater.files.direct_bodies import FileBody
from breakwater.files.metadata import parse_metadata
from breakwater.files.references import file_references, is_sha256
from breakwater.files.signing import UrlSigner
from breakwater.files.uploads import Upload, Uploads
from breakwater.server.application.file_copies import FileCopies
from breakwater.server.application.file_metrics import FileMetrics
from breakwater.storage.base import Store

GC_PAGE = 500
DEFAULT_CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class FilePolicy:
    """The limits of files on a node (the ``files_*`` settings)."""

    max_size: int
    content_types: tuple[str, ...]
    url_ttl: float
    gc_grace: float

    def check_type(self, content_type: str) -> str:
        """The normalised media type, if the allow-list admits it (415 otherwise)."""
        media = content_type.split(";")[0].strip().lower()
        if not media or "/" not in media or len(media) > 127:
            raise ValidationError(f"content type {content_type[:127]!r} is not a media type")
        if not any(fnmatch.fnmatchcase(media, allowed) for allowed in self.content_types):
            raise ContentTypeRefused(
                f"files of type {media!r} are not accepted; allowed: {list(self.content_types)}"
            )
        return media


@dataclass(frozen=True)
class Grant:
    """A download the caller may make, and whether a shared cache may keep it."""

    info: BlobInfo
    public: bool


@dataclass(frozen=True)
class GarbageReport:
    """What one collection pass found."""

    kept: int
    deleted: int
    expired_uploads: int


def _uid(identity: Identity | None) -> str:
    return "" if identity is None else identity.uid


class Files:
    """Uploads, downloads and garbage collection of one node's files."""

    def __init__(
        self,
        uploads: Uploads,
        blobs: BlobStore,
        store: Store,
        policy: Policy,
        limits: FilePolicy,
        signer: UrlSigner,
        clock: Callable[[], float] = time.time,
        metrics: FileMetrics | None = None,
        copies: FileCopies | None = None,
    ) -> None:
        self.uploads = uploads
        self.blobs = blobs
        self.store = store
        self.policy = policy
        self.limits = limits
        self.signer = signer
        self.clock = clock
        self.metrics = metrics or FileMetrics()
        self.copies = copies
        """Copies from peer regions: a file referred to but not here yet is asked for."""

    async def create(self, identity: Identity | None, length: int, metadata: str) -> Upload:
        """A new upload after the checks that need no byte: access, size, type."""
        pairs = parse_metadata(metadata)
        collection = pairs.get("collection")
        if collection is None:
            raise ValidationError(
                "Upload-Metadata must name the collection the file belongs to", field="collection"
            )
        self.policy.admit(identity, check_collection(collection), "write")
        if length > self.limits.max_size:
            raise PayloadTooLarge(
                f"Upload-Length {length} is over the limit of {self.limits.max_size} bytes",
                limit=self.limits.max_size,
            )
        declared = pairs.get("content_type") or pairs.get("filetype") or pairs.get("type")
        content_type = self.limits.check_type(declared or DEFAULT_CONTENT_TYPE)
        upload = await self.uploads.create(
            length, collection, _uid(identity), content_type, metadata
        )
        self.metrics.uploads.labels("created").inc()
        if length == 0:
            upload = await self._finish(upload)
        return upload

    async def _mine(self, identity: Identity | None, upload_id: str) -> Upload:
        self.policy.admit_caller(identity)
        upload = await self.uploads.get(upload_id)
        if upload.uploader != _uid(identity):
            # As if it did not exist: upload ids are not for other callers to probe.
            raise NotFound(f"upload {upload_id[:64]!r} does not exist")
        return upload

    async def status(self, identity: Identity | None, upload_id: str) -> Upload:
        """The upload (tus HEAD) for its creator.

        An upload whose bytes all arrived but whose storing failed (the blob store was down:
        the last PATCH got a 503) is stored now, so a client that resumes with HEAD, as tus
        clients do, completes it without sending anything again.
        """
        upload = await self._mine(identity, upload_id)
        if upload.offset == upload.length and not upload.finished:
            upload = await self._finish(upload)
        return upload

    async def append(
        self,
        identity: Identity | None,
        upload_id: str,
        offset: int,
        chunks: AsyncIterator[bytes | bytearray] | FileBody,
        checksum: ExpectedChecksum | None,
    ) -> Upload:
        """A tus PATCH; the last byte stores the file under its SHA-256."""
        await self._mine(identity, upload_id)
        upload = await self.uploads.append(upload_id, offset, chunks, checksum)
        self.metrics.upload_bytes.inc(upload.offset - offset)
        if upload.offset == upload.length:
            upload = await self._finish(upload)
        return upload

    async def _finish(self, upload: Upload) -> Upload:
        sha256 = await self.uploads.digest(upload.id)
        info = BlobInfo(
            sha256=sha256,
            size=upload.length,
            content_type=upload.content_type,
            collection=upload.collection,
            uploader=upload.uploader,
            created=self.clock(),
        )
        await self.blobs.put(self.uploads.part(upload.id), info)
        self.metrics.uploads.labels("completed").inc()
        return await self.uploads.mark_finished(upload, sha256)

    async def terminate(self, identity: Identity | None, upload_id: str) -> None:
        """tus termination: the creator abandons an unfinished upload."""
        await self._mine(identity, upload_id)
        await self.uploads.terminate(upload_id)

    async def grant(
        self,
        identity: Identity | None,
        sha256: str,
        doc: str | None,
        signature: tuple[int, str] | None = None,
    ) -> Grant:
        """The file, if the caller may download it this way (see the module docstring)."""
        grant, via = await self._authorize(identity, sha256, doc, signature)
        self.metrics.downloads.labels(via).inc()
        return grant

    async def _authorize(
        self,
        identity: Identity | None,
        sha256: str,
        doc: str | None,
        signature: tuple[int, str] | None = None,
    ) -> tuple[Grant, str]:
        if not is_sha256(sha256):
            raise NotFound("a file is named by its lower-case hex SHA-256")
        if signature is not None:
            expires, mac = signature
            if not self.signer.valid(sha256, expires, mac, self.clock()):
                raise Forbidden("the signed URL is invalid or has expired")
            return Grant(await self._stored(sha256), public=False), "signed"
        if doc is not None:
            collection, document = _parse_doc(doc)
            await self._check_reference(identity, collection, document, sha256)
            info = await self._stored(sha256)
            public = await self._anonymous_reads_doc(collection, document)
            return Grant(info, public=public), "doc"
        self.policy.admit_caller(identity)
        found = await self.blobs.stat(sha256)
        if found is None or not (
            self._reads_all(identity, found.collection)
            or (identity is not None and found.uploader == identity.uid)
        ):
            raise NotFound(
                f"file {sha256} is not stored or not readable without naming a document"
                " that refers to it (?doc=<collection>/<id>)"
            )
        return Grant(found, public=self._reads_all(None, found.collection)), "open"

    async def sign(
        self, identity: Identity | None, sha256: str, doc: str | None, ttl: float | None
    ) -> tuple[str, int]:
        """A signed path for the file and its expiry, for a caller who may read it."""
        lifetime = self.limits.url_ttl if ttl is None else ttl
        if not 0 < lifetime <= self.limits.url_ttl:
            raise ValidationError(f"ttl must be in (0, {self.limits.url_ttl}] seconds", field="ttl")
        await self._authorize(identity, sha256, doc)
        expires = int(self.clock() + lifetime)
        mac = self.signer.sign(sha256, expires)
        return f"/v1/files/{sha256}?expires={expires}&signature={mac}", expires

    async def _stored(self, sha256: str) -> BlobInfo:
        """The file a checked reference or signature names; copied from a peer region if it
        is not here yet (503 ``file_not_replicated`` when no peer gives it now)."""
        info = await self.blobs.stat(sha256)
        if info is not None:
            return info
        if self.copies is not None and self.copies.enabled:
            return await self.copies.fetch_now(sha256)
        raise NotFound(f"file {sha256} is not stored on this node")

    async def _check_reference(
        self, identity: Identity | None, collection: str, doc_id: str, sha256: str
    ) -> None:
        self.policy.admit(identity, collection, "read")
        stored = await self.store.get(collection, doc_id)
        if stored is None or stored.data is None:
            raise NotFound(f"document {collection}/{doc_id} does not exist")
        if not self.policy.may_read(identity, collection, stored.data):
            raise Forbidden(f"the collection's read rule refuses {collection}/{doc_id}")
        if sha256 not in file_references(stored.data):
            raise Forbidden(f"document {collection}/{doc_id} does not refer to file {sha256}")

    async def _anonymous_reads_doc(self, collection: str, doc_id: str) -> bool:
        try:
            self.policy.admit(None, collection, "read")
        except BreakwaterError:
            return False
        stored = await self.store.get(collection, doc_id)
        return (
            stored is not None
            and stored.data is not None
            and (self.policy.may_read(None, collection, stored.data))
        )

    def _reads_all(self, identity: Identity | None, collection: str) -> bool:
        """True when the caller may read every document of ``collection``."""
        try:
            self.policy.admit(identity, collection, "read")
        except BreakwaterError:
            return False
        if self.policy.filters_reads(identity, collection):
            return False
        return self.policy.may_read(identity, collection, {})

    async def _references_since(self, vector: dict[str, int]) -> tuple[set[str], dict[str, int]]:
        """Files the changes after ``vector`` refer to, and the vector after them."""
        found: set[str] = set()
        while True:
            page = await self.store.pull(vector, None, GC_PAGE)
            for entry in page.entries:
                if entry.data is not None:
                    found |= file_references(entry.data)
            vector = page.vector
            if not page.has_more:
                return found, vector

    async def collect_garbage(self) -> GarbageReport:
        """Delete files past the grace period that no document refers to, and expired uploads.

        A file counts as referred to when any change the feed still holds refers to it (so a
        document's older states keep their files until compaction drops them: never too
        few). The grace period covers the time between an upload and the write of the
        document that refers to it (an app uploads first, then writes). The feed is read
        again after the candidates are chosen, so a write made during the scan saves its file.
        """
        expired = await self.uploads.expire()
        referenced, vector = await self._references_since({})
        cutoff = self.clock() - self.limits.gc_grace
        candidates: list[str] = []
        kept = 0
        async for info in self.blobs.blobs():
            if info.sha256 in referenced or info.created > cutoff:
                kept += 1
            else:
                candidates.append(info.sha256)
        late, _ = await self._references_since(vector)
        deleted = 0
        for name in candidates:
            if name in late:
                kept += 1
            elif await self.blobs.delete(name):
                deleted += 1
        self.metrics.collected.inc(deleted)
        self.metrics.expired_uploads.inc(expired)
        return GarbageReport(kept=kept, deleted=deleted, expired_uploads=expired)


def _parse_doc(value: str) -> tuple[str, str]:
    collection, slash, doc_id = value.partition("/")
    if not slash:
        raise ValidationError("doc must be <collection>/<id>", field="doc")
    return check_collection(collection), check_doc_id(doc_id)
