"""The queue side an entry point hands the application: dramatiq's broker with scenedex's actors
declared on it, their sender and the broker's message probe (``TaskQueue``), and the job runtime
built on them (``build_runtime``).

The application (``scenedex.application``) never imports the actors; the entry points (the API,
the CLI, the worker, the scheduler) pass it what this module builds. Opens no connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dramatiq

from scenedex.application.runtime import JobRuntime, TaskQueue
from scenedex.application.runtime import build_runtime as build_job_runtime
from scenedex.settings import Settings
from scenedex.tasks.broker import ensure_broker
from scenedex.tasks.fleet import RedisWorkerFleet
from scenedex.tasks.messaging import RedisMessageProbe

if TYPE_CHECKING:
    from scenedex.application.root import Services


def task_broker(settings: Settings) -> dramatiq.Broker:
    """dramatiq's global broker with scenedex's actors declared on it: the broker set before,
    or a RedisBroker on ``settings.redis_url`` installed now (``ensure_broker``), the item actors'
    retries configured from ``settings.worker``. The worker's entry calls it before adding its
    middleware; ``task_queue`` calls it too."""
    broker = ensure_broker(settings)
    from scenedex.tasks.actors import configure_retries  # declares the actors on the global broker

    configure_retries(settings.worker)
    return broker


def task_queue(settings: Settings) -> TaskQueue:
    """The broker (``task_broker``), the actors' sender, the Redis message probe and the worker
    fleet read from the broker's keys."""
    broker = task_broker(settings)
    from scenedex.tasks.actors import DramatiqSender

    fleet = RedisWorkerFleet(getattr(broker, "client", None))
    return TaskQueue(broker, DramatiqSender(), RedisMessageProbe(broker), fleet)


def build_runtime(settings: Settings, services: Services | None = None, **options: Any) -> JobRuntime:
    """The job runtime of a process on ``settings`` and this module's ``task_queue``
    (``application.runtime.build_runtime``; ``options``: ``engine``)."""
    return build_job_runtime(settings, services, queue=task_queue(settings), **options)
