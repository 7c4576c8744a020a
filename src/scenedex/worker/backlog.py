"""The work a queue still holds, read from dramatiq's Redis layout: what the autoscaler scales on.

Where dramatiq 2.x's ``RedisBroker`` keeps a message (``dramatiq/brokers/redis/dispatch.lua``),
under the namespace ``dramatiq`` (``NAMESPACE``, the broker's):

- ``dramatiq:<queue>`` (a list): the ids of messages **waiting** to be fetched;
- ``dramatiq:__acks__.<worker>.<queue>`` (a set per worker process): the ids a worker **fetched**
  and has not acknowledged yet, whether it runs them or holds them in its prefetch cache (a worker
  fetches as many as it has threads), including those of a dead worker until broker maintenance
  pushes them back onto the list;
- ``dramatiq:<queue>.DQ`` and its ack sets: **delayed** messages (a retry's backoff, a held item,
  ``refresh_owner``), which a worker fetches at once and keeps in memory until their ``eta``,
  then enqueues on ``<queue>`` and acknowledges on ``<queue>.DQ``;
- ``dramatiq:<queue>.msgs`` and ``dramatiq:<queue>.DQ.msgs`` (hashes, id -> message): the body of
  **every** message of the queue above, written by ``enqueue`` in the same script as the list push
  and deleted only by ``ack`` (and ``nack``, which moves it to ``.XQ``, the dead letters, and
  ``purge``).

So ``HLEN <queue>.msgs + HLEN <queue>.DQ.msgs`` is exactly the number of messages of the queue
not yet acknowledged: waiting + fetched (prefetched or running, live or dead worker) + delayed.
Both ``HLEN`` are read in one ``MULTI``/``EXEC``, and every broker command is one Lua script, so
the count is taken between two broker commands, never half way through one. It is never below
the truth. It is above it, by one message, during two hand-overs that are two commands: a delayed
message whose eta passed is enqueued on the queue before it is acknowledged on ``.DQ``, and a
retry (or a held message) is enqueued before the failed delivery is acknowledged; each lasts one
Redis round trip. KEDA's Redis list scaler reads ``LLEN <queue>``, the waiting messages alone:
0 while the last messages run, so it scales a worker away under running work.

Why not the job ledger (``reprocess_job_items`` with status queued, running or waiting): it counts
items, while a worker's capacity is in messages, and the two differ. Messages with no item: the
planner (``reprocess_embeddings``, one per job until it has written the job's items),
``ingest_video``, ``embed_video`` and ``delete_video`` on ``embeddings`` (an upload's job is
created and run inline by its message), ``refresh_owner`` and ``sweep_jobs``. Items with no
message: a paused job's (its messages are dropped and re-sent on resume: no worker can run them),
and the items of messages Redis lost (the sweeper re-sends them; its own ``sweep_jobs`` message,
sent every ``SCENEDEX_SCHEDULER__SWEEP_INTERVAL_S``, counts as backlog and brings a worker up to
run it). While a job's video items run and nothing else is sent, the two counts are equal
(``tests/integration/test_backlog_metric.py`` checks that with a real worker).

The oldest age is ``now - message_timestamp`` of the oldest message not yet acknowledged (the
time it was first sent, kept by dramatiq across retries and delays), read with ``HSCAN``: one pass
over the queue's messages per scrape, O(backlog).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from dramatiq.common import dq_name

NAMESPACE = "dramatiq"
"""The Redis key prefix of the queues: dramatiq's default, which scenedex's broker keeps (its
``NAMESPACE``)."""

DEFAULT_PORT = 9192
"""Port of ``scenedex metrics`` (next to the worker's 9191, ``SCENEDEX_WORKER__METRICS_PORT``)."""

_TIMESTAMP = re.compile(rb'"message_timestamp":\s*(\d+)')
"""dramatiq's JSON encoding of a message: ``message_timestamp`` in milliseconds since the epoch."""


@dataclass(frozen=True)
class QueueBacklog:
    """One queue's messages at one instant.

    ``backlog``: not yet acknowledged (waiting + fetched or running + delayed); ``waiting``: the
    Redis list, what KEDA's Redis list scaler sees; ``delayed``: in the delay queue (held in a
    worker's memory or waiting to be fetched); ``oldest_age_s``: seconds since the oldest of them
    was first sent (None when there is none)."""

    queue: str
    backlog: int
    waiting: int
    delayed: int
    oldest_age_s: float | None

    def to_dict(self) -> dict[str, Any]:
        """``{"queue", "backlog", "waiting", "delayed", "oldest_age_s"}``."""
        return {
            "queue": self.queue,
            "backlog": self.backlog,
            "waiting": self.waiting,
            "delayed": self.delayed,
            "oldest_age_s": self.oldest_age_s,
        }


def _hashes(queue: str) -> tuple[str, str]:
    return f"{NAMESPACE}:{queue}.msgs", f"{NAMESPACE}:{dq_name(queue)}.msgs"


def read_backlog(client: Any, queues: Sequence[str], *, now_ms: int | None = None) -> list[QueueBacklog]:
    """The backlog of each of ``queues`` on the Redis ``client`` (redis-py), counts read in one
    transaction. ``now_ms``: the clock for the ages (milliseconds since the epoch; default now).
    Raises redis-py's ``RedisError`` subclasses when Redis cannot be read."""
    pipe = client.pipeline(transaction=True)
    for queue in queues:
        messages_hash, delayed_hash = _hashes(queue)
        pipe.hlen(messages_hash)
        pipe.hlen(delayed_hash)
        pipe.llen(f"{NAMESPACE}:{queue}")
    counts = pipe.execute()
    now = time.time() * 1000 if now_ms is None else now_ms
    result = []
    for index, name in enumerate(queues):
        messages, delayed, waiting = (int(n) for n in counts[3 * index : 3 * index + 3])
        oldest = _oldest_timestamp_ms(client, _hashes(name))
        age = None if oldest is None else max(0.0, (now - oldest) / 1000)
        result.append(QueueBacklog(name, messages + delayed, waiting, delayed, age))
    return result


def _oldest_timestamp_ms(client: Any, keys: Iterable[str]) -> int | None:
    """The smallest ``message_timestamp`` among the messages in the hashes ``keys`` (None if empty)."""
    oldest: int | None = None
    for key in keys:
        for _, body in client.hscan_iter(key, count=1000):
            found = _TIMESTAMP.search(body)
            if found is not None:
                stamp = int(found.group(1))
                oldest = stamp if oldest is None else min(oldest, stamp)
    return oldest


class BacklogCollector:
    """A prometheus_client collector that reads the backlog at each scrape:
    ``scenedex_queue_backlog{queue}``, ``scenedex_queue_waiting{queue}`` and
    ``scenedex_queue_oldest_age_seconds{queue}`` (0 when the queue holds nothing). When Redis cannot
    be read the scrape fails (HTTP 500): no stale number reaches the autoscaler, which falls back
    (a ScaledObject's ``fallback``)."""

    def __init__(self, read: Callable[[], list[QueueBacklog]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        backlog = GaugeMetricFamily(
            "scenedex_queue_backlog",
            "Messages of the queue not yet acknowledged: waiting + prefetched or running + delayed.",
            labels=["queue"],
        )
        waiting = GaugeMetricFamily(
            "scenedex_queue_waiting",
            "Messages waiting in the queue's Redis list (what KEDA's Redis list scaler reads).",
            labels=["queue"],
        )
        age = GaugeMetricFamily(
            "scenedex_queue_oldest_age_seconds",
            "Seconds since the oldest message not yet acknowledged was first sent (0: none).",
            labels=["queue"],
        )
        for queue in self._read():
            backlog.add_metric([queue.queue], queue.backlog)
            waiting.add_metric([queue.queue], queue.waiting)
            age.add_metric([queue.queue], queue.oldest_age_s or 0.0)
        yield from (backlog, waiting, age)

    def describe(self) -> list[Any]:
        """Nothing: registering the collector must not read Redis."""
        return []


def serve_backlog(client: Any, queues: Sequence[str], host: str, port: int) -> Any:
    """Serve the backlog metrics of ``queues`` on ``host:port`` (any path), in a thread of this
    process, on a registry of their own (no ``process_*`` or ``python_*`` metrics); returns the
    HTTP server (``shutdown()`` stops it). Raises ``OSError`` when the port cannot be bound."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(BacklogCollector(lambda: read_backlog(client, queues)))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
