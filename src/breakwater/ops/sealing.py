"""Sealed objects: what a backup or an archive segment holds, checksummed and optionally
encrypted, so that a restore refuses a damaged, truncated or swapped object instead of loading it.

A plain object is ``BWS1`` + the SHA-256 of the body + the body. An encrypted one is ``BWE1`` +
a random 96-bit nonce + the body under AES-256-GCM with the object's name as associated data (the
tag authenticates it, and an object copied under another name does not open). Encryption needs the
optional ``backup-encryption`` extra (``cryptography``). The key is 32 random bytes, given base64
in ``BREAKWATER_BACKUP_KEY`` or in a file; it is never logged or written next to the backup.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from breakwater.core.errors import ConfigError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PLAIN = b"BWS1"
ENCRYPTED = b"BWE1"
KEY_ENV = "BREAKWATER_BACKUP_KEY"
_NONCE = 12


class SealBroken(Exception):
    """An object failed its checksum or authentication, or needs a key that was not given."""


def new_key() -> str:
    """A fresh key, base64 (what ``BREAKWATER_BACKUP_KEY`` or a key file holds)."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def load_key(key_file: Path | None) -> bytes | None:
    """The key from ``key_file``, else from ``BREAKWATER_BACKUP_KEY``, else ``None`` (plain)."""
    if key_file is not None:
        text = key_file.read_text().strip()
        where = str(key_file)
    else:
        text = os.environ.get(KEY_ENV, "").strip()
        where = KEY_ENV
        if not text:
            return None
    try:
        key = base64.b64decode(text, validate=True)
    except binascii.Error:
        key = b""
    if len(key) != 32:
        # Never echo the value: it is (or is meant to be) a secret.
        raise ConfigError(
            f"{where} must hold 32 bytes in base64 (make one with `breakwater backup --new-key`)"
        )
    return key


def _aesgcm(key: bytes) -> AESGCM:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(
            "encrypted backups need cryptography:"
            " pip install 'breakwater-server[backup-encryption]'"
        ) from exc
    return AESGCM(key)


def seal(name: str, body: bytes, key: bytes | None) -> bytes:
    """``body`` as stored under ``name``: checksummed, and encrypted when there is a key."""
    if key is None:
        return PLAIN + hashlib.sha256(body).digest() + body
    nonce = secrets.token_bytes(_NONCE)
    cipher = _aesgcm(key)
    return ENCRYPTED + nonce + cipher.encrypt(nonce, body, name.encode())


def unseal(name: str, stored: bytes, key: bytes | None) -> bytes:
    """The body of a sealed object; ``SealBroken`` when it does not verify."""
    magic, rest = stored[:4], stored[4:]
    if magic == PLAIN and key is not None:
        # Anyone can write a plain object with a valid checksum: with a key, only what the key
        # sealed is trusted.
        raise SealBroken(f"{name} is not encrypted, but a key was given: refusing it")
    if magic == PLAIN:
        digest, body = rest[:32], rest[32:]
        if len(digest) != 32 or hashlib.sha256(body).digest() != digest:
            raise SealBroken(f"{name}: checksum mismatch (the object is damaged or truncated)")
        return body
    if magic == ENCRYPTED:
        if key is None:
            raise SealBroken(f"{name} is encrypted: give the key (--key-file or {KEY_ENV})")
        from cryptography.exceptions import InvalidTag

        try:
            opened = _aesgcm(key).decrypt(rest[:_NONCE], rest[_NONCE:], name.encode())
        except InvalidTag as exc:
            raise SealBroken(f"{name}: wrong key, or the object is damaged") from exc
        return opened
    raise SealBroken(f"{name} is not a Breakwater backup object")


def digest(stored: bytes) -> str:
    """The SHA-256 of an object as stored (what a manifest lists)."""
    return hashlib.sha256(stored).hexdigest()
