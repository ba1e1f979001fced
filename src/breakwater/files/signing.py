"""Signed, expiring download URLs: ``?expires=<unix s>&signature=<hmac>``, nothing else.

The signature is an HMAC-SHA256 over the file's hash and the expiry, keyed by a secret the
nodes of a deployment share; the URL carries no token of the user who asked for it, so a
leaked URL opens that one file until it expires and nothing more.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

DOMAIN = b"breakwater file url v1\x00"


class UrlSigner:
    """Signs and checks ``(sha256, expires)`` pairs with one secret."""

    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(DOMAIN + secret).digest()

    def sign(self, sha256: str, expires: int) -> str:
        """The URL-safe signature of the file ``sha256`` until ``expires`` (unix seconds)."""
        mac = hmac.new(self._key, f"{sha256}\x00{expires}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()

    def valid(self, sha256: str, expires: int, signature: str, now: float) -> bool:
        """True when ``signature`` is this signer's for the pair and ``expires`` is ahead."""
        return now < expires and hmac.compare_digest(self.sign(sha256, expires), signature)
