"""Driving a real load balancer (HAProxy) in front of a region's nodes (ARCHITECTURE.md §5.3).

Build a :class:`GatewayPlan`, :func:`render` it, :func:`check_config` it, or run it with
:class:`HaproxyProcess`. Cross-region routing is the SDKs' (they must survive the loss of any
gateway), so a gateway only ever spreads one region's requests.
"""

from breakwater.gateway.haproxy_check import check_config, haproxy_program
from breakwater.gateway.haproxy_config import render
from breakwater.gateway.haproxy_process import HaproxyProcess
from breakwater.gateway.plan import (
    STRATEGIES,
    GatewayError,
    GatewayPlan,
    HealthChecks,
    Node,
    Strategy,
    Timeouts,
)

__all__ = [
    "STRATEGIES",
    "GatewayError",
    "GatewayPlan",
    "HaproxyProcess",
    "HealthChecks",
    "Node",
    "Strategy",
    "Timeouts",
    "check_config",
    "haproxy_program",
    "render",
]
