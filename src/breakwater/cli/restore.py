"""``breakwater restore``: put a backup back (and replay the archive), or only mark a store
put back by hand as restored; either way the last step of every restore (docs/operations.md)."""

from __future__ import annotations

import asyncio
import datetime
from typing import Annotated

import typer

from breakwater.cli.backup import (
    ConfigOption,
    DataOption,
    KeyFileOption,
    StoreOption,
    node_files,
    progress,
)
from breakwater.config import ConfigError, load_config
from breakwater.ops import sealing
from breakwater.ops.objects import open_objects
from breakwater.ops.restore import restore_backup, start_new_incarnation


def parse_moment(text: str) -> int:
    """An ISO 8601 time with its zone (``2026-12-06T08:00:00Z``) in epoch milliseconds."""
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"--to {text!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        raise ConfigError(f"--to {text!r} has no time zone; add Z for UTC")
    return int(moment.timestamp() * 1000)


def restore(
    from_: Annotated[
        str | None,
        typer.Option("--from", help="Backups at file:///folder or s3://bucket/prefix."),
    ] = None,
    backup: Annotated[
        str | None, typer.Option(help="The backup's name (default: the newest that fits).")
    ] = None,
    archive: Annotated[
        str | None, typer.Option(help="Replay the archive at this location after the backup.")
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Replay up to this time (ISO 8601, e.g. 2026-12-06T08:00:00Z)."),
    ] = None,
    key_file: KeyFileOption = None,
    data: DataOption = None,
    store: StoreOption = None,
    region: Annotated[
        str | None, typer.Option(help="The region the store serves (default local).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Restore with every node stopped: put back a backup (with --from), replay the archive
    (with --archive, up to --to), then give the store a new incarnation so that its new writes
    get a new origin and devices that saw changes it lacks resync (cursor_unknown)."""
    settings = load_config(config, overrides={"data": data, "store": store, "region": region})
    until_ms = None if to is None else parse_moment(to)
    if from_ is not None:
        try:
            restored = restore_backup(
                node_files(settings),
                open_objects(from_),
                backup,
                sealing.load_key(key_file),
                None if archive is None else open_objects(archive),
                until_ms,
                progress,
            )
        except sealing.SealBroken as broken:
            typer.echo(f"Error: {broken}; nothing was restored", err=True)
            raise typer.Exit(1) from broken
        reached = datetime.datetime.fromtimestamp(restored.last_change_ms / 1000, datetime.UTC)
        typer.echo(
            f"restored backup {restored.backup} and {restored.replayed:,} archived changes,"
            f" up to {reached.isoformat(timespec='milliseconds').replace('+00:00', 'Z')}"
        )
        if not restored.exact:
            typer.echo(
                "note: the archive could not give the exact state at --to (a document was"
                " written twice within one archive read around it); restored to the time above"
            )
    elif archive is not None or to is not None:
        raise ConfigError("--archive and --to need --from (the backup to start from)")
    origin = asyncio.run(start_new_incarnation(settings.store_url, settings.region))
    typer.echo(f"{settings.store_url_redacted}: restored; new writes get origin {origin}")
