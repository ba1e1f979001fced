"""Time-based one-time passwords (RFC 6238, 30-second steps, 6 digits) and recovery codes.

A code is accepted for the current step and one step either side (clock drift), and a step
that was used once is never accepted again (replay): the caller keeps the last step used.
Recovery codes are single-use, random, and stored only as hashes.
"""

from __future__ import annotations

import hmac
import secrets
import time

import pyotp

from breakwater.auth.tokens import hash_secret
from breakwater.core.ascii import is_digits

ISSUER = "Breakwater"
VALID_WINDOW = 1
RECOVERY_CODES = 10


def new_secret() -> str:
    """A fresh base32 TOTP secret (160 bits)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account: str) -> str:
    """The ``otpauth://`` URI an authenticator app scans."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=ISSUER)


def matching_step(secret: str, code: str, last_step: int, now: float | None = None) -> int | None:
    """The time step ``code`` is valid for (newer than ``last_step``), else ``None``."""
    if not (isinstance(code, str) and len(code) == 6 and is_digits(code)):
        return None
    totp = pyotp.TOTP(secret)
    at = time.time() if now is None else now
    current = int(at) // totp.interval
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if step > last_step and hmac.compare_digest(totp.at(step * totp.interval), code):
            return step
    return None


def new_recovery_codes() -> list[str]:
    """Fresh single-use recovery codes (shown once; store :func:`hash_secret` of each)."""
    return [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(RECOVERY_CODES)]


def use_recovery_code(hashes: tuple[str, ...], code: str) -> tuple[str, ...] | None:
    """The remaining hashes after using ``code``, or ``None`` when it is not one of them."""
    digest = hash_secret(code.strip().lower())
    for stored in hashes:
        if hmac.compare_digest(stored, digest):
            return tuple(h for h in hashes if h != stored)
    return None
