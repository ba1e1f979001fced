"""Scoped sync (``Client(sync_collections=...)``): a device pulls and follows only its collections,
over every transport, each change of them exactly once; writes elsewhere still push."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breakwater.client import Client
from breakwater.core import codec
from breakwater.core.errors import ValidationError
from tests.client.conftest import feed, wait_status
from tests.conftest import ServerProcess


class RecordingNetwork(httpx.AsyncBaseTransport):
    """A transport (the real network by default) remembering the query and the answer of every
    pull, and the query of every SSE stream."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport()
        self.pulls: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.streams: list[dict[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path == "/v1/realtime/sse":
            self.streams.append(dict(request.url.params))
        if request.url.path != "/v1/sync/pull":
            return response
        body = await response.aread()
        await response.aclose()
        if response.status_code == 200:
            self.pulls.append((dict(request.url.params), codec.loads(body)))
        return httpx.Response(
            response.status_code, headers=response.headers, content=body, request=request
        )

    async def aclose(self) -> None:
        await self.inner.aclose()

    def data_pulls(self) -> list[dict[str, Any]]:
        """The answers of the sync loop's pulls (with states), oldest first."""
        return [page for params, page in self.pulls if params.get("include_state") == "true"]


def rest_put(url: str, collection: str, doc_id: str, data: dict[str, Any]) -> None:
    """Another writer changes the server."""
    response = httpx.put(f"{url}/v1/collections/{collection}/docs/{doc_id}", json=data)
    response.raise_for_status()


async def wait_for_doc(client: Client, collection: str, doc_id: str, seconds: float = 15) -> None:
    """Wait until the device's live query of ``collection`` holds ``doc_id``."""
    async with asyncio.timeout(seconds):
        async for documents in client.collection(collection).watch():
            if doc_id in {d.id for d in documents}:
                return


# -- the scope argument ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "scope"),
    [
        (None, None),
        (["notes", "inbox"], ("inbox", "notes")),
        (("b", "a", "b"), ("a", "b")),
        ([f"c{i}" for i in range(64)], tuple(sorted(f"c{i}" for i in range(64)))),
    ],
)
def test_scope_is_sorted_without_repeats(tmp_path: Path, given: Any, scope: Any) -> None:
    """The scope a client follows is its collections sorted, once each; None is all."""
    client = Client(["http://unused"], tmp_path / "d.db", sync_collections=given)
    assert client.sync_collections == scope


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ([], ValueError),
        ("notes", ValueError),
        ([f"c{i}" for i in range(65)], ValueError),
        (["notes-dev1"], ValidationError),
        (["notes", 7], ValidationError),
    ],
)
def test_a_scope_that_is_a_mistake_is_refused(tmp_path: Path, given: Any, error: type) -> None:
    """Empty, a bare string, over 64 names or a bad name raise before anything opens."""
    with pytest.raises(error):
        Client(["http://unused"], tmp_path / "d.db", sync_collections=given)


# -- every transport, against a real node ----------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["websocket", "sse", "long_poll"])
async def test_a_scoped_device_gets_its_collections_once_and_nothing_else(
    tmp_path: Path, start_server: Callable[..., ServerProcess], transport: str
) -> None:
    """Over each transport: other collections' writes wake no pull and never reach the device;
    every change of its own collections arrives in exactly one pull, also across a reopen."""
    server = start_server()
    rest_put(server.url, "other", "before", {"v": 0})
    network = RecordingNetwork()
    options: dict[str, Any] = {
        "sync_collections": ["mine"],
        "transports": (transport,),
        "poll_interval": 600,
        "long_poll_wait": 5.0,
        "http_transport": network,
    }
    async with Client([server.url], tmp_path / "phone.db", **options) as phone:
        # Online: the first round is over (its pull found nothing of "mine").
        await wait_status(phone, lambda s: s.transport == transport and s.state == "online", 15)
        before = len(network.data_pulls())
        async with httpx.AsyncClient(base_url=server.url) as writer:
            for i in range(20):  # one by one, the device's loop running in between
                response = await writer.put(f"/v1/collections/other/docs/o{i}", json={"v": i})
                response.raise_for_status()
        rest_put(server.url, "mine", "m1", {"v": 1})
        await wait_for_doc(phone, "mine", "m1")
        # One notice, for m1: the twenty other writes woke nothing.
        assert len(network.data_pulls()) - before == 1

    rest_put(server.url, "mine", "m2", {"v": 2})  # while the phone is closed
    rest_put(server.url, "other", "o-closed", {"v": 2})
    async with Client([server.url], tmp_path / "phone.db", **options) as phone:
        rest_put(server.url, "mine", "m3", {"v": 3})
        await wait_for_doc(phone, "mine", "m3")
        await wait_for_doc(phone, "mine", "m2")
        held = {(d.collection, d.id) for d in await phone.server_documents()}

    assert held == {("mine", f"m{i}") for i in range(1, 4)}
    assert all(params.get("collections") == "mine" for params, _ in network.pulls)
    assert all(params.get("collections") == "mine" for params in network.streams)
    pulled = [c for page in network.data_pulls() for c in page["changes"]]
    assert {c["collection"] for c in pulled} == {"mine"}
    mine_in_feed = {(c["origin"], c["seq"]) for c in feed(server.url) if c["collection"] == "mine"}
    assert Counter((c["origin"], c["seq"]) for c in pulled) == Counter(mine_in_feed)


