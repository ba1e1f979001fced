"""The files' metrics, registered on the node's registry when the node is built."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class FileMetrics:
    """Uploads and their bytes, downloads by how they were allowed, garbage collected, and
    copies from peer regions."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.uploads = Counter(
            "breakwater_file_uploads",
            "tus uploads, by stage (created; completed: stored under its hash).",
            ["stage"],
            registry=r,
        )
        self.upload_bytes = Counter(
            "breakwater_file_upload_bytes",
            "Bytes appended to uploads (kept: refused chunks are not counted).",
            registry=r,
        )
        self.downloads = Counter(
            "breakwater_file_downloads",
            "Downloads allowed, by how (doc: through a referring document; signed: a signed"
            " URL; open: the file's collection is readable whole, or the caller uploaded it).",
            ["via"],
            registry=r,
        )
        self.collected = Counter(
            "breakwater_files_collected",
            "Files deleted by garbage collection (no reference, past the grace period).",
            registry=r,
        )
        self.expired_uploads = Counter(
            "breakwater_file_uploads_expired",
            "Unfinished uploads removed after their expiry.",
            registry=r,
        )
        self.copies = Counter(
            "breakwater_file_copies",
            "Attempts to copy a referred file from peer regions (copied; missing: no peer gave"
            " it, asked again later).",
            ["outcome"],
            registry=r,
        )
        self.copy_bytes = Counter(
            "breakwater_file_copy_bytes",
            "Bytes of files copied from peer regions (verified against their hash).",
            registry=r,
        )
        self.copies_waiting = Gauge(
            "breakwater_file_copies_waiting",
            "Referred files this region has not got yet and asks its peers for.",
            registry=r,
        )
