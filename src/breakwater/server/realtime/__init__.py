"""Realtime: the change feed pushed to clients over WebSocket and SSE, and long-poll wake-ups."""
