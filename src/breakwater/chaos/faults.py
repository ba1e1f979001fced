"""Network faults a :class:`~breakwater.chaos.proxy.ChaosProxy` can inject, and their parsing.

Each fault is a small frozen record; a proxy holds at most one fault of each kind, and any of them
can be switched on, changed or off while connections are open. ``direction`` names which way the
fault acts: ``upstream`` is client to server (requests), ``downstream`` server to client
(responses), ``both`` either way. The same shapes are the JSON bodies of the control API and the
``params`` of a scenario's fault schedule, so :func:`parse_fault` is the one validator of all three.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from breakwater.core.errors import ValidationError

Direction = Literal["upstream", "downstream", "both"]
DIRECTIONS: tuple[str, ...] = get_args(Direction)


@dataclass(frozen=True)
class Latency:
    """Delay every chunk by ``ms`` plus or minus up to ``jitter_ms`` (uniform), keeping order."""

    ms: float
    jitter_ms: float = 0.0
    direction: Direction = "both"
    kind = "latency"


@dataclass(frozen=True)
class Bandwidth:
    """Cap each connection's throughput to ``bytes_per_second`` in the chosen direction."""

    bytes_per_second: int
    direction: Direction = "both"
    kind = "bandwidth"


@dataclass(frozen=True)
class Blackhole:
    """Accept, never answer: bytes in the chosen direction are read and dropped, closes too.

    A connection that lost bytes is reset when the fault lifts: TCP never delivers what follows
    a hole in the stream."""

    direction: Direction = "both"
    kind = "blackhole"


@dataclass(frozen=True)
class ResetPeer:
    """Reset every connection with a TCP RST ``after_ms`` after it opened (or the fault began)."""

    after_ms: float = 0.0
    kind = "reset_peer"


@dataclass(frozen=True)
class SlowClose:
    """When one side closes, close the other only ``delay_ms`` later."""

    delay_ms: float
    kind = "slow_close"


@dataclass(frozen=True)
class Slicer:
    """Split each chunk into ``size_bytes`` pieces (± ``variation_bytes``) ``delay_ms`` apart."""

    size_bytes: int = 1
    variation_bytes: int = 0
    delay_ms: float = 0.0
    direction: Direction = "both"
    kind = "slicer"


@dataclass(frozen=True)
class Partition:
    """Cut the link: nothing passes in the chosen direction, and no new connection reaches the
    upstream, until the fault is removed. Bytes already sent wait (as TCP would retransmit them)
    and flow once the link heals; clients see timeouts meanwhile."""

    direction: Direction = "both"
    kind = "partition"


@dataclass(frozen=True)
class Loss:
    """Packet loss as TCP shows it: ``percent`` of the chunks arrive ``retransmit_ms`` late (a
    retransmission; Linux's minimum timeout is 200 ms), keeping the byte order. A TCP proxy
    cannot drop bytes without breaking the stream, and the stream is all an application sees."""

    percent: float
    retransmit_ms: float = 200.0
    direction: Direction = "both"
    kind = "loss"


Fault = Latency | Bandwidth | Blackhole | ResetPeer | SlowClose | Slicer | Partition | Loss
FAULT_TYPES: dict[str, type[Fault]] = {
    cls.kind: cls
    for cls in (Latency, Bandwidth, Blackhole, ResetPeer, SlowClose, Slicer, Partition, Loss)
}


def acts_on(fault: Fault, direction: str) -> bool:
    """Whether ``fault`` acts on bytes flowing in ``direction`` (``upstream`` or ``downstream``)."""
    chosen = getattr(fault, "direction", "both")
    return chosen in ("both", direction)


def _check_value(kind: str, name: str, value: Any, annotation: str) -> Any:
    where = f"{kind}.{name}"
    if annotation == "Direction":
        if value not in DIRECTIONS:
            raise ValidationError(f"{where} must be one of {list(DIRECTIONS)}", field=name)
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{where} must be a number", field=name)
    if not math.isfinite(value) or value < 0:
        raise ValidationError(f"{where} must be a finite number >= 0", field=name)
    if annotation == "int":
        if not float(value).is_integer():
            raise ValidationError(f"{where} must be a whole number", field=name)
        return int(value)
    return float(value)


def parse_fault(kind: str, params: Mapping[str, Any] | None = None) -> Fault:
    """Build fault ``kind`` from JSON ``params``; a :class:`ValidationError` says what is wrong."""
    cls = FAULT_TYPES.get(kind)
    if cls is None:
        raise ValidationError(f"unknown fault {kind!r}; known: {sorted(FAULT_TYPES)}", field="kind")
    params = params or {}
    if not isinstance(params, Mapping):
        raise ValidationError(f"{kind} parameters must be a JSON object")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(params) - set(fields)
    if unknown:
        raise ValidationError(
            f"unknown {kind} parameters {sorted(unknown)}; known: {sorted(fields)}"
        )
    values = {}
    for name, spec in fields.items():
        if name in params:
            values[name] = _check_value(kind, name, params[name], str(spec.type))
        elif spec.default is dataclasses.MISSING:
            raise ValidationError(f"{kind}.{name} is required", field=name)
    fault = cls(**values)
    if isinstance(fault, Bandwidth) and fault.bytes_per_second < 1:
        raise ValidationError("bandwidth.bytes_per_second must be at least 1")
    if isinstance(fault, Loss) and fault.percent > 100:
        raise ValidationError("loss.percent must be at most 100", field="percent")
    if isinstance(fault, Slicer) and fault.size_bytes < 1:
        raise ValidationError("slicer.size_bytes must be at least 1")
    return fault


def fault_json(fault: Fault) -> dict[str, Any]:
    """The JSON parameters of ``fault`` (what :func:`parse_fault` takes back)."""
    return dataclasses.asdict(fault)
