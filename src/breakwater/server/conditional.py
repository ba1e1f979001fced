"""HTTP conditional headers (RFC 9110 §13): ``If-Match`` and ``If-None-Match`` entity-tag lists."""

from __future__ import annotations

import re

from breakwater.core.errors import ValidationError
from breakwater.core.mutation import VERSION_PATTERN

# A quoted entity tag; the bare version is accepted too (curl users paste it unquoted).
_TAG = re.compile(r'[ \t]*(W/)?(?:"([^"]*)"|([0-9a-f]+))[ \t]*', re.ASCII)


def _tags(header: str, name: str) -> list[tuple[bool, str]]:
    """``(weak, version)`` for every entity tag of a comma-separated list."""
    tags = []
    for part in header.split(","):
        match = _TAG.fullmatch(part)
        version = None if match is None else match[2] or match[3]
        if match is None or version is None or not VERSION_PATTERN.fullmatch(version):
            raise ValidationError(
                f"{name} {header[:100]!r} is not a list of entity tags", field=name
            )
        tags.append((match[1] is not None, version))
    return tags


def parse_if_match(header: str | None) -> tuple[str, ...] | None:
    """The versions ``If-Match`` accepts; ``("*",)`` for any. Weak tags never match (strong
    comparison), so a list of only weak tags accepts nothing."""
    if header is None:
        return None
    if header.strip(" \t") == "*":
        return ("*",)
    return tuple(version for weak, version in _tags(header, "If-Match") if not weak)


def if_none_match_hits(header: str | None, version: str) -> bool:
    """True when ``If-None-Match`` names ``version`` (weak comparison) or is ``*``."""
    if header is None:
        return False
    if header.strip(" \t") == "*":
        return True
    return any(tag == version for _, tag in _tags(header, "If-None-Match"))
