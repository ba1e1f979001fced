"""Many chaos proxies in one process behind one control API: the links of a local cluster.

A cluster of three regions has a proxy in front of every node (what devices reach) and one on
every directed link between regions (what a region's replicator reaches): a dozen proxies. One
process with one event loop carries them all, so a cluster costs one interpreter for its
network instead of a dozen, and one control URL breaks any link (``PUT /proxies/{name}/...``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from breakwater.chaos.proxy import ChaosProxy
from breakwater.core import codec
from breakwater.core.errors import ValidationError


@dataclass(frozen=True)
class ProxySpec:
    """One proxy: the address it listens on and the upstream it forwards to."""

    listen: tuple[str, int]
    upstream: tuple[str, int]


def _address(value: Any, where: str) -> tuple[str, int]:
    if not isinstance(value, str):
        raise ValidationError(f"{where} must be a host:port string")
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValidationError(f"{where} = {value!r} is not host:port")
    return host, int(port)


def read_specs(path: Path) -> dict[str, ProxySpec]:
    """The proxies of a spec file: ``{"proxies": {name: {"listen": h:p, "upstream": h:p}}}``."""
    raw = codec.loads(path.read_bytes())
    proxies = raw.get("proxies") if isinstance(raw, dict) else None
    if not isinstance(proxies, dict) or not proxies:
        raise ValidationError(f"{path}: needs a non-empty object 'proxies'")
    specs = {}
    for name, item in proxies.items():
        if not isinstance(item, dict):
            raise ValidationError(f"{path}: proxies.{name} must be an object")
        specs[name] = ProxySpec(
            _address(item.get("listen"), f"proxies.{name}.listen"),
            _address(item.get("upstream"), f"proxies.{name}.upstream"),
        )
    return specs


def write_specs(path: Path, specs: Mapping[str, ProxySpec]) -> None:
    """Write ``specs`` in the format :func:`read_specs` reads."""
    body = {
        name: {
            "listen": f"{s.listen[0]}:{s.listen[1]}",
            "upstream": f"{s.upstream[0]}:{s.upstream[1]}",
        }
        for name, s in specs.items()
    }
    path.write_bytes(codec.dumps({"proxies": body}))


@contextlib.asynccontextmanager
async def started(specs: Mapping[str, ProxySpec]) -> Any:
    """Every proxy of ``specs`` listening, by name; all closed on exit."""
    async with contextlib.AsyncExitStack() as stack:
        proxies = {}
        for name, spec in specs.items():
            proxies[name] = await stack.enter_async_context(
                ChaosProxy(spec.upstream, spec.listen, name=name)
            )
        yield proxies
