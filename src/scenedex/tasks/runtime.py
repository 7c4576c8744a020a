"""What an actor needs in a process: the services (built once), a job store, a sender and a probe.

API services that only enqueue get a ``JobCoordinator`` without a runner; worker processes
build the full services in ``WorkerRuntime.before_worker_boot`` (models loaded there, once,
before any consumer starts). Tests install their own ``Runtime`` with ``install``.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dramatiq
from dramatiq.common import dq_name

from scenedex.domain.coordinator import JobCoordinator
from scenedex.domain.ports import MessageProbe
from scenedex.settings import Settings
from scenedex.worker.broker import NAMESPACE

if TYPE_CHECKING:
    from scenedex.adapters.db.jobs import SqlJobStore
    from scenedex.worker.bootstrap import Services

log = logging.getLogger("scenedex.worker")


def broker_message_id(message: Any) -> str:
    """The id under which the broker holds ``message``: the RedisBroker's per-enqueue
    ``redis_message_id`` (a retry is a new enqueue with a new one), else the message id."""
    return str(message.options.get("redis_message_id", message.message_id))


class DramatiqSender:
    """``MessageSender`` that sends the planner and video actors' messages."""

    def send_plan(self, job_id: uuid.UUID) -> str:
        from scenedex.tasks.actors import reprocess_embeddings

        return broker_message_id(reprocess_embeddings.send(str(job_id)))

    def send_video(self, job_id: uuid.UUID, video_id: uuid.UUID) -> str:
        from scenedex.tasks.actors import reprocess_video

        return broker_message_id(reprocess_video.send(str(job_id), str(video_id)))


class RedisMessageProbe:
    """``MessageProbe`` on dramatiq's Redis layout: a message is held while its id is a field
    of ``<namespace>:<queue>.msgs`` or of the delay queue's hash (queued, delayed for a retry,
    or fetched and not yet acknowledged, including by a dead worker whose messages maintenance
    will re-queue)."""

    def __init__(self, broker: Any, queues: tuple[str, ...] = ("reprocessing",)) -> None:
        self._client = broker.client
        self._hashes = [f"{NAMESPACE}:{name}.msgs" for q in queues for name in (q, dq_name(q))]

    def __call__(self, message_id: str | None) -> bool:
        if not message_id:
            return False
        return any(self._client.hexists(key, message_id) for key in self._hashes)


@dataclass
class Runtime:
    settings: Settings
    services: Services | None
    coordinator: JobCoordinator
    probe: MessageProbe


_lock = threading.Lock()
_runtime: Runtime | None = None


def install(runtime: Runtime | None) -> None:
    """Use ``runtime`` in this process (None: build from settings on next use)."""
    global _runtime
    with _lock:
        _runtime = runtime


def current(*, with_models: bool = True) -> Runtime:
    """This process's runtime, built on first use from ``Settings()``."""
    global _runtime
    with _lock:
        if _runtime is None or (with_models and _runtime.services is None):
            _runtime = build_runtime(Settings(), with_models=with_models)
        return _runtime


def build_runtime(settings: Settings, *, with_models: bool = True, **overrides: Any) -> Runtime:
    """Services (when ``with_models``), job store, sender and probe from ``settings``;
    ``overrides`` go to ``bootstrap`` (tests pass fake embedders)."""
    from scenedex.adapters.db.engine import create_engine
    from scenedex.adapters.db.jobs import SqlJobStore

    services: Services | None = None
    if with_models:
        from scenedex.worker.bootstrap import bootstrap

        services = bootstrap(settings, **overrides)
        engine = services.engine
    else:
        engine = overrides.get("engine") or create_engine(settings.database_url)
    store: SqlJobStore = SqlJobStore(engine)
    coordinator = JobCoordinator(
        store,
        DramatiqSender(),
        services.runner() if services else None,
        max_deliveries=settings.worker.max_deliveries,
    )
    return Runtime(settings, services, coordinator, RedisMessageProbe(dramatiq.get_broker()))


class WorkerRuntime(dramatiq.Middleware):
    """Loads the models once per worker process before its consumers start, and runs the
    periodic sweeper (one process at a time, under a Redis lock).

    A model that cannot be loaded stops the worker process with one clear log line (and the
    dramatiq master then stops the others) instead of failing every job.
    """

    SWEEP_LOCK = "scenedex:sweeper"

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._stop = threading.Event()

    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        """Build the services and load every model. Any failure (a missing checkpoint raises
        at construction, a corrupt one at load) stops the process with one log line:
        ``SystemExit`` passes through dramatiq's middleware error handling, an ordinary
        exception would only be logged and the worker would consume without models."""
        try:
            runtime = current(with_models=True)
            services = runtime.services
            assert services is not None
            for embedder in (services.image_embedder, services.text_embedder, services.face_embedder):
                load = getattr(embedder, "load", None)
                if load is not None:
                    load()
        except Exception as error:
            log.critical("worker cannot start: %s", error)
            raise SystemExit(1) from None
        if any(type(m).__name__ == "Prometheus" for m in broker.middleware):
            # Not in after_process_boot: dramatiq runs those hooks in reverse middleware order,
            # so this one would import prometheus_client before dramatiq's Prometheus middleware
            # has set PROMETHEUS_MULTIPROC_DIR, leaving the process in single-process mode and
            # every metric (dramatiq's too) missing from the exposition on the metrics port.
            from scenedex.worker.metrics import PrometheusJobEvents

            runtime.coordinator.events = PrometheusJobEvents()
        log.info("worker ready: spec %s", services.spec.version)

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        interval = self.settings.worker.sweep_interval_s
        if interval > 0:
            threading.Thread(target=self._sweep_loop, args=(broker, interval), daemon=True).start()

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        self._stop.set()

    def after_enqueue(self, broker: Any, message: Any, delay: int | None) -> None:
        """A retry is re-enqueued under a new broker id: record it on the item so the
        sweeper does not take the delayed message for lost."""
        if delay is None or message.actor_name != "reprocess_video":
            return
        from scenedex.domain.jobs import ItemKind

        job_id, video_id = (uuid.UUID(arg) for arg in message.args)
        store = current(with_models=False).coordinator.store
        store.set_message_ids(job_id, [(ItemKind.VIDEO, video_id, broker_message_id(message))])

    def _sweep_loop(self, broker: Any, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                if broker.client.set(self.SWEEP_LOCK, broker.broker_id, nx=True, px=int(interval * 900)):
                    runtime = current(with_models=False)
                    resent = runtime.coordinator.sweep(runtime.probe)
                    if resent:
                        log.warning(
                            "sweeper re-sent lost messages: %s", {str(k): v for k, v in resent.items()}
                        )
            except Exception:  # the sweeper must never kill the worker
                log.exception("sweep failed")
