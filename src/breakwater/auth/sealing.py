"""Sealed page tokens: query ``next`` tokens that reveal nothing when rules filter the page.

A page token names the sort value and id of the last document a query looked at. When a read
rule hides documents, that document may be one the caller may not read, so the token is
encrypted and authenticated (Fernet: AES-128-CBC + HMAC-SHA256) with keys derived from the
token signing keys. Every signing key still in the set opens tokens, so a rotation does not
break a client's paging.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from breakwater.auth.signing_keys import SigningKeys
from breakwater.core.errors import ValidationError

PREFIX = "s."
INFO = b"breakwater sealed page tokens"


def _fernet(secret: bytes) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=INFO).derive(secret)
    return Fernet(base64.urlsafe_b64encode(key))


class Sealer:
    """Seals and opens short strings with the node's keys (newest first)."""

    def __init__(self, keys: SigningKeys) -> None:
        self._fernet = MultiFernet([_fernet(key.secret) for key in reversed(keys.keys)])

    def seal(self, text: str) -> str:
        """``text`` encrypted and authenticated, URL-safe."""
        return PREFIX + self._fernet.encrypt(text.encode()).decode("ascii")

    def open(self, sealed: str, field: str = "after") -> str:
        """The text of a token :meth:`seal` made; ``ValidationError`` for anything else."""
        if not sealed.startswith(PREFIX):
            raise ValidationError(f"{field} is not a page token of this query", field=field)
        try:
            return self._fernet.decrypt(sealed[len(PREFIX) :].encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            raise ValidationError(
                f"{field} is not a page token of this query", field=field
            ) from None
