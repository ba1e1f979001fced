"""``breakwater backup`` and ``breakwater archive``: copies of a node that a restore starts from."""

from __future__ import annotations

import asyncio
import secrets
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from breakwater.config import Config, load_config
from breakwater.core.engine import Engine
from breakwater.core.hlc import HybridClock
from breakwater.ops import sealing
from breakwater.ops.archive import Archiver
from breakwater.ops.backup import AUTH_FILE, KEYS_FILE, NodeFiles, default_name, take_backup
from breakwater.ops.objects import open_objects
from breakwater.storage import open_store

DataOption = Annotated[Path | None, typer.Option(help="Data directory (default ./data).")]
StoreOption = Annotated[str | None, typer.Option(help="Store URL (sqlite:///… or postgresql://…).")]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML config file (or BREAKWATER_CONFIG).")
]
KeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--key-file", help="Encrypt with the base64 key in this file (or BREAKWATER_BACKUP_KEY)."
    ),
]


def node_files(config: Config) -> NodeFiles:
    """Where a node of ``config`` keeps its store, accounts and signing keys."""
    named = config.auth.signing_keys_file
    keys = Path(named) if named else config.data / KEYS_FILE
    return NodeFiles(config.store_url, config.data / AUTH_FILE, keys)


def progress(line: str) -> None:
    """A progress line on stderr (shows in a pipe too)."""
    print(line, file=sys.stderr, flush=True)


def backup(
    to: Annotated[str, typer.Option("--to", help="file:///folder or s3://bucket/prefix.")] = "",
    name: Annotated[
        str | None, typer.Option(help="The backup's name (default: its UTC time).")
    ] = None,
    key_file: KeyFileOption = None,
    new_key: Annotated[
        bool, typer.Option("--new-key", help="Print a new encryption key and exit.")
    ] = False,
    data: DataOption = None,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Copy a running node's documents, feed, accounts, API keys and signing keys, online."""
    if new_key:
        typer.echo(sealing.new_key())
        return
    if not to:
        raise typer.BadParameter(
            "give --to file:///folder or s3://bucket/prefix", param_hint="--to"
        )
    settings = load_config(config, overrides={"data": data, "store": store})
    key = sealing.load_key(key_file)
    chosen = name or default_name()
    target = open_objects(to)
    manifest = asyncio.run(take_backup(node_files(settings), target, chosen, key, progress))
    state = "encrypted" if manifest.encrypted else "not encrypted"
    typer.echo(f"backup {chosen} at {target.url}: {len(manifest.files)} files, {state}")


async def _archive(settings: Config, to: str, key: bytes | None, interval: float) -> None:
    engine = Engine(settings.region, HybridClock(f"archive-{secrets.token_hex(3)}"))
    store = open_store(settings.store_url, engine)
    await store.open()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    archiver = Archiver(store, open_objects(to), key, interval=interval)
    progress(f"archiving {settings.store_url_redacted} to {archiver.target.url}")
    try:
        await archiver.run(stop)
    finally:
        await store.aclose()
        progress(f"archived {archiver.archived:,} changes; stopped")


def archive(
    to: Annotated[str, typer.Option("--to", help="file:///folder or s3://bucket/prefix.")],
    key_file: KeyFileOption = None,
    interval: Annotated[
        float, typer.Option(help="Seconds between reads of the feed when it is idle.")
    ] = 0.1,
    data: DataOption = None,
    store: StoreOption = None,
    region: Annotated[str | None, typer.Option(help="The store's region (default local).")] = None,
    config: ConfigOption = None,
) -> None:
    """Archive the change feed continuously until stopped (SIGINT or SIGTERM)."""
    settings = load_config(config, overrides={"data": data, "store": store, "region": region})
    asyncio.run(_archive(settings, to, sealing.load_key(key_file), interval))
