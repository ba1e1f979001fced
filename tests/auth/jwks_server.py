"""A stand-in external identity provider: a loopback HTTP server publishing a discovery document
and a JWKS the test changes at will (to rotate keys), and the private keys to sign tokens with."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

AUDIENCE = "https://api.example.com"


@dataclass
class SigningKey:
    """A private key and the public JWK the issuer publishes for it."""

    kid: str
    alg: str
    private: Any
    public_jwk: dict[str, Any]


def new_key(kid: str, alg: str = "RS256") -> SigningKey:
    """A fresh RSA (RS256) or P-256 (ES256) key."""
    private: Any
    if alg.startswith("ES"):
        private = ec.generate_private_key(ec.SECP256R1())
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    return SigningKey(kid, alg, private, {**public, "kid": kid, "use": "sig", "alg": alg})


@dataclass
class Issuer:
    """The running stand-in: its URL, the keys it publishes, and how often it was asked."""

    url: str
    published: list[SigningKey] = field(default_factory=list)
    jwks_requests: int = 0

    def token(self, key: SigningKey, **claims: Any) -> str:
        """A token signed with ``key``; ``claims`` override the defaults (sub, aud, iss, times)."""
        now = int(time.time())
        body = {"iss": self.url, "aud": AUDIENCE, "sub": "user-1", "iat": now, "exp": now + 300}
        return jwt.encode(
            {**body, **claims}, key.private, algorithm=key.alg, headers={"kid": key.kid}
        )


@pytest.fixture
def external_issuer() -> Iterator[Issuer]:
    """A stand-in issuer on a free loopback port, publishing one RS256 key to begin with."""
    issuer = Issuer("")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                body: dict[str, Any] = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"}
            elif self.path == "/jwks":
                issuer.jwks_requests += 1
                body = {"keys": [key.public_jwk for key in issuer.published]}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    issuer.url = f"http://127.0.0.1:{server.server_address[1]}"
    issuer.published.append(new_key("k1"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
