"""Versioned schema migrations of the PostgreSQL store (``schema_migrations`` lists the versions).

Each step runs in one transaction with the schema's migration lock held, so nodes that start
together over one database migrate it once, and a failed step leaves the previous version whole
(PostgreSQL DDL is transactional). Text that is compared or ordered (ids, HLCs, seqs' origins)
uses the ``"C"`` collation: byte order, as SQLite compares, whatever the database's locale.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from breakwater.core import incarnation
from breakwater.core.errors import ConfigError, StoreIncompatible

MIGRATIONS: tuple[str, ...] = (
    # 1: documents (visible data + packed CRDT clocks), the change feed (which also answers
    # "was this mutation id applied?" for the retention horizon), per-origin heads, the feed's
    # head position (its row lock serialises group commits: see docs/adr/0005), conflicts.
    """
    CREATE TABLE docs (
        collection text COLLATE "C" NOT NULL,
        id text COLLATE "C" NOT NULL,
        data text,
        state text NOT NULL,
        version text NOT NULL,
        hlc text COLLATE "C" NOT NULL,
        origin text COLLATE "C" NOT NULL,
        seq bigint NOT NULL,
        lsn bigint NOT NULL,
        deleted boolean NOT NULL,
        PRIMARY KEY (collection, id)
    );
    CREATE TABLE changes (
        lsn bigint PRIMARY KEY,
        origin text COLLATE "C" NOT NULL,
        seq bigint NOT NULL,
        collection text COLLATE "C" NOT NULL,
        doc_id text COLLATE "C" NOT NULL,
        mutation_id text COLLATE "C" NOT NULL,
        hlc text COLLATE "C" NOT NULL,
        op text NOT NULL,
        at_ms bigint NOT NULL,
        UNIQUE (origin, seq)
    );
    CREATE UNIQUE INDEX changes_mutation ON changes (mutation_id);
    CREATE INDEX changes_at ON changes (at_ms);
    CREATE TABLE origins (
        origin text COLLATE "C" PRIMARY KEY,
        seq bigint NOT NULL,
        low_water bigint NOT NULL DEFAULT 0,
        hlc text COLLATE "C" NOT NULL DEFAULT ''
    );
    CREATE TABLE feed_head (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        lsn bigint NOT NULL
    );
    INSERT INTO feed_head (lsn) VALUES (0);
    CREATE TABLE conflicts (
        id bigserial PRIMARY KEY,
        collection text COLLATE "C" NOT NULL,
        doc_id text COLLATE "C" NOT NULL,
        mutation_id text NOT NULL,
        origin text NOT NULL,
        seq bigint NOT NULL,
        fields text NOT NULL,
        winner_hlc text NOT NULL,
        at_ms bigint NOT NULL
    );
    CREATE INDEX conflicts_doc ON conflicts (collection, doc_id);
    """,
    # 2: the store's own settings; ``incarnation`` qualifies the origin it writes under (ADR 0018).
    """
    CREATE TABLE meta (key text COLLATE "C" PRIMARY KEY, value text NOT NULL);
    """,
    # 3: replication (ADR 0022): a mutation applied in two regions has a position in each, and
    # the feed keeps both; the region's state, peer cursors, leases and stable vector.
    """
    DROP INDEX changes_mutation;
    CREATE INDEX changes_mutation ON changes (mutation_id);
    CREATE TABLE replication (
        key text COLLATE "C" PRIMARY KEY,
        value text NOT NULL,
        updated_ms bigint NOT NULL
    );
    """,
    # 4: a group read without the lock takes it inside its one write statement (ADR 0059):
    # NULL when a row the group read has changed since (redo it under the lock), else how far
    # the feed head and the group's origin moved since its read, to number its rows after them.
    # Statements in a volatile function take a fresh snapshot, so these reads, unlike the rest
    # of the calling statement, see every group committed while this one waited for the lock.
    """
    CREATE FUNCTION claim_head(
        read_lsn bigint, own text, read_seq bigint, renumber boolean,
        keys_c text[], keys_i text[], mids text[]
    ) RETURNS bigint[] LANGUAGE plpgsql VOLATILE AS $$
    DECLARE
        head bigint;
        own_seq bigint;
    BEGIN
        SELECT lsn INTO head FROM feed_head FOR UPDATE;
        IF head = read_lsn THEN
            RETURN ARRAY[0, 0];
        END IF;
        IF NOT renumber
            OR EXISTS (SELECT FROM unnest(keys_c, keys_i) AS k(c, i) CROSS JOIN LATERAL
                (SELECT FROM docs d WHERE d.collection = k.c AND d.id = k.i
                 AND d.lsn > read_lsn OFFSET 0) AS moved)
            OR EXISTS (SELECT FROM unnest(mids) AS k(m) CROSS JOIN LATERAL
                (SELECT FROM changes c WHERE c.mutation_id = k.m AND c.lsn > read_lsn
                 OFFSET 0) AS seen)
        THEN
            RETURN NULL;
        END IF;
        SELECT seq INTO own_seq FROM origins WHERE origin = own;
        RETURN ARRAY[head - read_lsn, COALESCE(own_seq, 0) - read_seq];
    END
    $$;
    """,
)

LATEST = len(MIGRATIONS)


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


async def lock_schema(conn: asyncpg.Connection, schema: str) -> None:
    """Take the schema's migration lock for the current transaction."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"breakwater-migrate:{schema}"
    )


