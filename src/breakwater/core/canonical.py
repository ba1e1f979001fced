"""The canonical JSON form (docs/protocol.md#canonical-json): equal values, equal bytes, in
every language.

Versions are hashes of it and merge ties compare it, so the Python core and every SDK must write
the same bytes for the same JSON value. It follows RFC 8785 (JCS) for numbers and strings:
compact, strings escaped as ``JSON.stringify`` does, and every number written as ECMAScript
writes the double it is (``1.0`` is ``1``, ``1e-7`` is ``1e-7``, ``1e21`` is ``1e+21``), which a
JavaScript client, holding no other kind of number, can reproduce. Object keys are sorted by
code point (UTF-8 byte order), where RFC 8785 sorts by UTF-16 unit: the two differ only between
keys with characters above U+FFFF and in U+E000..U+FFFF. Integers that no double holds exactly
(beyond 2**53) are written in full; no JavaScript client can hold them.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_SAFE_INTEGER = 2**53
# orjson's bytes are already canonical unless they hold a float written another way than
# ECMAScript writes it, or an integer of 16 digits or more. orjson writes a float as its
# shortest round-trip digits, in decimal notation from 1e-5 to 1e16 (where ECMAScript uses it
# too, with the same digits) and with an exponent elsewhere; so only a whole float ("3.0",
# which ECMAScript writes "3") or an exponent can differ, and a float with a fraction, such as
# a time stamp or a coordinate, cannot. Compact JSON starts a number only after "[", ":" or
# ",", and ends it at ",", "]" or "}"; a string that looks so costs the slow path, never a
# wrong answer. The search runs over the text with every byte that cannot be part of such a
# match deleted first (a number's bytes are contiguous but for its signs, which do not
# matter; quotes stay, so that a string of digits, such as a stamp, cannot come to follow a
# "[" or ","), and in the same pass the bytes left mapped to one byte per class: a separator
# before a number to ":", one after it to "]" ("," is both: ":"), "0" to "0", any other digit
# to "1", "." to "." and an exponent to "e". The pattern starts with the literal ":", which the
# regular-expression engine finds with a fast scan; it matches wherever the unmapped pattern
# ``[\[:,]-?(?:\d+(?:\.0[,\]}]|\.\d+[eE]|[eE])|\d{16})`` would.
_IN_A_MATCH = b'0123456789[:,]}.eE"'
_CLASS_OF = bytes.maketrans(_IN_A_MATCH, b'0111111111:::]].ee"')
_NOT_IN_A_MATCH = bytes(sorted(set(range(256)) - set(_IN_A_MATCH)))
_MAYBE_DIFFERENT = re.compile(rb":(?:[01]+(?:\.0[:\]]|\.[01]+e|e)|[01]{16})")


def dumps_canonical(value: Any) -> bytes:
    """The canonical JSON bytes of ``value`` (JSON types only)."""
    if not isinstance(value, dict | list):  # a bare scalar: nothing precedes a number
        return _encode(value).encode()
    fast = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    if _MAYBE_DIFFERENT.search(fast.translate(_CLASS_OF, _NOT_IN_A_MATCH)) is None:
        return fast
    # Floats and integers beyond 2**53 go in as fragments of their canonical text; the rest
    # orjson writes as the canonical form does.
    return orjson.dumps(_numbers_as_text(value), option=orjson.OPT_SORT_KEYS)


def _numbers_as_text(value: Any) -> Any:
    """``value`` with each number orjson would write otherwise replaced by a fragment of its
    canonical text; ``value`` itself, not a copy, when it holds none."""
    if isinstance(value, dict):
        copied: dict[str, Any] | None = None
        for key, item in value.items():
            fixed = _numbers_as_text(item)
            if fixed is not item:
                if copied is None:
                    copied = dict(value)
                copied[key] = fixed
        return value if copied is None else copied
    if isinstance(value, list | tuple):
        items: list[Any] | None = None
        for index, item in enumerate(value):
            fixed = _numbers_as_text(item)
            if fixed is not item:
                if items is None:
                    items = list(value)
                items[index] = fixed
        return value if items is None else items
    if isinstance(value, float):
        return orjson.Fragment(number_text(value))
    if isinstance(value, int) and not isinstance(value, bool):
        if -_SAFE_INTEGER <= value <= _SAFE_INTEGER:
            return value
        return orjson.Fragment(_integer(value))
    return value


def _encode(value: Any) -> str:
    if isinstance(value, dict):
        items = sorted(value.items())
        return "{" + ",".join(f"{_string(k)}:{_encode(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(item) for item in value) + "]"
    if isinstance(value, float):
        return number_text(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return _integer(value)
    return orjson.dumps(value).decode()  # strings, booleans, null


def _string(key: str) -> str:
    return orjson.dumps(key).decode()


def _integer(value: int) -> str:
    """An integer a double holds exactly is written as that double; any other in full."""
    if -_SAFE_INTEGER <= value <= _SAFE_INTEGER:
        return str(value)
    as_double = float(value)  # orjson has refused integers beyond 64 bits already
    return number_text(as_double) if int(as_double) == value else str(value)


def number_text(value: float) -> str:
    """ECMAScript's ``Number.prototype.toString`` of a finite double (RFC 8785, 3.2.2.3).

    Python's ``repr`` gives the same shortest round-trip digits; only their layout differs.
    """
    if value == 0:
        return "0"  # -0 too
    if value < 0:
        return "-" + number_text(-value)
    mantissa, _, exponent = repr(value).partition("e")
    whole, _, fraction = mantissa.partition(".")
    all_digits = whole + fraction
    digits = all_digits.lstrip("0")
    # The value is 0.DIGITS x 10**point.
    point = len(whole) + int(exponent or 0) - (len(all_digits) - len(digits))
    digits = digits.rstrip("0")
    count = len(digits)
    if count <= point <= 21:
        return digits + "0" * (point - count)
    if 0 < point <= 21:
        return f"{digits[:point]}.{digits[point:]}"
    if -6 < point <= 0:
        return "0." + "0" * -point + digits
    power = point - 1
    sign = "+" if power >= 0 else "-"
    head = digits if count == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{head}e{sign}{abs(power)}"
