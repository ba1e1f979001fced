"""``breakwater serve``: one node on the embedded defaults or the engines given by URL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from breakwater.config import ConfigError, load_config


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default 8080).")] = None,
    data: Annotated[Path | None, typer.Option(help="Data directory (default ./data).")] = None,
    store: Annotated[
        str | None,
        typer.Option(help="Store URL, e.g. sqlite:///path.db (default: a file under --data)."),
    ] = None,
    bus: Annotated[
        str | None,
        typer.Option(help="Bus URL for commit notices (default memory://, this process only)."),
    ] = None,
    cache: Annotated[
        str | None,
        typer.Option(help="Cache URL for hot reads (default memory://; redis://…; none://)."),
    ] = None,
    region: Annotated[str | None, typer.Option(help="This node's region (default local).")] = None,
    node: Annotated[
        str | None, typer.Option(help="This node's id (default: region plus a random suffix).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Processes serving this node, sharing its port and store (default 1)."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML config file (or BREAKWATER_CONFIG).")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error.")] = None,
    drain_grace: Annotated[
        float | None, typer.Option(help="Seconds /readyz says 503 before stopping (default 1).")
    ] = None,
) -> None:
    """Run one node. Every flag is also read from BREAKWATER_<FLAG> and the config file."""
    from breakwater.obs import logging as bw_logging
    from breakwater.server.runner import serve as run

    overrides = {
        "host": host,
        "port": port,
        "data": data,
        "store": store,
        "bus": bus,
        "cache": cache,
        "region": region,
        "node": node,
        "log_level": log_level,
        "drain_grace": drain_grace,
        "workers": workers,
    }
    settings = load_config(config, overrides=overrides)
    try:
        settings.data.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"data = {str(settings.data)!r} cannot be created: {exc.strerror}"
        ) from exc
    bw_logging.configure(settings.log_level, trace_ids=settings.tracing.enabled)
    if settings.workers > 1:
        from breakwater.server.workers import Supervisor

        raise typer.Exit(Supervisor(settings, config, overrides).run())
    run(settings)
