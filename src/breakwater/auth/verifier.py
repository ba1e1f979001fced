"""Every bearer token a node accepts: its own (HS256, ``iss: breakwater``) and those of the
configured external issuers, told apart by the ``iss`` they claim and then fully verified by
the one verifier for that issuer. A token from any other issuer is refused.

The node's own tokens go through ``AuthService.verify_access``, which also refuses the tokens of
disabled accounts; external callers have no Breakwater account to disable (their issuer does)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from breakwater.auth.external_tokens import ExternalIssuer
from breakwater.auth.foreign_jwt import unverified_issuer
from breakwater.auth.identity import Identity
from breakwater.auth.tokens import ISSUER
from breakwater.core.errors import Unauthorized


class TokenVerifier:
    """Picks the verifier by ``iss`` and verifies with it."""

    def __init__(
        self, own: Callable[[str], Identity], external: Sequence[ExternalIssuer] = ()
    ) -> None:
        self.own = own
        self.external = {issuer.settings.issuer: issuer for issuer in external}

    async def verify(self, token: str) -> Identity:
        """The identity of a valid token (an external issuer's keys are fetched if needed)."""
        external = self._external(token)
        return self.own(token) if external is None else await external.verify(token)

    def verify_cached(self, token: str) -> Identity:
        """:meth:`verify` without network: an external token needs its key cached already."""
        external = self._external(token)
        return self.own(token) if external is None else external.verify_cached(token)

    def _external(self, token: str) -> ExternalIssuer | None:
        if not self.external:
            return None
        claimed = unverified_issuer(token)
        if claimed == ISSUER or claimed is None:
            return None  # Breakwater's own verifier refuses anything malformed
        issuer = self.external.get(claimed)
        if issuer is None:
            raise Unauthorized("the token's issuer is not trusted")
        return issuer
