"""The Dramatiq broker: a RedisBroker from settings, set as the global broker.

Building it opens no connection (redis-py connects on first command) and imports no model
code. ``tasks.queue.task_broker`` installs it before the actors
are declared; the worker's entry (``worker.dramatiq_app``) does the same.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage

from scenedex.settings import Settings

NAMESPACE = "dramatiq"
"""Redis key prefix of the queues (dramatiq's default): ``dramatiq:<queue>.msgs`` holds the
messages, queued, delayed (``<queue>.DQ``) or in flight, until they are acknowledged."""


def build_broker(settings: Settings) -> RedisBroker:
    """A RedisBroker on ``settings.redis_url`` with dramatiq's default middleware (age and
    time limits, retries, shutdown notifications...) plus ``CurrentMessage`` (the actors read
    their retry count from it). Heartbeat and maintenance are tuned for redelivery of a killed
    worker's messages within a minute (see ``WorkerSettings``)."""
    broker = RedisBroker(  # type: ignore[no-untyped-call]  # dramatiq ships no annotations here
        url=settings.redis_url,
        namespace=NAMESPACE,
        heartbeat_timeout=settings.worker.heartbeat_timeout_ms,
        maintenance_chance=settings.worker.maintenance_chance,
    )
    broker.add_middleware(CurrentMessage())
    return broker


def install_broker(settings: Settings) -> RedisBroker:
    """Build the broker and make it dramatiq's global broker (before any actor is declared)."""
    broker = build_broker(settings)
    dramatiq.set_broker(broker)
    return broker


def ensure_broker(settings: Settings) -> dramatiq.Broker:
    """dramatiq's global broker: the one set before (by an earlier runtime of this process, a
    test, a host application), else a RedisBroker on ``settings`` installed now."""
    return dramatiq.broker.global_broker or install_broker(settings)
