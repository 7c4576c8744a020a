"""The Dramatiq broker: a RedisBroker from settings, set as the global broker.

Building it opens no connection (redis-py connects on first command) and imports no model
code. ``tasks.queue.task_broker`` installs it before the actors
are declared; the worker's entry (``worker.dramatiq_app``) does the same.
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage

from scenedex.domain import logcontext
from scenedex.settings import Settings

REQUEST_ID_OPTION = "request_id"
"""The message option that carries the id of the API request (``X-Request-ID``) which sent it;
the worker's ``LogContextMiddleware`` sets it in the log context while the message runs."""
NAMESPACE = "dramatiq"
"""Redis key prefix of the queues (dramatiq's default): ``dramatiq:<queue>.msgs`` holds the
messages, queued, delayed (``<queue>.DQ``) or in flight, until they are acknowledged."""


def build_broker(settings: Settings) -> RedisBroker:
    """A RedisBroker on ``settings.redis_url`` with dramatiq's default middleware (age and
    time limits, retries, shutdown notifications...) plus ``CurrentMessage`` (the actors read
    their retry count from it) and ``CarryRequestId``. Heartbeat and maintenance are tuned for
    redelivery of a killed worker's messages within a minute (see ``WorkerSettings``)."""
    broker = RedisBroker(  # type: ignore[no-untyped-call]  # dramatiq ships no annotations here
        url=settings.redis_url,
        namespace=NAMESPACE,
        heartbeat_timeout=settings.worker.heartbeat_timeout_ms,
        maintenance_chance=settings.worker.maintenance_chance,
    )
    broker.add_middleware(CurrentMessage())
    broker.add_middleware(CarryRequestId())
    return broker


class CarryRequestId(dramatiq.Middleware):
    """Puts the ``request_id`` of the log context (the API request's ``X-Request-ID`` while it
    runs, or the one of the message a worker is processing) in the options of each message
    sent, as ``REQUEST_ID_OPTION``, so the lines the worker logs for it carry the request that
    caused it. A message that already has one (a retry, a copy) keeps it; a message sent outside
    any request (the scheduler, the sweeper, the CLI) gets none."""

    def before_enqueue(
        self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None
    ) -> None:
        request_id = logcontext.current().get("request_id")
        if request_id is not None and REQUEST_ID_OPTION not in message.options:
            message.options[REQUEST_ID_OPTION] = request_id


def install_broker(settings: Settings) -> RedisBroker:
    """Build the broker and make it dramatiq's global broker (before any actor is declared)."""
    broker = build_broker(settings)
    dramatiq.set_broker(broker)
    return broker


def ensure_broker(settings: Settings) -> dramatiq.Broker:
    """dramatiq's global broker: the one set before (by an earlier runtime of this process, a
    test, a host application), else a RedisBroker on ``settings`` installed now."""
    return dramatiq.broker.global_broker or install_broker(settings)
