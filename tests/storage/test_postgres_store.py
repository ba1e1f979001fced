"""What only the PostgreSQL store shows: migrations, node ids, URL settings, errors, index plans.

The Store contract itself is tests/storage/test_conformance.py, run on every backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from breakwater.core.collections import CollectionConfig
from breakwater.core.errors import ConfigError, StoreUnavailable
from breakwater.core.mutation import Mutation
from breakwater.storage import _pg_schema, open_store, redact_url
from breakwater.storage._pg_batch import READ, PgWriteBatch
from breakwater.storage._pg_hosts import parse_hosts
from breakwater.storage._pg_query import key_sql
from breakwater.storage.postgres import Optimism, PostgresSettings, PostgresStore
from tests.services import POSTGRES_URL
from tests.storage.backends import CountingHooks, drop_schema, engine, postgres_url


@pytest.fixture
async def schema_url() -> AsyncIterator[tuple[str, str]]:
    """A store URL with a fresh schema, dropped afterwards."""
    url, schema = postgres_url(pool_size="2")
    yield url, schema
    await drop_schema(schema)


@pytest.fixture
async def conn(schema_url: tuple[str, str]) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the test database."""
    connection = await asyncpg.connect(POSTGRES_URL)
    yield connection
    await connection.close()


async def test_migrations_bring_a_new_schema_to_the_latest_version(
    schema_url: tuple[str, str], conn: asyncpg.Connection
) -> None:
    """A new schema ends at the latest version, and migrating again changes nothing."""
    _, schema = schema_url
    assert await _pg_schema.migrate(conn, schema) == 0
    assert await _pg_schema.migrate(conn, schema) == _pg_schema.LATEST
    versions = await conn.fetch(f'SELECT version FROM "{schema}".schema_migrations')
    assert [row[0] for row in versions] == list(range(1, _pg_schema.LATEST + 1))


async def test_migrations_apply_only_the_missing_steps_in_order(
    schema_url: tuple[str, str], conn: asyncpg.Connection
) -> None:
    """A schema at version 1 of a longer list gets steps 2 and 3, each once."""
    _, schema = schema_url
    steps = ("CREATE TABLE one (x int)", "CREATE TABLE two (x int)", "INSERT INTO two VALUES (3)")
    assert await _pg_schema.migrate(conn, schema, steps[:1]) == 0
    assert await _pg_schema.migrate(conn, schema, steps) == 1
    assert await _pg_schema.migrate(conn, schema, steps) == 3
    assert await conn.fetchval(f'SELECT COUNT(*) FROM "{schema}".two') == 1


async def test_concurrent_migrations_migrate_once(schema_url: tuple[str, str]) -> None:
    """Nodes starting together over one new database create the schema once, without errors."""
    _, schema = schema_url
    conns = [await asyncpg.connect(POSTGRES_URL) for _ in range(3)]
    try:
        await asyncio.gather(*(_pg_schema.migrate(c, schema) for c in conns))
        versions = await conns[0].fetch(f'SELECT version FROM "{schema}".schema_migrations')
    finally:
        for c in conns:
            await c.close()
    assert [row[0] for row in versions] == list(range(1, _pg_schema.LATEST + 1))


async def test_migrations_refuse_a_newer_schema(
    schema_url: tuple[str, str], conn: asyncpg.Connection
) -> None:
    """A schema from a newer Breakwater is refused with a clear error, not modified."""
    _, schema = schema_url
    await _pg_schema.migrate(conn, schema)
    await conn.execute(
        f'INSERT INTO "{schema}".schema_migrations (version) VALUES ($1)', _pg_schema.LATEST + 1
    )
    with pytest.raises(StoreUnavailable, match="newer than this Breakwater"):
        await _pg_schema.migrate(conn, schema)


async def test_a_second_node_with_the_same_id_is_refused(schema_url: tuple[str, str]) -> None:
    """Two processes with one node id would stamp equal HLCs: the second one cannot open."""
    url, _ = schema_url
    first = PostgresStore(url, engine("n1"))
    await first.open()
    try:
        second = PostgresStore(url, engine("n1"))
        with pytest.raises(ConfigError, match="node id 'n1' is already serving"):
            await second.open()
        other = PostgresStore(url, engine("n2"))
        await other.open()
        await other.aclose()
    finally:
        await first.aclose()
    again = PostgresStore(url, engine("n1"))
    await again.open()  # the id is free once its node has stopped
    await again.aclose()


