"""Numeric query parameters that accept plain ASCII numbers only.

FastAPI's own ``int`` and ``float`` parameters strip Unicode whitespace and accept digit group
underscores (``limit=%C2%A01_0`` is 10); a parameter here is refused (400) unless it is written
exactly as a number, so every reader of the URL (a proxy, a log, a cache key) sees what the node
applied.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_INTEGER = re.compile(r"-?[0-9]{1,19}", re.ASCII)
_DECIMAL = re.compile(r"-?[0-9]{1,19}(\.[0-9]{1,19})?", re.ASCII)


def _exactly(pattern: re.Pattern[str], what: str) -> BeforeValidator:
    def check(value: object) -> object:
        if isinstance(value, str) and not pattern.fullmatch(value):
            raise ValueError(f"must be {what} written with ASCII digits")
        return value

    return BeforeValidator(check)


AsciiInt = Annotated[int, _exactly(_INTEGER, "an integer")]
AsciiFloat = Annotated[float, _exactly(_DECIMAL, "a decimal number")]
