"""The ``WorkerFleet`` port on dramatiq's Redis keys: queue depths (``<queue>``, ``<queue>.DQ``
lists, ``.msgs`` hashes, ``.XQ`` dead letters) and live workers (the ``__heartbeats__`` sorted
set), under ``tasks.broker.NAMESPACE``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from scenedex.domain.ports import LiveWorker, QueueDepth
from scenedex.tasks.broker import NAMESPACE


class RedisWorkerFleet:
    """The fleet as dramatiq's Redis broker records it, read through ``client`` (redis-py)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def queue_depths(self, queues: Sequence[str]) -> list[QueueDepth]:
        """The depth of each of ``queues`` from dramatiq's Redis keys (one round trip)."""
        pipe = self._client.pipeline(transaction=False)
        for queue in queues:
            base = f"{NAMESPACE}:{queue}"
            pipe.llen(base)
            pipe.llen(f"{base}.DQ")
            pipe.hlen(f"{base}.msgs")
            pipe.hlen(f"{base}.DQ.msgs")
            pipe.zcard(f"{base}.XQ")
        values = pipe.execute()
        return [
            QueueDepth(queue, ready, delayed, held + delayed_held, dead)
            for queue, (ready, delayed, held, delayed_held, dead) in zip(
                queues, (values[i : i + 5] for i in range(0, len(values), 5)), strict=True
            )
        ]

    def live_workers(self, heartbeat_timeout_ms: int, *, exclude: str | None = None) -> list[LiveWorker]:
        """Brokers with a heartbeat in the last ``heartbeat_timeout_ms`` (dramatiq's sorted set
        ``__heartbeats__``, scored in ms; every fetch of a worker is a heartbeat, about one a
        second per queue). A process that only sends messages (this API, the CLI) heartbeats when
        it sends: ``exclude`` leaves out this process's own broker."""
        now_ms = time.time() * 1000
        entries = self._client.zrangebyscore(
            f"{NAMESPACE}:__heartbeats__", now_ms - heartbeat_timeout_ms, "+inf", withscores=True
        )
        workers = []
        for member, score in entries:
            broker_id = member.decode() if isinstance(member, bytes) else str(member)
            if broker_id != exclude:
                workers.append(LiveWorker(broker_id, max(now_ms - score, 0) / 1000))
        return sorted(workers, key=lambda worker: worker.seconds_ago)