async def _version(conn: asyncpg.Connection, schema: str) -> int:
    version: int = await conn.fetchval(
        f"SELECT COALESCE(MAX(version), 0) FROM {quote_ident(schema)}.schema_migrations"
    )
    return version


async def migrate(
    conn: asyncpg.Connection, schema: str, migrations: Sequence[str] = MIGRATIONS
) -> int:
    """Create ``schema`` if needed and bring it to the newest version; return the old version."""
    latest = len(migrations)
    async with conn.transaction():
        await lock_schema(conn, schema)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {quote_ident(schema)}.schema_migrations"
            " (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        old = await _version(conn, schema)
    if old > latest:
        raise StoreIncompatible(
            f"the database schema {schema!r} is at version {old}, newer than this Breakwater"
            f" ({latest}); upgrade Breakwater or restore a backup"
        )
    for version in range(old + 1, latest + 1):
        async with conn.transaction():
            await lock_schema(conn, schema)
            if await _version(conn, schema) >= version:
                continue  # another node migrated meanwhile
            await conn.execute(f"SET LOCAL search_path TO {quote_ident(schema)}")
            await conn.execute(migrations[version - 1])
            await conn.execute(
                f"INSERT INTO {quote_ident(schema)}.schema_migrations (version) VALUES ($1)",
                version,
            )
    return old


async def require_existing(conn: asyncpg.Connection, schema: str) -> None:
    """Refuse to mark as restored a schema that holds no store (a wrong URL or schema name
    would otherwise become a new, empty store that the nodes then serve)."""
    table = f"{quote_ident(schema)}.schema_migrations"
    if await conn.fetchval("SELECT to_regclass($1)", table) is None or not await _version(
        conn, schema
    ):
        raise ConfigError(f"the database schema {schema!r} holds no Breakwater store to restore")


async def incarnate(conn: asyncpg.Connection, restored: bool) -> str:
    """The store's incarnation: kept across opens, new for a new store and after a restore.

    Runs inside the caller's transaction, under the schema's lock: nodes that open a store at
    once agree on one incarnation."""
    stored: str | None = await conn.fetchval("SELECT value FROM meta WHERE key = 'incarnation'")
    value = incarnation.new() if stored is None or restored else stored
    await conn.execute(
        "INSERT INTO meta (key, value) VALUES ('incarnation', $1)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        value,
    )
    return value
