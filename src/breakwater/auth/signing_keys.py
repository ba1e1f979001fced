"""The keys access tokens are signed with, each named by a ``kid``; rotation keeps old ones.

The newest key signs; every key in the set verifies. Rotating adds a new key and keeps the
old ones, so tokens signed before the rotation stay valid until they expire: nobody is logged
out. Keys older than the newest by more than ``keep_seconds`` are dropped on rotation (no
token signed with them can still be unexpired). Keys live in a JSON file with owner-only
permissions in the data directory, or come from the config (every node of a region must use
the same keys).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from breakwater.core.errors import ConfigError

KEY_BYTES = 32
KID_PATTERN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One HMAC-SHA256 key: its id, secret and creation time (epoch seconds)."""

    kid: str
    secret: bytes
    created: float


class SigningKeys:
    """The key set: :attr:`current` signs, :meth:`find` verifies."""

    def __init__(self, keys: list[SigningKey]) -> None:
        if not keys:
            raise ConfigError("auth: no signing key")
        self.keys = sorted(keys, key=lambda k: k.created)
        self._by_kid = {key.kid: key for key in self.keys}

    @property
    def current(self) -> SigningKey:
        """The newest key: the one new tokens are signed with."""
        return self.keys[-1]

    def find(self, kid: str) -> SigningKey | None:
        """The key named ``kid``, if it is in the set."""
        return self._by_kid.get(kid)

    @staticmethod
    def generate(now: float | None = None) -> SigningKey:
        """A fresh random key."""
        return SigningKey(
            kid=secrets.token_hex(8),
            secret=secrets.token_bytes(KEY_BYTES),
            created=time.time() if now is None else now,
        )

    def rotated(self, keep_seconds: float, now: float | None = None) -> SigningKeys:
        """A set with a new current key; keys retired longer than ``keep_seconds`` are dropped."""
        new = self.generate(now)
        kept = [
            key
            for index, key in enumerate(self.keys)
            if index == len(self.keys) - 1
            or self.keys[index + 1].created > new.created - keep_seconds
        ]
        return SigningKeys([*kept, new])


def load_keys(path: Path) -> SigningKeys:
    """The key set in ``path``, created with one new key when the file does not exist."""
    if not path.exists():
        _create_once(path, SigningKeys([SigningKeys.generate()]))
    try:
        raw = json.loads(path.read_text())
        keys = [
            SigningKey(str(k["kid"]), base64.b64decode(k["secret"]), float(k["created"]))
            for k in raw["keys"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"auth signing keys {str(path)!r} cannot be read: {exc}") from None
    for key in keys:
        if len(key.secret) < KEY_BYTES or not set(key.kid) <= KID_PATTERN_CHARS:
            raise ConfigError(f"auth signing keys {str(path)!r}: key {key.kid!r} is malformed")
    return SigningKeys(keys)


def _create_once(path: Path, keys: SigningKeys) -> None:
    """Create ``path`` with ``keys`` unless another process created it first.

    The worker processes of one node start at once; each must end up with the same keys, so
    the file is linked into place (which fails if it exists) instead of renamed over.
    """
    temporary = _write_temporary(path, keys)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()


def save_keys(path: Path, keys: SigningKeys) -> None:
    """Write the key set atomically with owner-only permissions."""
    _write_temporary(path, keys).replace(path)


def _write_temporary(path: Path, keys: SigningKeys) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "keys": [
            {"kid": k.kid, "secret": base64.b64encode(k.secret).decode(), "created": k.created}
            for k in keys.keys
        ]
    }
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(body, file)
        file.flush()
        os.fsync(file.fileno())
    return temporary
