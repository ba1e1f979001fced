"""The per-address connection cap's bookkeeping, against a model of open connections."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from breakwater.server.slow_clients import AddressCap

ADDRESSES = st.sampled_from(["10.0.0.1", "10.0.0.2", "192.0.2.9", "::1"])
EXEMPT = "192.0.2.9"


@given(
    limit=st.integers(0, 4),
    steps=st.lists(st.tuples(st.booleans(), ADDRESSES, st.integers(0, 50)), max_size=200),
)
def test_the_cap_admits_exactly_while_an_address_is_under_it(
    limit: int, steps: list[tuple[bool, str, int]]
) -> None:
    """Opens are admitted iff the address holds fewer than ``limit`` (or is exempt, or the cap
    is off); closing an admitted connection frees its slot; nothing is left once all close."""
    cap = AddressCap(limit, lambda address: address == EXEMPT)
    admitted: list[str] = []
    for opening, address, pick in steps:
        if opening or not admitted:
            held = Counter(admitted)[address]
            expected = limit == 0 or address == EXEMPT or held < limit
            assert cap.admit(address) is expected
            if expected and limit and address != EXEMPT:
                admitted.append(address)
        else:
            cap.release(admitted.pop(pick % len(admitted)))
    for address in admitted:
        cap.release(address)
    assert all(cap.admit(address) for address in ["10.0.0.1"] * max(limit, 1))
