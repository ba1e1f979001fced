"""``breakwater chaos``: fault injection from the command line (see docs/verification.md)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from breakwater.core.ascii import is_digits

app = typer.Typer(
    help="Fault injection: a chaos proxy with an HTTP control API; checking a recorded run."
)


def parse_address(option: str, value: str) -> tuple[str, int]:
    """``host:port`` as a pair; a usage error naming the option otherwise."""
    host, _, port = value.rpartition(":")
    if not host or not is_digits(port) or not 0 <= int(port) <= 65535:
        raise typer.BadParameter(f"{value!r} is not host:port", param_hint=option)
    return host, int(port)


class _QuietServer(uvicorn.Server):
    """Uvicorn that exits 0 on SIGINT or SIGTERM after its clean shutdown (no re-raised signal)."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        self._captured_signals.clear()


@app.command("proxy")
def proxy(
    listen: Annotated[str, typer.Option(help="host:port clients connect to.")],
    upstream: Annotated[str, typer.Option(help="host:port of the node or engine behind it.")],
    control: Annotated[
        str, typer.Option(help="host:port of the HTTP control API.")
    ] = "127.0.0.1:9001",
    name: Annotated[str, typer.Option(help="The proxy's name in the control API.")] = "proxy",
) -> None:
    """Run one fault-injecting TCP proxy until interrupted; faults are set over HTTP."""
    from breakwater.chaos.control import control_app
    from breakwater.chaos.proxy import ChaosProxy

    listen_at = parse_address("--listen", listen)
    upstream_at = parse_address("--upstream", upstream)
    control_host, control_port = parse_address("--control", control)

    async def run() -> None:
        async with ChaosProxy(upstream_at, listen_at, name=name) as chaos:
            typer.echo(
                f"proxy {name}: {chaos.address} -> {upstream}; "
                f"control http://{control_host}:{control_port}/proxies/{name}"
            )
            config = uvicorn.Config(
                control_app({name: chaos}),
                host=control_host,
                port=control_port,
                log_level="warning",
                lifespan="off",
            )
            await _QuietServer(config).serve()

    asyncio.run(run())


@app.command("proxies")
def proxies(
    spec: Annotated[
        Path,
        typer.Option(help='JSON file: {"proxies": {NAME: {"listen": h:p, "upstream": h:p}}}.'),
    ],
    control: Annotated[
        str, typer.Option(help="host:port of the HTTP control API.")
    ] = "127.0.0.1:9001",
) -> None:
    """Run several proxies in one process behind one control API (a local cluster's links)."""
    from breakwater.chaos.control import control_app
    from breakwater.chaos.proxy_host import read_specs, started

    specs = read_specs(spec)
    control_host, control_port = parse_address("--control", control)

    async def run() -> None:
        async with started(specs) as running:
            typer.echo(f"{len(running)} proxies; control http://{control_host}:{control_port}")
            config = uvicorn.Config(
                control_app(running),
                host=control_host,
                port=control_port,
                log_level="warning",
                lifespan="off",
            )
            await _QuietServer(config).serve()

    asyncio.run(run())


@app.command("check")
def check_run(
    run: Annotated[
        Path, typer.Argument(help="A run's directory, with history.jsonl and replicas.json.")
    ],
) -> None:
    """Check a recorded run again: its history against the final states of its replicas."""
    from breakwater.chaos.checker import check, parse_replicas
    from breakwater.chaos.history import HistoryError, read_history
    from breakwater.core import codec

    try:
        history = read_history(run / "history.jsonl")
        raw = codec.loads((run / "replicas.json").read_bytes())
        replicas, healed_at, bound_s = parse_replicas(raw)
        versions = bool(raw.get("versions_compared", True))
    except (OSError, HistoryError, ValueError, KeyError, TypeError) as exc:
        raise typer.BadParameter(f"{run} does not hold a readable run: {exc}") from exc
    verdict = check(history, replicas, healed_at=healed_at, bound_s=bound_s, versions=versions)
    typer.echo(verdict.render())
    if not verdict.passed:
        raise typer.Exit(1)
