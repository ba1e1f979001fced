"""The tus ``Upload-Metadata`` header: comma-separated ``key base64(value)`` pairs."""

from __future__ import annotations

import base64
import binascii
import re

from breakwater.core.errors import ValidationError

KEY_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}", re.ASCII)
MAX_HEADER = 4096


def parse_metadata(header: str | None) -> dict[str, str]:
    """The pairs of ``header``; a key without a value maps to ``""``. 400 when malformed."""
    if not header:
        return {}
    if len(header) > MAX_HEADER:
        raise ValidationError(f"Upload-Metadata is over {MAX_HEADER} characters")
    pairs: dict[str, str] = {}
    for part in header.split(","):
        key, _, encoded = part.strip().partition(" ")
        if not KEY_PATTERN.fullmatch(key) or key in pairs:
            raise ValidationError(
                f"Upload-Metadata key {key[:64]!r} is malformed or repeated", field="metadata"
            )
        try:
            value = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ValidationError(
                f"Upload-Metadata value of {key!r} is not base64 of UTF-8 text", field=key
            ) from exc
        pairs[key] = value
    return pairs
