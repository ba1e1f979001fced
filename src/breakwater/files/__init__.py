"""Files: resumable uploads (tus 1.0), content-addressed blobs on disk or S3, signed URLs.

A finished upload is named by the SHA-256 of its bytes; a document refers to it as
``{"$file": "<sha256>"}`` and whoever may read that document may read the file
(docs/files.md, docs/adr/0031-files.md). This package knows nothing of HTTP or of the
node: the server's ``files_api`` translates requests into calls on it.
"""

from __future__ import annotations

from breakwater.files.blobs import BlobInfo, BlobStore, open_blobs
from breakwater.files.references import file_references, is_sha256
from breakwater.files.uploads import Upload, Uploads

__all__ = [
    "BlobInfo",
    "BlobStore",
    "Upload",
    "Uploads",
    "file_references",
    "is_sha256",
    "open_blobs",
]
