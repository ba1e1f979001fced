"""The HTTP node: the ASGI app (routes, health, metrics) and the process that serves it."""

from breakwater.server.app import create_app

__all__ = ["create_app"]