async def test_an_unreachable_server_is_store_unavailable_without_the_password() -> None:
    """Nothing listening: open fails fast with StoreUnavailable, and the password is not shown."""
    url = "postgresql://postgres:s3cret@127.0.0.1:9/test?timeout=2"
    store = PostgresStore(url, engine())
    with pytest.raises(StoreUnavailable) as caught:
        await store.open()
    assert "s3cret" not in str(caught.value) and "***" in caught.value.detail


def test_url_settings_are_parsed_and_removed_before_connecting() -> None:
    """schema, pool_size and timeout are Breakwater's; other parameters go to the driver."""
    settings = PostgresSettings.from_url(
        "postgres://u:pw@db:5433/app?schema=tenant_1&pool_size=3&timeout=2.5&sslmode=disable"
    )
    assert settings == PostgresSettings(
        "postgres://u:pw@db:5433/app?sslmode=disable&target_session_attrs=read-write",
        "tenant_1",
        3,
        2.5,
    )
    assert PostgresSettings.from_url("postgresql://db/app").schema == "breakwater"


@pytest.mark.parametrize("target", ["read-write", "primary"])
def test_a_multi_host_url_keeps_a_target_that_only_a_primary_meets(target: str) -> None:
    """Hosts stay as listed for the driver, and an explicit writable target is kept."""
    url = f"postgresql://u@h1:5432,h2:5433/app?target_session_attrs={target}&schema=s"
    settings = PostgresSettings.from_url(url)
    assert settings.dsn == f"postgresql://u@h1:5432,h2:5433/app?target_session_attrs={target}"


@pytest.mark.parametrize("target", ["any", "standby", "prefer-standby", "read-only"])
def test_a_target_that_may_pick_a_standby_is_a_config_error(target: str) -> None:
    """The store writes, so a URL that lets the driver settle on a standby fails at startup."""
    with pytest.raises(ConfigError) as caught:
        PostgresSettings.from_url(f"postgresql://u:pw@h1,h2/app?target_session_attrs={target}")
    assert target in str(caught.value) and "pw@" not in str(caught.value)


@pytest.mark.parametrize(
    "query", ["schema=a;drop", "schema=", "pool_size=0", "pool_size=x", "timeout=-1"]
)
def test_bad_url_settings_are_config_errors_without_the_password(query: str) -> None:
    """A bad store URL setting fails at startup, naming the URL with its password hidden."""
    with pytest.raises(ConfigError) as caught:
        PostgresSettings.from_url(f"postgresql://u:pw@db/app?{query}")
    assert "pw@" not in str(caught.value) and "***" in str(caught.value)


def test_open_store_picks_postgres_for_both_schemes() -> None:
    """postgresql:// and postgres:// URLs both open the PostgreSQL store."""
    for scheme in ("postgresql", "postgres"):
        assert isinstance(open_store(f"{scheme}://db/app", engine()), PostgresStore)
    assert redact_url("postgresql://u:pw@db/app") == "postgresql://u:***@db/app"


async def test_configured_index_serves_queries(
    schema_url: tuple[str, str], conn: asyncpg.Connection
) -> None:
    """A configured index exists and PostgreSQL chooses it for filters on that field."""
    url, schema = schema_url
    config = {"todos": CollectionConfig("todos", indexes=("done",))}
    store = PostgresStore(url, engine(collections=config))
    await store.open()
    try:
        await store.apply(
            [Mutation(f"m{i}", "todos", f"d{i}", "set", {"done": i % 2}) for i in range(300)]
        )
    finally:
        await store.aclose()
    rank, number, text = key_sql("done")
    await conn.execute(f'SET search_path TO "{schema}"')
    await conn.execute("ANALYZE docs")
    await conn.execute("SET enable_seqscan = off")
    plan = await conn.fetch(
        f"EXPLAIN SELECT id FROM docs WHERE collection = 'todos' AND NOT deleted"
        f" AND ({rank}, {number}, {text}) = (1, 1.0::float8, '')"
        f" ORDER BY {rank}, {number}, {text}, id"
    )
    assert any("bw_todos__done" in row[0] for row in plan)


