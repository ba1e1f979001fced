"""Input limits, enforced with a 4xx before any work is done."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Every size and count a request may reach; see docs/protocol.md#limits."""

    max_body_bytes: int = 1024 * 1024
    max_mutations_per_push: int = 500
    max_document_bytes: int = 256 * 1024
    max_depth: int = 32
    max_query_limit: int = 1000
    max_pull_limit: int = 1000
    max_wait_seconds: float = 60.0
