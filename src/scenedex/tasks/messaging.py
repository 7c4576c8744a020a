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

    def __init__(self, client: Any) -> None:
        self._client = client

    def record(self, job_id: uuid.UUID, video_id: uuid.UUID, message_id: str) -> None:
        self._client.hset(self.KEY, f"{job_id}:{video_id}", message_id)

    def forget(self, job_id: uuid.UUID, video_id: uuid.UUID) -> None:
        """The database has the item's newest id: a pending older one must not overwrite it."""
        self._client.hdel(self.KEY, f"{job_id}:{video_id}")

    def flush(self, store: JobStore) -> int:
        """Write every pending id to its item (before the sweeper asks which messages are
        lost); returns how many. Raises the database's error (the ids stay pending)."""
        pending = {k.decode(): v.decode() for k, v in (self._client.hgetall(self.KEY) or {}).items()}
        by_job: dict[uuid.UUID, list[tuple[ItemKind, uuid.UUID, str]]] = {}
        for field, message_id in pending.items():
            job_id, video_id = (uuid.UUID(part) for part in field.split(":"))
            by_job.setdefault(job_id, []).append((ItemKind.VIDEO, video_id, message_id))
        for job_id, ids in by_job.items():
            store.set_message_ids(job_id, ids)
        for field, message_id in pending.items():
            if (self._client.hget(self.KEY, field) or b"").decode() == message_id:
                self._client.hdel(self.KEY, field)
        if pending:
            log.warning("wrote %d message id(s) kept in Redis while the database was down", len(pending))
        return len(pending)
