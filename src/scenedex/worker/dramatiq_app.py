"""The module ``scenedex worker`` hands to dramatiq's CLI, the worker's entry point: it reads
the settings, installs the broker with the actors declared on it and adds the worker-only
middleware (``WorkerRuntime``: each worker process builds its runtime through the composition
root and loads the models; Prometheus metrics; the log context).

Prometheus: dramatiq's middleware serves every process's metrics (multiprocess mode) on
``dramatiq_prom_port`` (``SCENEDEX_WORKER__METRICS_PORT``, default 9191; 0 turns metrics off),
including scenedex's own (``scenedex.worker.metrics``).
"""

from __future__ import annotations

from dramatiq.middleware.prometheus import Prometheus

from scenedex.application import JobRuntime, build_services
from scenedex.settings import Settings
from scenedex.tasks.queue import build_runtime, task_broker
from scenedex.worker.logs import configure_logging, install_log_context
from scenedex.worker.runtime import WorkerRuntime

settings = Settings()
configure_logging(settings.log_level, settings.log_format)
broker = task_broker(settings)


def build_worker_runtime() -> JobRuntime:
    """This worker process's services and job runtime (called once per process, at boot)."""
    return build_runtime(settings, build_services(settings))


if settings.worker.metrics_port:
    broker.add_middleware(Prometheus())
broker.add_middleware(WorkerRuntime(build_worker_runtime))
install_log_context(broker)
