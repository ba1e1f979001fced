"""``parse_valid_mutations`` (a push's mutations checked together) against ``parse_mutation``."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from breakwater.core.errors import BreakwaterError
from breakwater.core.limits import Limits
from breakwater.core.mutation import Mutation, parse_mutation, parse_valid_mutations

# Each pattern's edge: its classes' neighbours, newlines and control characters (the joined
# check's separator), non-ASCII, and lengths at and past each limit.
_CHARS = "aZ09_.:~-@+=é \n\x00\x1f/"
names = st.one_of(
    st.sampled_from(["a", "b.c", "7"]),
    st.text(_CHARS, max_size=4),
    st.sampled_from(["todos", "a" * 64, "a" * 65, "i" * 128, "i" * 129, "d" * 256, "d" * 257]),
    st.integers(),
    st.none(),
    st.lists(st.text(_CHARS, max_size=2), max_size=1),
)
field_names = st.text(_CHARS, max_size=4)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(field_names, children),
    max_leaves=8,
)
documents = st.dictionaries(
    st.one_of(st.sampled_from(["f", "g h"]), field_names, st.sampled_from(["f" * 256, "f" * 257])),
    values,
    max_size=4,
)
valid_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,8}", fullmatch=True)
valid_mutations = st.fixed_dictionaries(
    {
        "mutation_id": st.from_regex(r"[A-Za-z0-9_.:~-]{1,12}", fullmatch=True),
        "collection": valid_names,
        "id": st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.:@~+=-]{0,12}", fullmatch=True),
        "op": st.sampled_from(["set", "patch"]),
        "data": st.dictionaries(
            st.text(min_size=1, max_size=3).filter(str.isprintable),
            st.none() | st.integers(-9, 9) | st.text(max_size=3) | st.lists(st.booleans()),
            max_size=3,
        ),
    },
    optional={"hlc": st.text(max_size=3), "if_match": st.sampled_from(["*", "0" * 20])},
)
increments = st.fixed_dictionaries(
    {
        "mutation_id": st.just("m"),
        "collection": st.just("c"),
        "id": st.just("d"),
        "op": st.just("increment"),
        "data": st.dictionaries(st.sampled_from(["n", "m"]), st.integers() | st.booleans()),
    }
)
# A valid mutation with one member replaced by something else, or taken out (``GONE``).
GONE = object()
bad_documents = st.dictionaries(
    st.one_of(st.sampled_from(["", "\n", "a\x00", "\x1f", "f" * 256, "f" * 257]), field_names),
    values,
    min_size=1,
    max_size=3,
)
replacements = {
    "mutation_id": names,
    "collection": names,
    "id": names,
    "op": st.sampled_from(["delete", "delete", "increment", "put", 1, None]),
    "data": st.one_of(bad_documents, st.sampled_from([None, 1, [1], "d"])),
    "hlc": st.sampled_from([None, "x", 1, ["x"]]),
    "if_match": names,
    "extra": st.just(1),
}
corrupted = st.builds(
    lambda raw, change: {
        **{key: value for key, value in raw.items() if key != change[0]},
        **({} if change[1] is GONE else {change[0]: change[1]}),
    },
    valid_mutations,
    st.sampled_from(sorted(replacements)).flatmap(
        lambda key: st.tuples(st.just(key), replacements[key] | st.just(GONE))
    ),
)
# Valid mutations with one corrupted among them (or a value that is no mutation at all): when
# the batch check misses one kind of problem, such a push is where it shows.
pushes = st.builds(
    lambda before, bad, after: [*before, bad, *after],
    st.lists(st.one_of(valid_mutations, increments), max_size=2),
    st.one_of(corrupted, corrupted, corrupted, increments, st.sampled_from([[], "m"])),
    st.lists(valid_mutations, max_size=2),
)
limits = st.sampled_from(
    [Limits(), Limits(), Limits(max_document_bytes=40, max_depth=2), Limits(max_depth=1)]
)
OK = {"mutation_id": "m", "collection": "c", "id": "d", "op": "set", "data": {"f": 1}}


def one_by_one(raws: list[Any], limit: Limits) -> list[Mutation] | BreakwaterError:
    """Each mutation through ``parse_mutation``, or the first problem it raises."""
    try:
        return [parse_mutation(raw, limit) for raw in raws]
    except BreakwaterError as error:
        return error


@settings(max_examples=500)
@given(pushes, limits)
@example([OK, {**OK, "data": {"\n": 1}}], Limits())
@example([OK, {**OK, "op": "delete"}], Limits())
@example([OK, {**OK, "if_match": "1"}], Limits())
@example([OK, {**OK, "hlc": 1}], Limits())
@example([OK, {**OK, "x": 1}], Limits())
@example([OK, {**OK, "id": "-"}], Limits())
def test_it_accepts_a_push_only_when_each_mutation_parses_and_then_parses_the_same(
    raws: list[Any], limit: Limits
) -> None:
    """Whatever the batch check accepts, one by one parses into the same mutations."""
    together = parse_valid_mutations(raws, limit)
    if together is not None:
        assert one_by_one(raws, limit) == together


@given(st.lists(valid_mutations, max_size=6))
def test_it_accepts_a_push_of_valid_mutations(raws: list[Any]) -> None:
    """A push that parses one by one is parsed together too (the fast path is taken)."""
    limit = Limits()
    parsed = one_by_one(raws, limit)
    if isinstance(parsed, list):
        assert parse_valid_mutations(raws, limit) == parsed


def test_a_newline_inside_a_name_is_refused_though_the_joined_names_match() -> None:
    """``a\\nb`` joins into two valid-looking names; the batch check still refuses it."""
    raw = {"mutation_id": "m\n1", "collection": "c", "id": "d", "op": "delete"}
    assert parse_valid_mutations([raw], Limits()) is None


def test_a_push_of_deletes_only_is_accepted() -> None:
    """No document, so no field names: the empty joined check passes."""
    raw = {"mutation_id": "m1", "collection": "c", "id": "d", "op": "delete"}
    assert parse_valid_mutations([raw], Limits()) == [parse_mutation(raw, Limits())]
