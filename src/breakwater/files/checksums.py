"""The tus checksum extension: ``Upload-Checksum: <algorithm> <base64 digest>`` per chunk."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

from breakwater.core.errors import ValidationError

ALGORITHMS = ("sha1", "sha256", "md5")
"""Announced in ``Tus-Checksum-Algorithm`` (sha1 is the one every tus client supports)."""


@dataclass(frozen=True)
class ExpectedChecksum:
    """The digest a chunk must have, and a fresh hasher to compute it."""

    algorithm: str
    digest: bytes

    def hasher(self) -> Any:
        """A new hashlib object of the algorithm (md5 marked as not for security)."""
        return hashlib.new(self.algorithm, usedforsecurity=False)


def parse_checksum(header: str | None) -> ExpectedChecksum | None:
    """The expected checksum of ``header`` (``None`` without one); 400 when malformed."""
    if header is None:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in ALGORITHMS:
        raise ValidationError(
            f"Upload-Checksum algorithm {algorithm[:20]!r} is not one of {list(ALGORITHMS)}",
            field="Upload-Checksum",
        )
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error as exc:
        raise ValidationError("Upload-Checksum digest is not base64") from exc
    if len(digest) != hashlib.new(algorithm, usedforsecurity=False).digest_size:
        raise ValidationError(f"Upload-Checksum digest has the wrong length for {algorithm}")
    return ExpectedChecksum(algorithm, digest)
