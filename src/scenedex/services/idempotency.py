"""The ``Idempotency-Key`` use case: run a create once per key, replay its answer after
(``domain.idempotency``)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from scenedex.domain.idempotency import IdempotencyStore, StoredAnswer
from scenedex.domain.model import utcnow


def fingerprint(parts: Any) -> str:
    """SHA-256 hex of ``parts`` (JSON-able: the parsed input of a request) as canonical JSON
    (sorted keys, no spaces): the same request gives the same fingerprint however its body was
    spelt (key order, multipart boundary)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class Idempotency:
    """``once(owner, key, route, fingerprint, run)``: ``run()`` for the first request with the
    key, its answer stored for ``ttl_s`` seconds and replayed for the same request after."""

    def __init__(self, store: IdempotencyStore, ttl_s: float, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.ttl = timedelta(seconds=ttl_s)
        self.clock = clock

    def once(
        self,
        owner_id: uuid.UUID,
        key: str,
        route: str,
        request_fingerprint: str,
        run: Callable[[], StoredAnswer],
    ) -> StoredAnswer:
        """The answer of ``run()`` (called at most once per live key) or the stored one.
        Raises ``IdempotencyKeyReusedError`` (another request used the key),
        ``IdempotencyInProgressError`` (the first is still running) and whatever ``run`` raises
        (then nothing is stored and the key is free again)."""
        now = self.clock()
        claim = self.store.claim(owner_id, key, route, request_fingerprint, now, now + self.ttl)
        if claim.replay is not None:
            return claim.replay
        try:
            answer = run()
        except BaseException:
            self.store.release(owner_id, key)
            raise
        self.store.complete(owner_id, key, answer)
        return answer

    def purge(self) -> int:
        """Delete the expired keys; how many."""
        return self.store.purge(self.clock())
