"""scenedex's Prometheus metrics, next to dramatiq's (``dramatiq_messages_total``,
``dramatiq_message_duration_milliseconds``...), served by dramatiq's Prometheus middleware
on ``SCENEDEX_WORKER__METRICS_PORT`` (default 9191) from every worker process.

- ``scenedex_job_items_total`` (counter; ``kind``: persons, video; ``status``: succeeded,
  failed): job items finished;
- ``scenedex_records_total`` (counter; ``step``; ``outcome``: computed, skipped, failed):
  records per step by outcome;
- ``scenedex_job_duration_seconds`` (histogram; ``trigger``, ``status``): seconds from a job's
  creation to its end.

The metrics are created after dramatiq's middleware has set ``PROMETHEUS_MULTIPROC_DIR``
(``after_process_boot``), as prometheus_client's multiprocess mode requires.
"""

from __future__ import annotations

from typing import Any

from scenedex.domain.jobs import ItemKind, ItemStatus, Job

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
