"""The module ``scenedex worker`` hands to dramatiq's CLI: the broker with the worker-only
middleware (model loading and sweeper, Prometheus metrics) and the actors.

Prometheus: dramatiq's middleware serves every process's metrics (multiprocess mode) on
``dramatiq_prom_port`` (``SCENEDEX_WORKER__METRICS_PORT``, default 9191; 0 turns metrics off),
including scenedex's own (``scenedex.worker.metrics``).
"""

from __future__ import annotations

import dramatiq
from dramatiq.middleware.prometheus import Prometheus

import scenedex.tasks  # noqa: F401  (sets the broker, declares the actors)
from scenedex.settings import Settings
from scenedex.tasks.runtime import WorkerRuntime
from scenedex.worker.logs import configure_logging, install_log_context

settings = Settings()
configure_logging(settings.log_level, settings.log_format)
broker = dramatiq.get_broker()
if settings.worker.metrics_port:
    broker.add_middleware(Prometheus())
broker.add_middleware(WorkerRuntime(settings))
install_log_context(broker)
