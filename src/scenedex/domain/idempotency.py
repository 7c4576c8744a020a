"""Idempotent creates: the first answer to an ``Idempotency-Key`` is kept and replayed (issue 28).

A caller that retries a non-idempotent request (a create) after a lost answer sends the same
``Idempotency-Key``; the first request's answer is stored per ``(owner, key)`` with the
request's ``route`` and ``fingerprint`` (a hash of what the request asks for, computed by the
route from its parsed input) until it expires, and given again without doing anything twice.

- same key, same route and fingerprint, answered: the stored answer (``Claim.replay``);
- same key, another route or fingerprint: ``IdempotencyKeyReusedError`` (the API's 422);
- same key while the first request still runs: ``IdempotencyInProgressError`` (409);
- a request that fails (an error answer) stores nothing: the key can be used again.

Standard library only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from scenedex.domain.errors import ConflictError, InvalidRequestError

MAX_KEY_CHARS = 255
"""Longest ``Idempotency-Key`` (the header's value: printable ASCII, no space)."""


class IdempotencyKeyReusedError(InvalidRequestError):
    """The key was used for another request (another route or body) of this owner."""


class IdempotencyInProgressError(ConflictError):
    """The first request with this key has not answered yet: retry later."""


@dataclass(frozen=True)
class StoredAnswer:
    """A 2xx answer as sent: ``status``, ``body`` (the JSON text) and the ``headers`` worth
    replaying (``Location``, ``Retry-After``)."""

    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming a key: ``new`` (run the request, then ``complete`` or
    ``release``), or ``replay`` (the stored answer); a mismatch or a running request is an
    error instead."""

    new: bool
    replay: StoredAnswer | None = None


class IdempotencyStore(Protocol):
    """The kept answers, keyed by ``(owner_id, key)``."""

    def claim(
        self, owner_id: uuid.UUID, key: str, route: str, fingerprint: str, now: datetime, expires_at: datetime
    ) -> Claim:
        """Claim ``key`` for this request (an expired row is replaced); raises
        ``IdempotencyKeyReusedError`` or ``IdempotencyInProgressError`` as the module says."""
        ...

    def complete(self, owner_id: uuid.UUID, key: str, answer: StoredAnswer) -> None:
        """Store the answer of the request that claimed ``key``."""
        ...

    def release(self, owner_id: uuid.UUID, key: str) -> None:
        """Forget an unanswered claim (the request failed)."""
        ...

    def purge(self, now: datetime) -> int:
        """Delete the expired rows; how many."""
        ...
