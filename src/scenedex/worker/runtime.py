"""The worker process's ``TaskRuntime``: builds the job runtime in each worker process at boot,
loads the models, runs the periodic sweeper, the circuit breakers' probes and the webhook
dispatcher (``WorkerRuntime``, added by ``worker.dramatiq_app``)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from scenedex.domain.jobs import ItemKind
from scenedex.tasks.messaging import PendingMessageIds, broker_message_id
from scenedex.tasks.runtime import TaskRuntime

if TYPE_CHECKING:
    from scenedex.application import JobRuntime

CANNOT_START = 78
"""The exit code of a worker process whose models cannot be loaded (``EX_CONFIG``): dramatiq's
main process exits with it too, and ``scenedex worker``'s supervisor does not restart it."""

log = logging.getLogger("scenedex.worker")


class WorkerRuntime(TaskRuntime):
    """The worker's ``TaskRuntime``: builds the runtime with ``build`` (the entry point's
    composition, e.g. ``lambda: build_runtime(settings, build_services(settings))``) and loads the
    models once per worker process before its consumers start, runs the periodic sweeper
    (``runtime.settings.worker.sweep_interval_s``; one process at a time, under a Redis lock)
    and the circuit breakers' probes (every ``BREAKER_TICK_S``: an open breaker whose probe is
    due is probed by one process, ``BreakerBoard.probe_due``).

    A model that cannot be loaded stops the worker process with one clear log line and exit code
    ``CANNOT_START`` (the dramatiq master then stops the others, and the supervisor does not
    restart them) instead of failing every job.
    """

    SWEEP_LOCK = "scenedex:sweeper"
    BREAKER_TICK_S = 1.0

    def __init__(self, build: Callable[[], JobRuntime]) -> None:
        super().__init__()
        self._build = build
        self._stop = threading.Event()
        self._gauges: Any = None
        self._webhook_metrics: Any = None

    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        """Build this process's runtime and load every model. Any failure (a missing checkpoint
        raises at construction, a corrupt one at load) stops the process with one log line:
        ``SystemExit`` passes through dramatiq's middleware error handling, an ordinary
        exception would only be logged and the worker would consume without models."""
        try:
            runtime = self._build()
            services = runtime.services
            if services is None:
                raise RuntimeError("the worker needs a runtime built with services")
            embedders = {"clip": services.image_embedder, "text": services.text_embedder}
            embedders["faces"] = services.face_embedder
            embedders["ocr"] = services.ocr_reader if services.spec.inputs.ocr_model_id else None
            for role, embedder in embedders.items():
                if role in services.off_roles:  # a model switched off is never loaded
                    continue
                load = getattr(embedder, "load", None)
                if load is not None:
                    load()
        except Exception as error:
            log.critical("worker cannot start: %s", error)
            raise SystemExit(CANNOT_START) from None
        if any(type(m).__name__ == "Prometheus" for m in broker.middleware):
            # Not in after_process_boot: dramatiq runs those hooks in reverse middleware order,
            # so this one would import prometheus_client before dramatiq's Prometheus middleware
            # has set PROMETHEUS_MULTIPROC_DIR, leaving the process in single-process mode and
            # every metric (dramatiq's too) missing from the exposition on the metrics port.
            from scenedex.worker.metrics import DependencyGauges, PrometheusJobEvents, WebhookMetrics

            runtime.coordinator.events = PrometheusJobEvents()
            self._gauges = DependencyGauges()
            self._webhook_metrics = WebhookMetrics()
            watch_embed_pools(services)
        self.runtime = runtime
        log.info("worker ready: spec %s", services.spec.version)

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        """Start the sweeper thread (unless the interval is 0) and the breaker probe thread."""
        interval = self.runtime.settings.worker.sweep_interval_s if self.runtime else 0
        if interval > 0:
            threading.Thread(target=self._sweep_loop, args=(broker, interval), daemon=True).start()
        if self.runtime is not None:
            threading.Thread(target=self._breaker_loop, daemon=True).start()
            threading.Thread(target=self._dispatch_loop, daemon=True).start()

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        """Stop the sweeper thread."""
        self._stop.set()

    def after_enqueue(self, broker: Any, message: Any, delay: int | None) -> None:
        """A retried or held message is re-enqueued under a new broker id, twice: onto the delay
        queue, then (its delay over) back onto its queue, where dramatiq's worker moves it under
        yet another id (``delay`` None; it carries ``retries`` or ``holds``). Record each on the
        item so the sweeper does not take the delayed message for lost. A first send is
        recorded by the coordinator. With the database down the id is kept in Redis
        (``PendingMessageIds``) and written by the next sweep."""
        if message.actor_name != "reprocess_video" or self.runtime is None:
            return
        if delay is None and not {"retries", "holds"} & set(message.options):
            return
        job_id, video_id = (uuid.UUID(arg) for arg in message.args)
        message_id = broker_message_id(message)
        pending = PendingMessageIds(broker.client)
        with pending.item_lock(job_id, video_id):  # a sweep's flush must not write an older id over it
            try:
                self.runtime.coordinator.store.set_message_ids(
                    job_id, [(ItemKind.VIDEO, video_id, message_id)]
                )
            except Exception as error:
                pending.record(job_id, video_id, message_id)
                log.warning(
                    "job %s video %s: message id kept in Redis until the database is back (%s)",
                    job_id,
                    video_id,
                    error,
                )
                return
            pending.forget(job_id, video_id)

    def _sweep_loop(self, broker: Any, interval: float) -> None:
        runtime = self.runtime
        assert runtime is not None  # started by after_worker_boot once the runtime is built
        while not self._stop.wait(interval):
            try:
                if broker.client.set(self.SWEEP_LOCK, broker.broker_id, nx=True, px=int(interval * 900)):
                    PendingMessageIds(broker.client).flush(runtime.coordinator.store)
                    if self._gauges is not None:
                        self._gauges.held(runtime.coordinator.store.waiting_counts())
                    resent = runtime.coordinator.sweep(runtime.probe)
                    if resent:
                        log.warning(
                            "sweeper re-sent lost messages: %s", {str(k): v for k, v in resent.items()}
                        )
            except Exception:  # the sweeper must never kill the worker
                log.exception("sweep failed")

    PRUNE_EVERY_S = 600.0
    GAUGE_EVERY_S = 5.0

    def _dispatch_loop(self) -> None:
        """Send a ``deliver_webhook`` message for each due webhook delivery (new, retry due, or
        lost: its lease ran out) every ``SCENEDEX_WEBHOOKS__DISPATCH_INTERVAL_S``; every worker
        process runs it, the claims (``FOR UPDATE SKIP LOCKED`` and a lease) keep them apart.
        Every ``PRUNE_EVERY_S`` one process deletes the events past their retention."""
        app = self.application
        interval = app.settings.webhooks.dispatch_interval_s
        metrics = self._webhook_metrics
        if metrics is not None:
            app.webhooks.observe = metrics.delivery
        last_prune = last_gauge = 0.0
        while not self._stop.wait(interval):
            try:
                while app.webhooks.dispatch() >= app.settings.webhooks.dispatch_batch:
                    pass  # a backlog: send the next batch at once
                if metrics is not None and time.monotonic() - last_gauge > self.GAUGE_EVERY_S:
                    last_gauge = time.monotonic()
                    metrics.oldest_undelivered(app.events.oldest_undelivered_age_s())
                if time.monotonic() - last_prune > self.PRUNE_EVERY_S:
                    last_prune = time.monotonic()
                    pruned = app.events.prune()
                    if pruned:
                        log.info("events past their retention deleted: %d", pruned)
            except Exception:  # the dispatcher must never kill the worker
                log.exception("webhook dispatch failed")

    def _breaker_loop(self) -> None:
        runtime = self.runtime
        assert runtime is not None
        while not self._stop.wait(self.BREAKER_TICK_S):
            try:
                runtime.breakers.probe_due()
                if self._gauges is not None:
                    self._gauges.breakers(runtime.breakers.statuses())
            except Exception:  # the probe thread must never kill the worker
                log.exception("breaker probe failed")


def watch_embed_pools(services: Any) -> None:
    """Give every embedding service pool of ``services`` the instance metrics
    (``EmbedPoolMetrics``) and check each instance now: one reporting other model ids than the
    spec's is refused and shows as such (gauge 2, an ERROR line) before any request."""
    from scenedex.adapters.embed_pool import EmbedServicePool
    from scenedex.worker.metrics import EmbedPoolMetrics

    pools = {
        id(client): client
        for embedder in (services.image_embedder, services.text_embedder, services.face_embedder)
        if isinstance(client := getattr(embedder, "client", None), EmbedServicePool)
    }
    if not pools:
        return
    metrics = EmbedPoolMetrics()
    for pool in pools.values():
        pool.events = metrics
        pool.check_all()
