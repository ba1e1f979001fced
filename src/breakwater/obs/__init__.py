"""Observability: metrics, structured logs (tracing and dashboards come later)."""
