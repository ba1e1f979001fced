"""Verification toolkit: fault injection, histories and the checker (ARCHITECTURE.md section 8)."""
