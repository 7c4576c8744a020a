"""The worker's Prometheus metrics, on a private registry."""

from __future__ import annotations

import uuid
from datetime import timedelta

from prometheus_client import CollectorRegistry

from scenedex.adapters.breakers import BreakerState, BreakerStatus
from scenedex.domain.jobs import ItemKind, ItemStatus, Job, JobStatus, JobTrigger
from scenedex.domain.model import utcnow
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.worker.metrics import DependencyGauges, PrometheusJobEvents, WebhookMetrics


def test_item_and_job_events_update_the_metrics() -> None:
    registry = CollectorRegistry()
    events = PrometheusJobEvents(registry)
    counts = {"scene_clip_embeddings": {"planned": 5, "computed": 3, "skipped": 1, "failed": 1}}
    events.item_finished(ItemKind.VIDEO, ItemStatus.FAILED, counts)
    events.item_finished(ItemKind.VIDEO, ItemStatus.SUCCEEDED, counts)
    created = utcnow()
    job = Job(
        id=uuid.uuid4(),
        request=ReprocessRequest(ReprocessScope.ALL),
        spec_version="v",
        trigger=JobTrigger.SCHEDULER,
        status=JobStatus.PARTIALLY_FAILED,
        created_at=created,
        finished_at=created + timedelta(seconds=42),
    )
    events.job_finished(job)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("scenedex_job_items_total", kind="video", status="failed") == 1
    assert value("scenedex_records_total", step="scene_clip_embeddings", outcome="computed") == 6
    assert value("scenedex_records_total", step="scene_clip_embeddings", outcome="failed") == 2
    assert value("scenedex_job_duration_seconds_sum", trigger="scheduler", status="partially_failed") == 42


def test_breaker_and_held_item_gauges() -> None:
    registry = CollectorRegistry()
    gauges = DependencyGauges(registry)
    gauges.breakers(
        [BreakerStatus("embedding", BreakerState.OPEN), BreakerStatus("database", BreakerState.CLOSED)]
    )
    gauges.held({"embedding": 7, "retry": 1})
    assert registry.get_sample_value("scenedex_breaker_state", {"dependency": "embedding"}) == 2
    assert registry.get_sample_value("scenedex_breaker_state", {"dependency": "database"}) == 0
    assert registry.get_sample_value("scenedex_items_held", {"waiting_on": "embedding"}) == 7
    assert registry.get_sample_value("scenedex_items_held", {"waiting_on": "retry"}) == 1
    assert registry.get_sample_value("scenedex_items_held", {"waiting_on": "opensearch"}) == 0
    gauges.breakers([BreakerStatus("embedding", BreakerState.HALF_OPEN)])
    assert registry.get_sample_value("scenedex_breaker_state", {"dependency": "embedding"}) == 1


def test_webhook_metrics() -> None:
    registry = CollectorRegistry()
    metrics = WebhookMetrics(registry)
    for outcome in ("delivered", "delivered", "held"):
        metrics.delivery(outcome)
    metrics.oldest_undelivered(12.5)
    assert registry.get_sample_value("scenedex_webhook_deliveries_total", {"outcome": "delivered"}) == 2
    assert registry.get_sample_value("scenedex_webhook_deliveries_total", {"outcome": "held"}) == 1
    assert registry.get_sample_value("scenedex_webhook_oldest_undelivered_seconds") == 12.5
    metrics.oldest_undelivered(None)
    assert registry.get_sample_value("scenedex_webhook_oldest_undelivered_seconds") == 0
