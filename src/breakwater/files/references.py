"""How documents refer to files: ``{"$file": "<sha256>"}`` anywhere in a document."""

from __future__ import annotations

import re
from typing import Any

SHA256_PATTERN = re.compile(r"[0-9a-f]{64}", re.ASCII)
FILE_KEY = "$file"


def is_sha256(value: object) -> bool:
    """True for a lower-case hex SHA-256, the only name a finished file has."""
    return isinstance(value, str) and SHA256_PATTERN.fullmatch(value) is not None


def file_references(data: Any) -> set[str]:
    """The files a document's data refers to, at any depth (lists included).

    A reference is an object whose ``$file`` key holds a SHA-256; other keys beside it (a
    name, a size shown by the app) are allowed and ignored.
    """
    found: set[str] = set()
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            name = value.get(FILE_KEY)
            if isinstance(name, str) and is_sha256(name):
                found.add(name)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return found
