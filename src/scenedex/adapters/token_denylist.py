"""The deny-list of revoked bearer tokens, in Redis (the port ``domain.revocation.TokenDenylist``).

One key per revoked token, ``scenedex:revoked-token:<revocation id>`` (``api.auth.revocation_id``:
the hash of the token's ``jti`` or of its signed claims), set with a TTL until the token's
``exp``: Redis forgets the entry when the token would be refused as expired anyway, so the list
holds at most the tokens revoked within the last ``SCENEDEX_API__MAX_TOKEN_LIFETIME_S``. Every
API replica and the CLI share it through ``SCENEDEX_REDIS_URL``.

Redis unreachable raises ``DependencyUnavailableError`` (dependency ``redis``) on a check as on a
revocation: the caller decides; the API fails closed (503, see ``api.auth.TokenVerifier``).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import redis

from scenedex.domain.errors import REDIS, DependencyUnavailableError


class KeyValue(Protocol):
    """The two Redis commands the deny-list uses (redis-py's ``Redis`` and the breakers'
    ``LocalKeyValue`` have them)."""

    def get(self, name: str) -> Any: ...

    def set(self, name: str, value: str, *, px: int | None = None) -> Any: ...


class RedisTokenDenylist:
    """Revoked token ids in Redis (``client``: a ``redis.Redis``, or any ``KeyValue``)."""

    PREFIX = "scenedex:revoked-token:"

    def __init__(self, client: KeyValue) -> None:
        self._client = client

    def revoke(self, token_id: str, ttl_s: float) -> None:
        """Refuse ``token_id`` for the next ``ttl_s`` seconds (rounded up to the millisecond;
        nothing is stored when ``ttl_s <= 0``). Raises ``DependencyUnavailableError`` when Redis
        cannot be reached."""
        if ttl_s <= 0:
            return
        try:
            self._client.set(self.PREFIX + token_id, "1", px=max(math.ceil(ttl_s * 1000), 1))
        except redis.exceptions.RedisError as error:
            raise _unavailable(error) from None

    def is_revoked(self, token_id: str) -> bool:
        """Whether ``token_id`` was revoked (and its entry has not expired). Raises
        ``DependencyUnavailableError`` when Redis cannot be reached."""
        try:
            return self._client.get(self.PREFIX + token_id) is not None
        except redis.exceptions.RedisError as error:
            raise _unavailable(error) from None


def _unavailable(error: Exception) -> DependencyUnavailableError:
    first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
    return DependencyUnavailableError(REDIS, f"token deny-list unavailable (Redis): {first_line}")
