"""Issue 16 item 2: the core parsers accept ASCII only, whatever \\d, \\w, \\s and int() think."""

from __future__ import annotations

import base64
import re
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

import breakwater.auth.service
import breakwater.core.collections
import breakwater.core.cursor
import breakwater.core.hlc
import breakwater.core.mutation
import breakwater.core.query
import breakwater.server.conditional
import breakwater.server.docs_api
import breakwater.server.params
import breakwater.server.pushes
from breakwater.auth import totp
from breakwater.core import cursor, hlc, query
from breakwater.core.ascii import is_digits
from breakwater.core.errors import ValidationError
from breakwater.core.limits import Limits
from breakwater.core.mutation import check_collection, check_doc_id, parse_mutation
from breakwater.server.conditional import parse_if_match
from tests.unicode_junk import lookalike_in

STAMP = "1700000000000-0042-devA"
PATTERN_MODULES = (
    breakwater.auth.service,
    breakwater.core.collections,
    breakwater.core.cursor,
    breakwater.core.hlc,
    breakwater.core.mutation,
    breakwater.core.query,
    breakwater.server.conditional,
    breakwater.server.docs_api,
    breakwater.server.params,
    breakwater.server.pushes,
)


@pytest.mark.parametrize("module", PATTERN_MODULES, ids=lambda m: m.__name__)
def test_every_wire_pattern_is_compiled_ascii_only(module: ModuleType) -> None:
    """A str pattern without re.ASCII lets \\d, \\w and \\s match far beyond ASCII."""
    patterns = [v for v in vars(module).values() if isinstance(v, re.Pattern)]
    assert patterns
    for pattern in patterns:
        if isinstance(pattern.pattern, str):
            assert pattern.flags & re.ASCII, pattern.pattern


@given(lookalike_in(STAMP, surrogates=True))
def test_an_hlc_with_a_lookalike_character_is_refused(stamp: str) -> None:
    """Not one non-ASCII character makes a stamp: it would sort above every real one."""
    with pytest.raises(ValidationError):
        hlc.decode(stamp)


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=30))
def test_a_decoded_hlc_is_its_own_ascii_encoding(text: str) -> None:
    """Whatever decodes is ASCII and encodes back to itself, so string order is clock order."""
    try:
        stamp = hlc.decode(text)
    except ValidationError:
        return
    assert text.isascii()
    assert hlc.encode(*stamp) == text


def test_the_arabic_indic_stamp_of_the_issue_is_refused() -> None:
    """The frozen-document stamp of issue 16 (int() reads it as a wall time in 2001)."""
    with pytest.raises(ValidationError):
        hlc.decode("\u0661000000000000-0000-x")


@pytest.mark.parametrize(
    ("check", "valid"),
    [(check_collection, "todos"), (check_doc_id, "doc_1"), (query.parse_filter, "n:eq:1")],
    ids=["collection", "doc id", "where field"],
)
@given(data=st.data())
def test_names_with_a_lookalike_character_are_refused(
    check: object, valid: str, data: st.DataObject
) -> None:
    """Collection names, document ids and query fields are ASCII."""
    assert callable(check)
    # Only the name part of a filter: its value may be any text.
    name, sep, rest = valid.partition(":")
    text = data.draw(lookalike_in(name, surrogates=True)) + sep + rest
    with pytest.raises(ValidationError):
        check(text)


@given(lookalike_in("m-1", surrogates=True))
def test_a_mutation_id_with_a_lookalike_character_is_refused(mutation_id: str) -> None:
    """Mutation ids are ASCII (a proxy comparing bytes sees what the node deduplicates on)."""
    raw = {"mutation_id": mutation_id, "collection": "c", "id": "d", "op": "delete"}
    with pytest.raises(ValidationError):
        parse_mutation(raw, Limits())


@given(lookalike_in("r1"))
def test_a_cursor_origin_with_a_lookalike_character_is_refused(origin: str) -> None:
    """A cursor naming a non-ASCII origin is corrupt."""
    body = ('{"' + origin + '":1}').encode()
    token = cursor.PREFIX + base64.urlsafe_b64encode(body).decode().rstrip("=")
    with pytest.raises(ValidationError):
        cursor.decode(token)


@given(lookalike_in('"0123456789abcdef0123"'))
def test_an_if_match_with_a_lookalike_character_is_refused(header: str) -> None:
    """Entity tags and the blanks around them are ASCII (a no-break space is no blank)."""
    with pytest.raises(ValidationError):
        parse_if_match(header)


@given(lookalike_in("123456"))
def test_a_totp_code_with_a_lookalike_character_matches_nothing(code: str) -> None:
    """Not a match, and no error either (compare_digest raises on non-ASCII text)."""
    assert totp.matching_step(totp.new_secret(), code, last_step=0) is None


@given(lookalike_in("12"))
def test_is_digits_is_ascii_digits_only(text: str) -> None:
    """What is_digits accepts, int() reads as the same ASCII number."""
    assert not is_digits(text)


def test_an_email_with_a_lookalike_character_is_refused() -> None:
    """Sign-in names are printable ASCII: no invisible or look-alike characters."""
    for email in ("a\u00a0b@example.com", "ab@exa\u2028mple.com", "\u0430b@example.com"):
        with pytest.raises(ValidationError):
            breakwater.auth.service.check_email(email)
