"""The worker's Prometheus metrics, on a private registry."""

from __future__ import annotations

import uuid
from datetime import timedelta

from prometheus_client import CollectorRegistry

from scenedex.domain.jobs import ItemKind, ItemStatus, Job, JobStatus, JobTrigger
from scenedex.domain.model import utcnow
from scenedex.domain.reprocess import ReprocessRequest, ReprocessScope
from scenedex.worker.metrics import PrometheusJobEvents


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
