"""Password hashing with argon2id at the OWASP-recommended parameters.

OWASP Password Storage Cheat Sheet: argon2id, 19 MiB of memory, 2 iterations, 1 lane. Hashing
is deliberately slow (tens of milliseconds), so callers run it off the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024


@dataclass(frozen=True)
class HashParameters:
    """argon2id cost settings (defaults: OWASP's first recommended configuration)."""

    memory_kib: int = 19 * 1024
    time_cost: int = 2
    parallelism: int = 1


class Passwords:
    """Hashes and verifies passwords; a hash made with older parameters is flagged for rehash."""

    def __init__(self, parameters: HashParameters | None = None) -> None:
        p = parameters or HashParameters()
        self._hasher = PasswordHasher(
            time_cost=p.time_cost,
            memory_cost=p.memory_kib,
            parallelism=p.parallelism,
            type=Type.ID,
        )
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        """The encoded argon2id hash (salt and parameters included)."""
        return self._hasher.hash(password)

    def verify(self, encoded: str | None, password: str) -> bool:
        """True when ``password`` matches; ``encoded=None`` costs the same and answers False."""
        if encoded is None and self._dummy is None:
            # Verifying an unknown account's login against this keeps its timing like a real one.
            self._dummy = self._hasher.hash("not a password of anyone")
        try:
            return (
                self._hasher.verify(encoded or self._dummy or "", password) and encoded is not None
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, encoded: str) -> bool:
        """True when ``encoded`` was made with other parameters than the current ones."""
        return self._hasher.check_needs_rehash(encoded)