# -- writes outside the scope, and changing the scope (in-process node) ----------------------


def in_process(
    path: Path,
    node: httpx.AsyncClient,
    scope: list[str] | None,
    network: RecordingNetwork | None = None,
) -> Client:
    return Client(
        ["http://node"],
        path,
        http_transport=network or httpx.ASGITransport(app=node.app),  # type: ignore[attr-defined]
        transports=("long_poll",),
        long_poll_wait=1.0,
        backoff_cap=0.5,
        sync_collections=scope,
    )


async def test_a_write_outside_the_scope_is_pushed_shown_until_settled_then_left_out(
    tmp_path: Path, make_client: Callable[..., Any]
) -> None:
    """The node gets the write once; the device shows it pending, then holds only its scope."""
    node: httpx.AsyncClient = await make_client()
    async with in_process(tmp_path / "d.db", node, ["mine"]) as phone:
        shown = await phone.collection("outbox_of_bob").set("hello", {"text": "hi bob"})
        assert shown is not None and shown.pending
        await phone.collection("mine").set("m", {"v": 1})
        async with asyncio.timeout(20):
            await phone.wait_synced()
        assert await phone.outbox() == []
        assert await phone.collection("outbox_of_bob").get("hello") is None
        assert await phone.collection("outbox_of_bob").query() == []
        assert [(d.collection, d.id) for d in await phone.server_documents()] == [("mine", "m")]
    answer = (await node.get("/v1/collections/outbox_of_bob/docs/hello")).json()
    assert answer["data"] == {"text": "hi bob"}
    pulled = (await node.get("/v1/sync/pull")).json()["changes"]
    assert Counter(c["collection"] for c in pulled) == {"outbox_of_bob": 1, "mine": 1}


async def test_changing_the_scope_resyncs_and_keeps_pending_writes(
    tmp_path: Path, make_client: Callable[..., Any]
) -> None:
    """A wider scope brings the older documents the old cursor skipped; a narrower one drops
    what it leaves out; a write made offline under the old scope is still delivered."""
    node: httpx.AsyncClient = await make_client()
    for collection, doc_id in [("a", "a1"), ("b", "b1"), ("c", "c1")]:
        response = await node.put(f"/v1/collections/{collection}/docs/{doc_id}", json={"v": 1})
        assert response.status_code == 201
    path = tmp_path / "d.db"

    async def held(scope: list[str] | None) -> set[tuple[str, str]]:
        async with in_process(path, node, scope) as phone:
            async with asyncio.timeout(20):
                await phone.wait_synced()
            return {(d.collection, d.id) for d in await phone.server_documents()}

    assert await held(["a"]) == {("a", "a1")}
    async with Client(["http://unused"], path, sync=False) as offline:
        await offline.collection("a").set("a2", {"v": 2})
    assert await held(["a", "b"]) == {("a", "a1"), ("a", "a2"), ("b", "b1")}
    assert await held(["b"]) == {("b", "b1")}
    assert await held(None) == {("a", "a1"), ("a", "a2"), ("b", "b1"), ("c", "c1")}


