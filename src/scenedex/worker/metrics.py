"""scenedex's Prometheus metrics, next to dramatiq's (``dramatiq_messages_total``,
``dramatiq_message_duration_milliseconds``...), served by dramatiq's Prometheus middleware
on ``SCENEDEX_WORKER__METRICS_PORT`` (default 9191) from every worker process.

- ``scenedex_job_items_total`` (counter; ``kind``: persons, video; ``status``: succeeded,
  failed): job items finished;
- ``scenedex_records_total`` (counter; ``step``; ``outcome``: computed, skipped, failed):
  records per step by outcome;
- ``scenedex_job_duration_seconds`` (histogram; ``trigger``, ``status``): seconds from a job's
  creation to its end;
- ``scenedex_breaker_state`` (gauge; ``dependency``): 0 closed, 1 half-open, 2 open (the shared
  state, so every process reports the same; ``max`` over processes);
- ``scenedex_items_held`` (gauge; ``waiting_on``: a dependency, or ``retry``): job items
  ``waiting``, counted by the process that runs the sweep (``mostrecent``);
- ``scenedex_embed_instance_state`` (gauge; ``instance``: an embedding service URL): 0 ok,
  1 down (its breaker open), 2 refused (it reports other model ids than the spec's);
- ``scenedex_embed_instance_requests_total`` (counter; ``instance``, ``outcome``: ok, failed):
  requests this worker sent each embedding service (``SCENEDEX_EMBEDDER__URLS``);
- ``scenedex_webhook_deliveries_total`` (counter; ``outcome``) and
  ``scenedex_webhook_oldest_undelivered_seconds`` (gauge): ``WebhookMetrics``.

The metrics are created after dramatiq's middleware has set ``PROMETHEUS_MULTIPROC_DIR``
(``after_process_boot``), as prometheus_client's multiprocess mode requires.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from scenedex.adapters.breakers import BreakerStatus
from scenedex.domain.errors import DEPENDENCIES
from scenedex.domain.jobs import RETRY, ItemKind, ItemStatus, Job

JOB_DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 24 * 3600)
"""Seconds: one video takes seconds, a full reindex hours."""


class PrometheusJobEvents:
    """``JobEvents`` that update the Prometheus metrics above."""

    def __init__(self, registry: Any = None) -> None:
        import prometheus_client as prom

        options = {"registry": registry} if registry is not None else {}
        self.items = prom.Counter(
            "scenedex_job_items_total", "Job items finished.", ["kind", "status"], **options
        )
        self.records = prom.Counter(
            "scenedex_records_total", "Records per step by outcome.", ["step", "outcome"], **options
        )
        self.job_duration = prom.Histogram(
            "scenedex_job_duration_seconds",
            "Seconds from a job's creation to its end.",
            ["trigger", "status"],
            buckets=JOB_DURATION_BUCKETS,
            **options,
        )

    def item_finished(self, kind: ItemKind, status: ItemStatus, counts: dict[str, dict[str, int]]) -> None:
        self.items.labels(kind.value, status.value).inc()
        for step, numbers in counts.items():
            for outcome in ("computed", "skipped", "failed"):
                if numbers.get(outcome):
                    self.records.labels(step, outcome).inc(numbers[outcome])

    def job_finished(self, job: Job) -> None:
        if job.finished_at is not None:
            seconds = (job.finished_at - job.created_at).total_seconds()
            self.job_duration.labels(job.trigger.value, job.status.value).observe(seconds)


class DependencyGauges:
    """The breaker and held-item gauges above."""

    def __init__(self, registry: Any = None) -> None:
        import prometheus_client as prom

        options = {"registry": registry} if registry is not None else {}
        self.breaker_state = prom.Gauge(
            "scenedex_breaker_state",
            "Circuit breaker per dependency: 0 closed, 1 half-open, 2 open.",
            ["dependency"],
            multiprocess_mode="max",
            **options,
        )
        self.items_held = prom.Gauge(
            "scenedex_items_held",
            "Job items waiting, by the dependency they wait on (or retry).",
            ["waiting_on"],
            multiprocess_mode="mostrecent",
            **options,
        )

    def breakers(self, statuses: Iterable[BreakerStatus]) -> None:
        for status in statuses:
            self.breaker_state.labels(status.name).set(status.state.gauge)

    def held(self, counts: Mapping[str, int]) -> None:
        for waiting_on in (*DEPENDENCIES, RETRY):
            self.items_held.labels(waiting_on).set(counts.get(waiting_on, 0))


INSTANCE_STATES = {"ok": 0, "down": 1, "refused": 2}


class EmbedPoolMetrics:
    """``adapters.embed_pool.PoolEvents`` as the two embedding-instance metrics above."""

    def __init__(self, registry: Any = None) -> None:
        import prometheus_client as prom

        options = {"registry": registry} if registry is not None else {}
        self.state = prom.Gauge(
            "scenedex_embed_instance_state",
            "Embedding service instance: 0 ok, 1 down, 2 refused (other model ids).",
            ["instance"],
            multiprocess_mode="max",
            **options,
        )
        self.requests = prom.Counter(
            "scenedex_embed_instance_requests_total",
            "Requests sent to each embedding service instance, by outcome.",
            ["instance", "outcome"],
            **options,
        )

    def instance_state(self, url: str, state: str) -> None:
        self.state.labels(url).set(INSTANCE_STATES[state])

    def request(self, url: str, outcome: str) -> None:
        self.requests.labels(url, outcome).inc()


class WebhookMetrics:
    """The webhook metrics: ``scenedex_webhook_deliveries_total`` (counter; ``outcome``:
    delivered, retry, gone, refused, held, skipped) counts delivery attempts by what came of them
    (``Webhooks.observe``); ``scenedex_webhook_oldest_undelivered_seconds`` (gauge) is the age of
    the oldest event with a pending delivery (0: none), read by the dispatcher every few seconds."""

    def __init__(self, registry: Any = None) -> None:
        import prometheus_client as prom

        options = {"registry": registry} if registry is not None else {}
        self.deliveries = prom.Counter(
            "scenedex_webhook_deliveries_total",
            "Webhook delivery attempts by outcome.",
            ["outcome"],
            **options,
        )
        self.oldest = prom.Gauge(
            "scenedex_webhook_oldest_undelivered_seconds",
            "Age of the oldest event with a pending webhook delivery (0: none).",
            multiprocess_mode="max",
            **options,
        )

    def delivery(self, outcome: str) -> None:
        self.deliveries.labels(outcome).inc()

    def oldest_undelivered(self, age_s: float | None) -> None:
        self.oldest.set(age_s or 0.0)
