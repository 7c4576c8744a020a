"""What the broker holds: the broker id of a sent message and the Redis probe that asks whether
a message is still held. Neither imports the actors, so the composition root and the worker
middleware can use them before any actor is declared."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from dramatiq.common import dq_name

from scenedex.domain.jobs import ItemKind
from scenedex.domain.ports import JobStore
from scenedex.tasks.broker import NAMESPACE


def broker_message_id(message: Any) -> str:
    """The id under which the broker holds ``message``: the RedisBroker's per-enqueue
    ``redis_message_id`` (a retry is a new enqueue with a new one), else the message id."""
    return str(message.options.get("redis_message_id", message.message_id))


class RedisMessageProbe:
    """``MessageProbe`` on dramatiq's Redis layout: a message is held while its id is a field
    of ``<namespace>:<queue>.msgs`` or of the delay queue's hash (queued, delayed for a retry,
    or fetched and not yet acknowledged, including by a dead worker whose messages maintenance
    will re-queue). Built on a RedisBroker (its client); asking opens a connection."""

    def __init__(self, broker: Any, queues: tuple[str, ...] = ("reprocessing",)) -> None:
        self._client = broker.client
        self._hashes = [f"{NAMESPACE}:{name}.msgs" for q in queues for name in (q, dq_name(q))]

    def __call__(self, message_id: str | None) -> bool:
        """True when the broker holds ``message_id`` (None or empty: never sent, False)."""
        if not message_id:
            return False
        return any(self._client.hexists(key, message_id) for key in self._hashes)


log = logging.getLogger("scenedex.worker")


class PendingMessageIds:
    """Message ids that belong to the message protocol but could not be written to the
    database (it was down when a retried or held message was re-enqueued), kept in the Redis
    hash ``scenedex:pending-message-ids`` (field ``<job_id>:<video_id>``) until ``flush``
    writes them to their items. Redis is up whenever this is needed: the message was just
    enqueued there. Without it the sweeper would take the delayed message for lost and send
    it again."""

    KEY = "scenedex:pending-message-ids"
    LOCK_TIMEOUT_S = 10.0
    """How long an item's lock is held at most, and waited for (seconds)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def item_lock(self, job_id: uuid.UUID, video_id: uuid.UUID) -> Any:
        """A Redis lock (redis-py's ``Lock``) per item, held around each write of the item's
        message id and of its pending entry, so that ``flush`` never writes a pending id over a
        newer one. Without it (seen on a fast 2-core machine): ``flush`` read a pending id, the
        delayed message moved back to its queue under a newer id that ``after_enqueue`` wrote
        and forgot, then ``flush`` wrote the older, acknowledged id over it, and the sweeper
        took the item's message for lost and sent it again. The lock expires after
        ``LOCK_TIMEOUT_S`` (a database write that hangs longer is not waited for); leaving an
        expired lock is logged by redis-py, not raised (``raise_on_release_error=False``).
        Raises redis-py's ``LockError`` when the lock cannot be had within ``LOCK_TIMEOUT_S``."""
        return self._client.lock(
            f"{self.KEY}:lock:{job_id}:{video_id}",
            timeout=self.LOCK_TIMEOUT_S,
            blocking_timeout=self.LOCK_TIMEOUT_S,
            raise_on_release_error=False,
        )

    def record(self, job_id: uuid.UUID, video_id: uuid.UUID, message_id: str) -> None:
        self._client.hset(self.KEY, f"{job_id}:{video_id}", message_id)

    def forget(self, job_id: uuid.UUID, video_id: uuid.UUID) -> None:
        """The database has the item's newest id: a pending older one must not overwrite it."""
        self._client.hdel(self.KEY, f"{job_id}:{video_id}")

    def flush(self, store: JobStore) -> int:
        """Write every pending id to its item (before the sweeper asks which messages are
        lost), each under its ``item_lock`` and only while it is still the pending one (a newer
        id written or kept meanwhile wins); returns how many were written. Raises the
        database's error (the ids stay pending)."""
        pending = {k.decode(): v.decode() for k, v in (self._client.hgetall(self.KEY) or {}).items()}
        written = 0
        for field, message_id in pending.items():
            job_id, video_id = (uuid.UUID(part) for part in field.split(":"))
            with self.item_lock(job_id, video_id):
                if (self._client.hget(self.KEY, field) or b"").decode() != message_id:
                    continue
                store.set_message_ids(job_id, [(ItemKind.VIDEO, video_id, message_id)])
                self._client.hdel(self.KEY, field)
                written += 1
        if written:
            log.warning("wrote %d message id(s) kept in Redis while the database was down", written)
        return written
