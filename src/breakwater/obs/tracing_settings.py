"""The ``[tracing]`` settings: plain data, readable without OpenTelemetry installed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TracingSettings:
    """How a node traces (docs/operations.md#tracing); off unless ``enabled``."""

    enabled: bool = False
    endpoint: str = ""
    """OTLP/HTTP traces URL; empty: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the exporter reads them), else ``localhost:4318``."""
    sampler_ratio: float = 1.0
    """Share of traces kept, decided by trace id (so every node and region agrees)."""
    service_name: str = "breakwater"