async def test_the_group_read_probes_indexes_on_a_young_table(
    schema_url: tuple[str, str], conn: asyncpg.Connection
) -> None:
    """Before statistics exist, the writer's read of known mutation ids and documents is one
    index probe per key, never a join over the whole feed or every document (which the
    planner prefers for tables of a few thousand rows, and which grows with the table)."""
    url, schema = schema_url
    store = PostgresStore(url, engine())
    await store.open()
    try:
        for start in range(0, 3000, 500):
            await store.apply(
                [
                    Mutation(f"m{i}", "todos", f"d{i}", "set", {"n": i})
                    for i in range(start, start + 500)
                ]
            )
    finally:
        await store.aclose()
    await conn.execute(f'SET search_path TO "{schema}"')
    keys = [f"new{i}" for i in range(100)]
    plan = "\n".join(
        row[0] for row in await conn.fetch("EXPLAIN " + READ, keys, ["todos"] * 100, keys)
    )
    assert "Seq Scan on changes" not in plan and "Seq Scan on docs" not in plan, plan
    assert "changes_mutation" in plan and "docs_pkey" in plan, plan


async def test_a_node_whose_id_was_taken_meanwhile_answers_unavailable_until_it_is_free(
    schema_url: tuple[str, str], conn: asyncpg.Connection
) -> None:
    """After its node-id lock is lost and another process took the id, a node refuses writes
    (503, never two writers with one id); once the id is free it claims it and writes again."""
    url, _ = schema_url
    first = PostgresStore(url, engine("n1"))
    await first.open()
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'breakwater n1' AND query LIKE '%pg_try_advisory_lock%'"
        )
        await asyncio.sleep(0.2)
        second = PostgresStore(url, engine("n1"))
        await second.open()
        with pytest.raises(StoreUnavailable, match="already serving"):
            await first.apply([Mutation("m1", "todos", "a", "set", {"x": 1})])
        with pytest.raises(StoreUnavailable, match="already serving"):
            await first.ping()
        await second.aclose()
        [result] = await first.apply([Mutation("m2", "todos", "a", "set", {"x": 2})])
        assert result.status == "applied"
    finally:
        await first.aclose()


class _Interleaved:
    """Whether ``other`` committed between a group's read and its write (truthy once it has)."""

    def __init__(self) -> None:
        self.done = False

    def __bool__(self) -> bool:
        return self.done


def _commit_after_the_next_read(
    monkeypatch: pytest.MonkeyPatch, other: PostgresStore, mutations: list[Mutation]
) -> _Interleaved:
    """Right after the next group read without the lock (only that one), ``other`` commits
    ``mutations``: another node committing between a group's read and its write."""
    original = PgWriteBatch.prefetch
    interleaved = _Interleaved()

    async def prefetch_then_commit(self: PgWriteBatch, conn: object, ms: object) -> None:
        await original(self, conn, ms)  # type: ignore[arg-type]
        if not interleaved and conn is not None:
            interleaved.done = True
            await other.apply(mutations)

    monkeypatch.setattr(PgWriteBatch, "prefetch", prefetch_then_commit)
    return interleaved


