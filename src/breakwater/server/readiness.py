"""The readiness checks of one node, shared by ``/readyz`` and the public status page."""

from __future__ import annotations

from dataclasses import dataclass, field

from breakwater.core.errors import BreakwaterError
from breakwater.obs.status import State
from breakwater.server.node import Node


@dataclass
class Readiness:
    """Each dependency's check (``ok`` or why not), the failing ones and the degraded ones."""

    checks: dict[str, str] = field(default_factory=dict)
    failing: list[str] = field(default_factory=list)
    degraded: list[str] = field(default_factory=list)

    def public_states(self) -> dict[str, State]:
        """Store, bus, cache and realtime as the status page names them.

        Realtime needs the store (it replays from it) and, for other nodes' changes, the bus.
        """
        store = State.DOWN if "store" in self.failing else State.OPERATIONAL
        bus = State.DEGRADED if "bus" in self.degraded else State.OPERATIONAL
        cache = State.DEGRADED if "cache" in self.degraded else State.OPERATIONAL
        return {"store": store, "bus": bus, "cache": cache, "realtime": max(store, bus)}


async def check(node: Node) -> Readiness:
    """Run every check once, set the store's health gauge and record the public states.

    Without the bus, the cache or the shared rate-limit buckets the node still serves every
    request (I8): they are degraded, never failing.
    """
    result = Readiness()
    checks = result.checks
    if not node.store_opener.opened:
        checks["store"] = node.store_opener.problem
    else:
        try:
            await node.store.ping()
            checks["store"] = "ok"
        except BreakwaterError as error:
            checks["store"] = error.detail
    node.metrics.dependency_up.labels("store").set(1 if checks["store"] == "ok" else 0)
    result.failing = sorted(name for name, state in checks.items() if state != "ok")
    if not node.bus.healthy:
        checks["bus"] = "unreachable: other nodes' changes arrive through the fallback poll"
        result.degraded.append("bus")
    else:
        checks["bus"] = "ok"
    if not await node.cache.check():
        checks["cache"] = "unreachable: reads go to the store"
        result.degraded.append("cache")
    else:
        checks["cache"] = "ok"
    if node.buckets.shared is not None:
        if await node.buckets.check():
            checks["rate_limits"] = "ok"
        else:
            checks["rate_limits"] = "unreachable: limits are per node"
            result.degraded.append("rate_limits")
    node.health_history.observe(result.public_states())
    return result
