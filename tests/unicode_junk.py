"""Hypothesis strategies for text that only looks ASCII: a valid value with one character
that ``\\d``, ``\\w``, ``\\s``, ``str.isdigit`` or ``int()`` mistake for an ASCII one."""

from __future__ import annotations

from hypothesis import strategies as st

LOOKALIKES = (
    "\u0661",  # ARABIC-INDIC DIGIT ONE: int() reads it as 1
    "\u0660",  # ARABIC-INDIC DIGIT ZERO
    "\u06f5",  # EXTENDED ARABIC-INDIC DIGIT FIVE
    "\u0967",  # DEVANAGARI DIGIT ONE
    "\uff11",  # FULLWIDTH DIGIT ONE
    "\uff41",  # FULLWIDTH LATIN SMALL LETTER A
    "\u00b2",  # SUPERSCRIPT TWO: isdigit() but not int()
    "\u00e9",  # LATIN SMALL LETTER E WITH ACUTE
    "\u0131",  # LATIN SMALL LETTER DOTLESS I
    "\u212a",  # KELVIN SIGN (a K under case folding)
    "\u00a0",  # NO-BREAK SPACE
    "\u2028",  # LINE SEPARATOR
    "\u2029",  # PARAGRAPH SEPARATOR
    "\u3000",  # IDEOGRAPHIC SPACE
    "\u200b",  # ZERO WIDTH SPACE
    "\ufeff",  # BYTE ORDER MARK
    "\u0301",  # COMBINING ACUTE ACCENT
    "\u0085",  # NEXT LINE (a line break to str.splitlines)
)
SURROGATES = ("\udc80", "\ud800", "\udfff")  # what os.fsdecode makes of undecodable bytes


def lookalike_in(valid: str, *, surrogates: bool = False) -> st.SearchStrategy[str]:
    """``valid`` with one look-alike character put in, or put in place of one of its own."""
    chars = st.sampled_from(LOOKALIKES + (SURROGATES if surrogates else ()))
    position = st.integers(0, len(valid))
    replace = st.booleans()
    return st.builds(
        lambda char, at, swap: valid[:at] + char + valid[at + (1 if swap else 0) :],
        chars,
        position,
        replace,
    )