async def test_a_group_read_before_another_nodes_commit_is_redone_under_the_lock(
    schema_url: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Node A reads without the lock; node B commits before A writes: A's optimistic write
    must write nothing, and A redoes the group under the lock, so both increments count,
    B's change is not overwritten, and the feed stays gap-free with one seq per change."""
    url, _ = schema_url
    hooks = CountingHooks()
    a, b = PostgresStore(url, engine("na"), hooks=hooks), PostgresStore(url, engine("nb"))
    await a.open()
    await b.open()
    try:
        await a.apply([Mutation("m0", "c", "doc", "set", {"title": "first", "n": 1})])
        interleaved = _commit_after_the_next_read(
            monkeypatch,
            b,
            [
                Mutation("mb", "c", "doc", "increment", {"n": 10}),
                Mutation("mb2", "c", "other", "set", {"by": "b"}),
            ],
        )
        [result] = await a.apply([Mutation("ma", "c", "doc", "increment", {"n": 100})])
        monkeypatch.undo()
        assert interleaved and hooks.retries == 1
        assert result.status == "applied"
        doc = await a.get("c", "doc")
        assert doc is not None and doc.data == {"title": "first", "n": 111}
        page = await a.pull({}, None, 100)
        ids = [(e.change.origin, e.change.seq, e.change.mutation_id) for e in page.entries]
        assert sorted(seq for _, seq, _ in ids) == [1, 2, 3, 4]
        assert {m for _, _, m in ids} == {"m0", "mb", "mb2", "ma"}
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_group_read_before_another_nodes_commit_of_other_documents_is_numbered_after_it(
    schema_url: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Node A reads without the lock; node B commits other documents before A writes: A's
    group is written in its one statement, not redone, at the lsns and seqs after B's, and
    A's answers (a duplicate within the group included) name the positions it was written at."""
    url, _ = schema_url
    hooks = CountingHooks()
    a, b = PostgresStore(url, engine("na"), hooks=hooks), PostgresStore(url, engine("nb"))
    await a.open()
    await b.open()
    try:
        await a.apply([Mutation("m0", "c", "doc", "set", {"title": "first"})])
        interleaved = _commit_after_the_next_read(
            monkeypatch,
            b,
            [
                Mutation("mb", "c", "other", "set", {"by": "b"}),
                Mutation("mb2", "c", "third", "set", {"by": "b"}),
            ],
        )
        applied, again = await a.apply(
            [
                Mutation("ma", "c", "doc", "patch", {"n": 1}),
                Mutation("ma", "c", "doc", "patch", {"n": 1}),
            ]
        )
        monkeypatch.undo()
        assert interleaved and hooks.retries == 0
        assert (applied.status, applied.seq) == ("applied", 4)
        assert applied.doc is not None and applied.doc.seq == 4
        assert (again.status, again.seq) == ("duplicate", 4)
        doc = await a.get("c", "doc")
        assert doc is not None and doc.seq == 4 and doc.data == {"title": "first", "n": 1}
        page = await a.pull({}, None, 100)
        assert [(e.change.seq, e.change.mutation_id) for e in page.entries] == [
            (1, "m0"),
            (2, "mb"),
            (3, "mb2"),
            (4, "ma"),
        ]
        [next_one] = await b.apply([Mutation("mb3", "c", "other", "patch", {"k": 1})])
        assert next_one.seq == 5 and await a.head() == {a.origin: 5}
    finally:
        await a.aclose()
        await b.aclose()


async def test_two_nodes_writing_apart_keep_the_feed_gap_free_and_their_answers_true(
    schema_url: tuple[str, str],
) -> None:
    """I3 with groups numbered at write time: two nodes pushing different documents at once;
    the feed holds each seq once in lsn order, and every answer and stored document names
    the seq its feed entry has."""
    url, _ = schema_url
    nodes = [PostgresStore(url, engine(f"n{i}")) for i in range(2)]
    for node in nodes:
        await node.open()
    try:

        async def push(node: PostgresStore, name: str, count: int) -> list[tuple[str, int]]:
            results = await asyncio.gather(
                *(
                    node.apply([Mutation(f"{name}-{i}", "c", f"{name}-{i % 7}", "set", {"i": i})])
                    for i in range(count)
                )
            )
            return [(r.mutation_id, r.seq or 0) for [r] in results]

        answers: list[tuple[str, int]] = []
        for round_ in range(6):
            for part in await asyncio.gather(
                *(push(node, f"{i}.{round_}", 20) for i, node in enumerate(nodes))
            ):
                answers += part
        page = await nodes[0].pull({}, None, 1000)
        feed = [(e.change.mutation_id, e.change.seq) for e in page.entries]
        assert [seq for _, seq in feed] == list(range(1, len(answers) + 1))
        assert sorted(feed) == sorted(answers)
        newest: dict[str, int] = {}
        for entry in page.entries:
            newest[entry.change.doc_id] = entry.change.seq
        for doc_id, seq in newest.items():
            doc = await nodes[1].get("c", doc_id)
            assert doc is not None and doc.seq == seq
    finally:
        for node in nodes:
            await node.aclose()


async def test_a_group_read_without_the_lock_commits_in_two_round_trips(
    schema_url: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no other writer, a group is one read and one write statement: no BEGIN, no
    COMMIT, no retry."""
    url, _ = schema_url
    store = PostgresStore(url, engine("n1"))
    await store.open()
    statements: list[str] = []
    try:
        original_fetch, original_fetchval = asyncpg.Connection.fetch, asyncpg.Connection.fetchval
        original_execute = asyncpg.Connection.execute

        def spy(original: object) -> object:
            async def call(self: asyncpg.Connection, query: str, *args: object, **kw: object):  # type: ignore[no-untyped-def]
                statements.append(query.split()[0])
                return await original(self, query, *args, **kw)  # type: ignore[operator]

            return call

        monkeypatch.setattr(asyncpg.Connection, "fetch", spy(original_fetch))
        monkeypatch.setattr(asyncpg.Connection, "fetchval", spy(original_fetchval))
        monkeypatch.setattr(asyncpg.Connection, "execute", spy(original_execute))
        results = await store.apply(
            [Mutation(f"m{i}", "c", f"d{i}", "set", {"i": i}) for i in range(5)]
        )
        monkeypatch.undo()
        assert [r.status for r in results] == ["applied"] * 5
        assert statements == ["SELECT", "WITH"], statements
        assert [e.change.seq for e in (await store.pull({}, None, 10)).entries] == [1, 2, 3, 4, 5]
    finally:
        await store.aclose()


def test_optimism_goes_to_the_lock_under_contention_and_probes_its_way_back() -> None:
    """Stale tries push the store to the locked path, with one probe in ``probe_every``;
    fresh probes bring it back to trying every group without the lock."""
    optimism = Optimism(threshold=0.5, weight=0.2, probe_every=4)
    assert all(optimism.worth_trying() for _ in range(10))  # a store alone always tries
    tries = []
    for _ in range(40):  # another node commits between every read and write
        tried = optimism.worth_trying()
        tries.append(tried)
        if tried:
            optimism.record(stale=True)
    assert tries[:4] == [True, True, True, True]  # 0.2, 0.36, 0.49, 0.59: then the lock
    assert tries[4:] == ([False, False, False, True] * 9)[:36]  # one probe in four
    fresh_probes = 0
    while optimism.stale_rate >= 0.5:  # the other node went quiet: probes find the head still
        if optimism.worth_trying():
            optimism.record(stale=False)
            fresh_probes += 1
    assert fresh_probes == 3  # 0.945 -> 0.756 -> 0.605 -> 0.484
    assert all(optimism.worth_trying() for _ in range(10))


@pytest.mark.parametrize(
    ("netloc", "hosts"),
    [
        ("u:pw@db", (("db", 5432),)),
        ("u@h1:5433,h2,[::1]:5434", (("h1", 5433), ("h2", 5432), ("::1", 5434))),
        ("", ()),
    ],
)
def test_a_url_names_its_hosts_in_order(netloc: str, hosts: tuple[tuple[str, int], ...]) -> None:
    """Every listed host with its port (5432 if none); no host means the driver's default."""
    assert parse_hosts(netloc) == hosts


def test_a_host_with_a_bad_port_is_a_config_error() -> None:
    """A port that is not a number fails at startup, without the password."""
    with pytest.raises(ConfigError) as caught:
        PostgresSettings.from_url("postgresql://u:pw@h1:5432,h2:x/app")
    assert "port" in str(caught.value) and "pw@" not in str(caught.value)


async def test_a_host_that_never_answers_costs_one_try_and_the_next_host_serves(
    schema_url: tuple[str, str],
) -> None:
    """A vanished machine listed first (it takes the TCP connection, never answers) delays the
    first connection by one timeout; the next host serves, and is tried first from then on."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    parts = urlsplit(schema_url[0])
    netloc = f"postgres@127.0.0.1:{silent.getsockname()[1]},{parts.hostname}:{parts.port}"
    store = PostgresStore(f"{parts._replace(netloc=netloc).geturl()}&timeout=1", engine())
    try:
        await store.open()
        [result] = await store.apply([Mutation("m1", "todos", "a", "set", {"x": 1})])
        assert result.status == "applied"
        await store.ping()
    finally:
        await store.aclose()
        silent.setblocking(False)
        tried = 0
        with contextlib.suppress(BlockingIOError):
            while True:
                silent.accept()[0].close()
                tried += 1
        silent.close()
    assert tried == 1


_HOST_NAMES = st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True)
_V6 = st.ip_addresses(v=6).map(str)


@given(
    st.lists(
        st.tuples(st.one_of(_HOST_NAMES, _V6), st.one_of(st.none(), st.integers(1, 65535))),
        min_size=1,
        max_size=5,
    ),
    st.sampled_from(["", "u@", "u:p@ss@"]),
)
def test_every_listed_host_is_found_with_its_port(
    listed: list[tuple[str, int | None]], userinfo: str
) -> None:
    """Whatever the names, addresses (IPv6 in brackets), ports and credentials, the hosts come
    back in order, 5432 where no port is given."""
    items = [
        (f"[{host}]" if ":" in host else host) + ("" if port is None else f":{port}")
        for host, port in listed
    ]
    netloc = userinfo + ",".join(items)
    assert parse_hosts(netloc) == tuple((host, port or 5432) for host, port in listed)
