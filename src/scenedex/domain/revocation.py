"""The port of revoked bearer tokens: a deny-list shared by every API replica and the CLI.

The API's verifier (``api.auth.TokenVerifier``) asks it for every token that verified; signing
out of the console and ``scenedex token revoke`` add to it. The ids are ``api.auth.revocation_id``
(a hash of the token's ``jti`` or of its signed claims); ``adapters.token_denylist`` keeps them in
Redis until the token's ``exp``.
"""

from __future__ import annotations

from typing import Protocol


class TokenDenylist(Protocol):
    """Revoked token ids. Both methods raise ``DependencyUnavailableError`` when the store
    cannot be reached."""

    def revoke(self, token_id: str, ttl_s: float) -> None:
        """Refuse ``token_id`` for the next ``ttl_s`` seconds (until the token's ``exp``)."""
        ...

    def is_revoked(self, token_id: str) -> bool: ...
