"""The ``Range`` header of a download (RFC 9110 §14): one byte range, or the whole file."""

from __future__ import annotations

import re

from breakwater.core.errors import RangeNotSatisfiable

_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})", re.ASCII)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` (end exclusive) of a satisfiable single range; ``None``: send it all.

    A header that is not one byte range (several ranges, another unit, a syntax error) is
    ignored as RFC 9110 allows: the whole file is sent with 200. A range that names no byte of
    the file is 416.
    """
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or not (match[1] or match[2]):
        return None
    if not match[1]:  # a suffix: the last N bytes
        suffix = int(match[2])
        if suffix == 0:
            raise RangeNotSatisfiable(f"Range {header!r} names no byte", size=size)
        return max(0, size - suffix), size
    start = int(match[1])
    end = size if not match[2] else min(size, int(match[2]) + 1)
    if match[2] and int(match[2]) < start:
        return None  # invalid: ignored
    if start >= size:
        raise RangeNotSatisfiable(f"Range {header!r} starts past the end ({size} bytes)", size=size)
    return start, end
