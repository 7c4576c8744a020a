"""What the broker holds: the broker id of a sent message and the Redis probe that asks whether
a message is still held. Neither imports the actors, so the composition root and the worker
middleware can use them before any actor is declared."""

from __future__ import annotations

from typing import Any

from dramatiq.common import dq_name

from scenedex.worker.broker import NAMESPACE


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
