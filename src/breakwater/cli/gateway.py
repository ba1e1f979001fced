"""``breakwater gateway haproxy``: an HAProxy configuration for a region's nodes, checked by
``haproxy -c``, printed, written, or run in the foreground (docs/gateway.md)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from breakwater.gateway import (
    GatewayError,
    GatewayPlan,
    HealthChecks,
    Node,
    Strategy,
    Timeouts,
    check_config,
    haproxy_program,
    render,
)

app = typer.Typer(help="Drive a real load balancer in front of a region's nodes.")


def _bind(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not port.isdigit():
        raise typer.BadParameter(f"{value!r} is not HOST:PORT", param_hint="--bind")
    return host.strip("[]") or "0.0.0.0", int(port)


def _plan_nodes(urls: list[str], weights: list[int], backups: list[str]) -> tuple[Node, ...]:
    if weights and len(weights) != len(urls):
        raise GatewayError(f"{len(weights)} --weight for {len(urls)} --node: give one per node")
    nodes = [
        Node.from_url(url, weight=weights[index] if weights else 1, name=f"node{index + 1}")
        for index, url in enumerate(urls)
    ]
    nodes += [
        Node.from_url(url, backup=True, name=f"backup{index + 1}")
        for index, url in enumerate(backups)
    ]
    return tuple(nodes)


@app.command("haproxy")
def haproxy(
    node: Annotated[
        list[str],
        typer.Option(
            envvar="BREAKWATER_GATEWAY_NODE",
            help="A node's URL, http://host:port (repeat for each node).",
        ),
    ],
    strategy: Annotated[
        str,
        typer.Option(
            envvar="BREAKWATER_GATEWAY_STRATEGY",
            help="roundrobin, leastconn or weighted (with --weight).",
        ),
    ] = "roundrobin",
    weight: Annotated[
        list[int] | None,
        typer.Option(
            envvar="BREAKWATER_GATEWAY_WEIGHT",
            help="Weight 1-256 of each --node, in order (strategy weighted).",
        ),
    ] = None,
    backup: Annotated[
        list[str] | None,
        typer.Option(
            envvar="BREAKWATER_GATEWAY_BACKUP",
            help="A backup server's URL (e.g. another region): used only when every node is down.",
        ),
    ] = None,
    bind: Annotated[
        str,
        typer.Option(envvar="BREAKWATER_GATEWAY_BIND", help="HOST:PORT the gateway listens on."),
    ] = "0.0.0.0:8080",
    check_interval: Annotated[
        float,
        typer.Option(
            envvar="BREAKWATER_GATEWAY_CHECK_INTERVAL",
            min=0.1,
            help="Seconds between /readyz checks of a node.",
        ),
    ] = 1.0,
    fall: Annotated[
        int,
        typer.Option(
            envvar="BREAKWATER_GATEWAY_FALL", min=1, help="Failed checks that take a node out."
        ),
    ] = 2,
    rise: Annotated[
        int,
        typer.Option(
            envvar="BREAKWATER_GATEWAY_RISE", min=1, help="Passed checks that bring it back."
        ),
    ] = 2,
    error_limit: Annotated[
        int,
        typer.Option(
            envvar="BREAKWATER_GATEWAY_ERROR_LIMIT",
            min=1,
            help="Consecutive failed requests that eject a node at once.",
        ),
    ] = 10,
    retries: Annotated[
        int,
        typer.Option(
            envvar="BREAKWATER_GATEWAY_RETRIES",
            min=0,
            help="Retries of a safe request on another node.",
        ),
    ] = 3,
    request_timeout: Annotated[
        float,
        typer.Option(
            envvar="BREAKWATER_GATEWAY_REQUEST_TIMEOUT",
            min=0.1,
            help="Seconds a node may take to answer a request.",
        ),
    ] = 15.0,
    stats_socket: Annotated[
        Path | None,
        typer.Option(
            envvar="BREAKWATER_GATEWAY_STATS_SOCKET",
            help="HAProxy's admin socket (show stat, set server).",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(envvar="BREAKWATER_GATEWAY_OUT", help="Write the configuration here."),
    ] = None,
    run: Annotated[
        bool, typer.Option("--run", help="Run HAProxy in the foreground with it (exec).")
    ] = False,
) -> None:
    """Render a checked HAProxy configuration: health checks on /readyz, outlier ejection,
    retries of safe requests on another node, bounded timeouts, WebSocket and SSE kept."""
    if strategy not in ("roundrobin", "leastconn", "weighted"):
        raise typer.BadParameter(f"{strategy!r} is not roundrobin, leastconn or weighted")
    chosen: Strategy = strategy  # type: ignore[assignment]
    host, port = _bind(bind)
    try:
        plan = GatewayPlan(
            _plan_nodes(node, weight or [], backup or []),
            strategy=chosen,
            bind_host=host,
            bind_port=port,
            checks=HealthChecks(interval=check_interval, fall=fall, rise=rise),
            timeouts=Timeouts(request=request_timeout),
            retries=retries,
            error_limit=error_limit,
            stats_socket=stats_socket,
        )
        text = render(plan)
        program = haproxy_program()
        check_config(text, program)
    except GatewayError as error:
        print(f"Error: {error.detail}", file=sys.stderr)
        print("Try: breakwater gateway haproxy --help (docs/gateway.md)", file=sys.stderr)
        raise typer.Exit(2) from error
    notice = plan.checks.seconds_to_notice()
    print(f"Nodes should run with drain_grace >= {notice:.2f} s.", file=sys.stderr)
    if out is None and not run:
        sys.stdout.write(text)
        return
    path = out or Path(tempfile.mkdtemp(prefix="breakwater-gateway-")) / "haproxy.cfg"
    path.write_text(text)
    print(f"Wrote {path}", file=sys.stderr)
    if run:
        # HAProxy takes this process's place: signals and the PID are its own.
        os.execv(program, [program, "-db", "-f", str(path)])
