"""A gateway plan as an HAProxy configuration (HAProxy 2.4 or newer; Debian 12 ships 2.6).

Why each part is there (docs/gateway.md explains it for operators):

- ``/readyz`` checks: a draining node, or one whose store is down, answers 503 and leaves the
  pool; ``observe layer7`` with ``error-limit`` ejects a node that keeps failing requests
  before its next check does.
- Retries go to another server (``option redispatch 1``) and only where a request is safe to
  repeat: reads, pushes (their mutation ids make a second apply a ``duplicate``) and document
  writes that carry an ``Idempotency-Key``. Any other request is retried only when it could not
  be sent at all (a refused connection). A body can only be sent again if HAProxy holds all of
  it (``http-buffer-request``, requests up to its 16 KiB buffer).
- ``timeout server`` bounds ordinary requests; long-polls and SSE get the longer stream bound,
  upgraded WebSockets the tunnel bound. Nothing waits without a bound.
- The client's own ``X-Forwarded-For`` is dropped and the peer address appended, so that a node
  trusting the gateway (``auth.trusted_proxies``) rate-limits the real address, not a claim.
"""

from __future__ import annotations

from breakwater.gateway.plan import GatewayPlan, Node

STREAMING_PATHS = ("/v1/sync/pull", "/v1/realtime/sse")
"""Answers that may stay silent for long: a long-poll's ``wait``, an SSE stream between
heartbeats."""
RETRIED_ON = "conn-failure empty-response junk-response response-timeout 503"
"""Failures after which a safe request goes to another node: the node died, closed the
connection, stalled past the request bound, or is unavailable (draining, store down)."""


def _ms(seconds: float) -> str:
    return f"{max(round(seconds * 1000), 1)}ms"


def _balance(plan: GatewayPlan) -> str:
    # Weighted round robin is HAProxy's round robin with per-server weights.
    return "leastconn" if plan.strategy == "leastconn" else "roundrobin"


def _server(node: Node) -> str:
    line = f"    server {node.name} {node.address} weight {node.weight}"
    return line + (" backup" if node.backup else "")


def render(plan: GatewayPlan) -> str:
    """The configuration text; check it with :func:`breakwater.gateway.check_config`."""
    checks, timeouts = plan.checks, plan.timeouts
    stats = (
        [f"    stats socket {plan.stats_socket} mode 600 level admin", "    stats timeout 10s"]
        if plan.stats_socket
        else []
    )
    served_by = (
        ["    http-response set-header X-Served-By %[srv_name]"]
        if plan.name_server_in_response
        else []
    )
    lines = [
        "# Rendered by `breakwater gateway haproxy` (docs/gateway.md). Nodes should drain for at",
        f"# least {checks.seconds_to_notice():.2f} s (drain_grace): the time these checks take"
        " to notice.",
        "global",
        *([f"    maxconn {plan.max_connections}"] if plan.max_connections else []),
        *stats,
        "",
        "defaults",
        "    mode http",
        f"    timeout connect {_ms(timeouts.connect)}",
        f"    timeout client {_ms(timeouts.client)}",
        f"    timeout server {_ms(timeouts.request)}",
        f"    timeout http-request {_ms(timeouts.http_request)}",
        f"    timeout http-keep-alive {_ms(timeouts.http_request)}",
        f"    timeout queue {_ms(timeouts.queue)}",
        f"    timeout tunnel {_ms(timeouts.tunnel)}",
        "    timeout client-fin 5s",
        "    timeout server-fin 5s",
        f"    timeout check {_ms(checks.timeout)}",
        "",
        "frontend breakwater",
        f"    bind {plan.bind_host}:{plan.bind_port}",
        "    http-request del-header X-Forwarded-For",
        "    option forwardfor",
        "    default_backend nodes",
        "",
        "backend nodes",
        f"    balance {_balance(plan)}",
        "    option httpchk",
        "    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host breakwater-gateway",
        "    http-check expect status 200",
        "    option http-buffer-request",
        "    option redispatch 1",
        f"    retries {plan.retries}",
        f"    retry-on {RETRIED_ON}",
        "    acl read method GET HEAD",
        "    acl push path /v1/sync/push",
        "    acl document path_beg /v1/collections/",
        "    acl idempotency_key req.hdr(idempotency-key) -m found",
        "    acl streaming path " + " ".join(STREAMING_PATHS),
        "    http-request disable-l7-retry if !read !push !document",
        "    http-request disable-l7-retry if !read !push !idempotency_key",
        f"    http-request set-timeout server {_ms(timeouts.stream)} if streaming",
        *served_by,
        f"    default-server check inter {_ms(checks.interval)} fastinter"
        f" {_ms(checks.fast_interval)} downinter {_ms(checks.down_interval)}"
        f" fall {checks.fall} rise {checks.rise} observe layer7 error-limit {plan.error_limit}"
        " on-error mark-down",
        *(_server(node) for node in plan.nodes),
        "",
    ]
    return "\n".join(lines)
