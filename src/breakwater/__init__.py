"""Breakwater: an offline-first backend for mobile apps that never loses an acknowledged write."""

__version__ = "0.1.0"
