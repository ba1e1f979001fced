"""The OpenID Connect records of both auth stores: a started sign-in is spent once, a provider's
``sub`` belongs to one account at most, under races and over generated sequences of links."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from breakwater.auth.records import Account, LinkedIdentity, OidcFlow
from breakwater.auth.sqlite_store import SqliteAuthStore
from breakwater.auth.store import AuthStore, IdentityTaken
from tests.auth.backends import AUTH_BACKENDS, opened_auth_store

RACERS = 8


@pytest.fixture(params=AUTH_BACKENDS)
def auth_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AuthStore]:
    """An open auth store of each backend."""
    with opened_auth_store(request.param, tmp_path) as store:
        yield store


def _race(work: Callable[[int], object]) -> list[object]:
    """Run ``work(i)`` in ``RACERS`` threads released at once; results or raised errors."""
    barrier = threading.Barrier(RACERS)
    outcomes: list[object] = [None] * RACERS

    def run(index: int) -> None:
        barrier.wait()
        try:
            outcomes[index] = work(index)
        except Exception as error:
            outcomes[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def _account(uid: str) -> Account:
    return Account(uid, None, None, anonymous=False, created_ms=1)


def test_a_flow_is_spent_by_exactly_one_of_racing_callbacks(auth_store: AuthStore) -> None:
    """Of concurrent takes of one state, one gets the flow; a later take finds nothing."""
    flow = OidcFlow("h1", "local", "nonce", "app:/cb", expires_ms=10_000)
    auth_store.add_flow(flow)
    outcomes = _race(lambda _: auth_store.take_flow("h1", now_ms=5_000))
    assert outcomes.count(flow) == 1 and outcomes.count(None) == RACERS - 1
    assert auth_store.take_flow("h1", now_ms=5_000) is None


def test_an_expired_flow_is_refused(auth_store: AuthStore) -> None:
    """Past ``expires_ms`` the flow is gone."""
    auth_store.add_flow(OidcFlow("h2", "local", "nonce", "app:/cb", expires_ms=10_000))
    assert auth_store.take_flow("h2", now_ms=10_000) is None


def test_racing_first_sign_ins_create_one_account(auth_store: AuthStore) -> None:
    """Concurrent first sign-ins of one provider user: one account, the rest IdentityTaken."""

    def create(index: int) -> str:
        uid = f"u{index}"
        auth_store.create_linked_account(_account(uid), LinkedIdentity("local", "s1", uid, 1))
        return uid

    outcomes = _race(create)
    created = [o for o in outcomes if isinstance(o, str)]
    assert len(created) == 1
    assert all(isinstance(o, IdentityTaken) for o in outcomes if not isinstance(o, str))
    assert auth_store.identity_owner("local", "s1") == created[0]
    losers = [f"u{i}" for i in range(RACERS) if f"u{i}" != created[0]]
    assert all(auth_store.account(uid) is None for uid in losers)


def test_a_linked_identity_cannot_be_linked_again_and_goes_with_its_account(
    auth_store: AuthStore,
) -> None:
    """A second owner is refused; deleting the account frees the identity."""
    auth_store.create_linked_account(_account("a"), LinkedIdentity("local", "s", "a", 1))
    auth_store.create_account(_account("b"))
    with pytest.raises(IdentityTaken):
        auth_store.add_identity(LinkedIdentity("local", "s", "b", 2))
    auth_store.add_identity(LinkedIdentity("other", "s", "b", 2))
    assert [i.provider for i in auth_store.identities("b")] == ["other"]
    assert auth_store.delete_account("a", 10)
    assert auth_store.identity_owner("local", "s") is None
    auth_store.add_identity(LinkedIdentity("local", "s", "b", 3))
    assert auth_store.identity_owner("local", "s") == "b"


LINKS = st.lists(
    st.tuples(st.sampled_from(["p", "q"]), st.sampled_from(["s1", "s2"]), st.sampled_from("abc")),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(LINKS)
def test_an_identity_has_the_first_owner_that_linked_it(links: list[tuple[str, str, str]]) -> None:
    """Over any sequence of links, each (provider, sub) is owned by the first account that
    linked it; every later link of it is refused and changes nothing."""
    with tempfile.TemporaryDirectory() as directory:
        store = SqliteAuthStore(Path(directory) / "auth.db")
        store.open()
        try:
            owners: dict[tuple[str, str], str] = {}
            for provider, sub, uid in links:
                try:
                    store.add_identity(LinkedIdentity(provider, sub, uid, 1))
                    assert (provider, sub) not in owners
                    owners[(provider, sub)] = uid
                except IdentityTaken:
                    assert (provider, sub) in owners
            for (provider, sub), uid in owners.items():
                assert store.identity_owner(provider, sub) == uid
            for uid in "abc":
                mine = {(i.provider, i.sub) for i in store.identities(uid)}
                assert mine == {key for key, owner in owners.items() if owner == uid}
        finally:
            store.close()
