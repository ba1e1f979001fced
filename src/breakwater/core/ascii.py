"""ASCII-only tests for text read from the wire, the config or another program.

``str.isdigit``, ``int()`` and the regex classes ``\\d``, ``\\w`` and ``\\s`` all accept far more
than ASCII (Arabic-Indic and fullwidth digits are digits to them), so text checked with them can
still parse to a surprising value or sort above every valid one. Patterns in this project use
explicit classes and ``re.ASCII``; digit strings go through :func:`is_digits` before ``int()``.
"""

from __future__ import annotations


def is_digits(text: str) -> bool:
    """True for a non-empty run of the ASCII digits 0-9 and nothing else."""
    return text.isascii() and text.isdigit()