async def test_reopening_with_the_same_scope_keeps_the_cursor(
    tmp_path: Path, make_client: Callable[..., Any]
) -> None:
    """The same scope again (in another order) is no change: the device pulls on from its
    cursor, with no resync and no re-download."""
    node: httpx.AsyncClient = await make_client()
    for i in range(3):
        await node.put(f"/v1/collections/a/docs/x{i}", json={"v": i})
    network = RecordingNetwork(httpx.ASGITransport(app=node.app))  # type: ignore[attr-defined]
    async with in_process(tmp_path / "d.db", node, ["a", "b"], network) as phone:
        async with asyncio.timeout(20):
            await phone.wait_synced()
    last_cursor = network.data_pulls()[-1]["cursor"]
    first_run = len(network.pulls)
    async with in_process(tmp_path / "d.db", node, ["b", "a", "a"], network) as phone:
        async with asyncio.timeout(20):
            await phone.wait_synced()
    reopened = [(params, page) for params, page in network.pulls[first_run:]]
    assert reopened and all(params["cursor"] == last_cursor for params, _ in reopened)
    assert all(page["changes"] == [] for _, page in reopened)


# -- model-based: any scopes, any writes, any order (one real node for every example) -------

SCOPES = [None, ("a",), ("a", "b"), ("c",)]
Step = tuple[str, Any, str, int]
write = (st.sampled_from("abc"), st.sampled_from("xy"), st.integers(1, 9))
steps = st.lists(
    st.one_of(
        st.tuples(st.just("node"), *write),
        st.tuples(st.just("device"), *write),
        st.tuples(st.just("reopen"), st.sampled_from(SCOPES), st.just(""), st.just(0)),
    ),
    min_size=1,
    max_size=8,
)
examples = itertools.count()


@pytest.mark.slow
@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps, st.sampled_from(SCOPES))
def test_a_device_holds_exactly_the_nodes_documents_of_its_scope(
    tmp_path_factory: pytest.TempPathFactory,
    start_server: Callable[..., ServerProcess],
    steps: list[Step],
    first: Any,
) -> None:
    """Whatever the writes on the node and on the device and the scope changes between them,
    once synced the device holds the node's documents of its scope (data and version) and
    nothing else, its outbox is empty, and each device write is in the feed once."""
    if not hasattr(start_server, "shared"):
        start_server.shared = start_server()  # type: ignore[attr-defined]
    server: ServerProcess = start_server.shared  # type: ignore[attr-defined]
    # Collections of their own per example: "a" is "a<k>" in example k.
    k = next(examples)
    names = {letter: f"{letter}{k}" for letter in "abc"}
    path = tmp_path_factory.mktemp("device") / "d.db"
    asyncio.run(_play_scopes(server.url, path, names, steps, first))


def _scope_of(names: dict[str, str], scope: Any) -> list[str] | None:
    return None if scope is None else [names[letter] for letter in scope]


async def _play_scopes(
    url: str, path: Path, names: dict[str, str], steps: list[Step], scope: Any
) -> None:
    def device(scope: Any) -> Client:
        return Client([url], path, backoff_cap=0.5, sync_collections=_scope_of(names, scope))

    async with httpx.AsyncClient(base_url=url) as node:
        phone = await device(scope).__aenter__()
        device_id = phone.device_id
        try:
            for kind, what, doc_id, value in steps:
                if kind == "node":
                    path_ = f"/v1/collections/{names[what]}/docs/{doc_id}"
                    (await node.put(path_, json={"v": value})).raise_for_status()
                elif kind == "device":
                    await phone.collection(names[what]).increment(doc_id, {"n": value})
                else:
                    await phone.aclose()
                    scope = what
                    phone = await device(scope).__aenter__()
            try:
                async with asyncio.timeout(20):
                    await phone.refresh()
                    await phone.wait_synced()
            except TimeoutError:
                outbox = await phone.outbox()
                raise AssertionError(f"not synced: {phone.status}, outbox {outbox}") from None
            held = {
                (d.collection, d.id): (d.data, d.version) for d in await phone.server_documents()
            }
            views = {
                (names[c], d.id): d.data
                for c in "abc"
                for d in await phone.collection(names[c]).query()
            }
            assert await phone.outbox() == []
        finally:
            await phone.aclose()
        on_node = {}
        for collection in names.values():
            page = (await node.get(f"/v1/collections/{collection}/docs")).json()
            for envelope in page["docs"]:
                on_node[(collection, envelope["id"])] = (envelope["data"], envelope["version"])
    followed = _scope_of(names, scope)
    in_scope = {k: v for k, v in on_node.items() if followed is None or k[0] in followed}
    # Without a scope the device follows every collection: other examples' too.
    held = {k: v for k, v in held.items() if k[0] in names.values()}
    assert held == in_scope
    assert views == {k: data for k, (data, _) in in_scope.items()}
    written = Counter(c["mutation_id"] for c in feed(url) if c["mutation_id"].startswith(device_id))
    assert len(written) == sum(kind == "device" for kind, *_ in steps)
    assert set(written.values()) <= {1}
