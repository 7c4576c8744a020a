"""Jobs through the real broker: Dramatiq workers on Redis, job state in Postgres.

The worker runs in this process (``dramatiq.Worker``) with the fake embedders, so these tests
exercise the actors, the job state machine and the broker, not the models. Crash tests with a
real ``scenedex worker`` process are in ``test_worker_process.py``.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from typing import Any

import dramatiq
import pytest

from scenedex.domain.jobs import ActiveJobError, ItemKind, ItemStatus, JobStatus, JobTrigger
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.domain.spec import EmbeddingStepType as Step
from tests.job_harness import OWNER, Harness, library

pytestmark = pytest.mark.integration


def owner_request(force: bool = False) -> ReprocessRequest:
    return ReprocessRequest(ReprocessScope.OWNER, owner_id=OWNER, force=force)


def test_owner_job_runs_on_a_worker_and_matches_the_inline_run(harness: Harness) -> None:
    library(harness.world)
    harness.start_worker()
    job_id = harness.enqueue(owner_request())
    summary = harness.wait(job_id)

    assert summary.job.status is JobStatus.SUCCEEDED, summary.failed_items
    assert summary.items_by_status == {ItemStatus.SUCCEEDED: 4}  # 1 persons item + 3 videos
    assert summary.steps[Step.SCENE_CLIP_EMBEDDINGS.value]["computed"] == 9
    assert summary.steps[Step.SCENE_TEXT_EMBEDDINGS.value]["computed"] == 27
    assert summary.steps[Step.PERSON_QUERY_EMBEDDINGS.value]["computed"] == 1
    after_job = harness.records()

    # The inline run finds everything current, and a forced inline run writes the same records.
    inline = harness.world.runner().run(owner_request())
    assert sum(c.computed for c in inline.steps.values()) == 0
    forced = harness.world.runner().run(owner_request(force=True))
    assert forced.steps[Step.SCENE_CLIP_EMBEDDINGS].computed == 9
    assert harness.records() == after_job


def test_a_second_job_for_an_active_scope_is_refused(harness: Harness) -> None:
    library(harness.world, videos=1)
    first = harness.enqueue(owner_request())
    with pytest.raises(ActiveJobError) as refused:
        harness.enqueue(owner_request(force=True))
    assert refused.value.active_job_id == first
    harness.start_worker()
    harness.wait(first)
    assert harness.enqueue(owner_request()) != first  # allowed again once the first is over


def test_duplicate_deliveries_leave_the_same_state_and_counts(harness: Harness) -> None:
    from scenedex.tasks import reprocess_embeddings, reprocess_video

    videos = library(harness.world)
    events = _RecordedEvents()
    harness.coordinator.events = events
    harness.start_worker()
    job_id = harness.enqueue(owner_request())
    once = harness.wait(job_id)
    records = harness.records()

    # Every message of the job delivered again: the planner and each video.
    reprocess_embeddings.send(str(job_id))
    for video_id in videos:
        reprocess_video.send(str(job_id), str(video_id))
        reprocess_video.send(str(job_id), str(video_id))
    dramatiq.get_broker().join("reprocessing", timeout=30_000)
    harness.worker.join()

    twice = harness.store.summary(job_id)
    assert twice.steps == once.steps and twice.items_by_status == once.items_by_status
    assert twice.job.status is JobStatus.SUCCEEDED and twice.job.finished_at == once.job.finished_at
    assert harness.records() == records
    # Metrics events: one per finished item (1 persons + 3 videos), the job's end exactly once.
    assert len(events.items) == 4 and events.jobs == [job_id]


def test_duplicate_delivery_while_running_counts_once(harness: Harness) -> None:
    """Two deliveries of the same item before it finishes (e.g. a redelivery racing the
    original): counts are set per item, so the job's totals are those of one run."""
    videos = library(harness.world, videos=1)
    job = harness.store.create(owner_request(), harness.spec_version, JobTrigger.CLI)
    harness.coordinator.sender = _NoSend()
    harness.coordinator.plan(job.id)
    harness.coordinator.run_video(job.id, videos[0])
    harness.store.add_items(job.id, [(ItemKind.VIDEO, videos[0], OWNER)])  # re-planned: no-op
    assert harness.coordinator.run_video(job.id, videos[0]) is None  # finished: nothing to do
    summary = harness.store.summary(job.id)
    assert summary.steps[Step.SCENE_CLIP_EMBEDDINGS.value]["computed"] == 3
    assert summary.job.status is JobStatus.SUCCEEDED


def test_poison_item_fails_after_max_deliveries_and_the_job_is_partially_failed(harness: Harness) -> None:
    videos = library(harness.world, videos=2)
    job = harness.store.create(owner_request(), harness.spec_version, JobTrigger.CLI)
    harness.coordinator.sender = _NoSend()
    harness.coordinator.plan(job.id)
    poison = videos[0]
    # Deliveries that died with their worker (claimed, never finished).
    for _ in range(harness.coordinator.max_deliveries):
        assert harness.store.claim_item(job.id, ItemKind.VIDEO, poison) is not None
    harness.coordinator.run_video(job.id, poison)
    harness.coordinator.run_video(job.id, videos[1])

    summary = harness.store.summary(job.id)
    assert summary.job.status is JobStatus.PARTIALLY_FAILED
    [failed] = summary.failed_items
    assert failed.subject_id == poison and "poison item" in failed.error and failed.deliveries == 6
    assert summary.items_by_status == {ItemStatus.SUCCEEDED: 2, ItemStatus.FAILED: 1}


def test_redis_flushed_mid_job_is_completed_by_resume(harness: Harness) -> None:
    library(harness.world, videos=3)
    job_id = harness.enqueue(owner_request())
    # The planner runs (no worker yet: its video messages wait in Redis), then Redis loses them.
    harness.coordinator.plan(job_id)
    assert harness.redis.llen("dramatiq:reprocessing") == 4  # planner message + 3 videos
    harness.redis.flushdb()

    probe = harness.runtime.probe
    assert harness.coordinator.resend_lost(job_id, probe) == 3
    assert harness.coordinator.resend_lost(job_id, probe) == 0  # messages held again: nothing re-sent
    harness.start_worker()
    summary = harness.wait(job_id)
    assert summary.job.status is JobStatus.SUCCEEDED
    assert summary.steps[Step.SCENE_CLIP_EMBEDDINGS.value]["computed"] == 9


def test_cancel_stops_further_items(harness: Harness) -> None:
    videos = library(harness.world, videos=2)
    job = harness.store.create(owner_request(), harness.spec_version, JobTrigger.CLI)
    harness.coordinator.sender = _NoSend()
    harness.coordinator.plan(job.id)
    harness.coordinator.run_video(job.id, videos[0])
    cancelled = harness.store.cancel(job.id)
    assert cancelled.status is JobStatus.CANCELLED
    assert harness.coordinator.run_video(job.id, videos[1]) is None
    assert harness.store.summary(job.id).items_by_status == {
        ItemStatus.SUCCEEDED: 2,
        ItemStatus.CANCELLED: 1,
    }


def test_job_for_a_vanished_video_fails_with_its_reason(harness: Harness) -> None:
    job_id = harness.enqueue(ReprocessRequest(ReprocessScope.VIDEO, video_id=uuid.uuid4()))
    harness.start_worker()
    summary = harness.wait(job_id)
    assert summary.job.status is JobStatus.FAILED and "not found" in summary.job.error


def test_embed_video_runs_the_new_video(harness: Harness) -> None:
    from scenedex.tasks import enqueue_embed_video

    [video_id] = library(harness.world, videos=1)
    harness.start_worker()
    enqueue_embed_video(video_id, OWNER)
    dramatiq.get_broker().join("embeddings", timeout=30_000)
    harness.worker.join()
    [job] = harness.store.list()
    assert job.trigger is JobTrigger.INGEST and job.status is JobStatus.SUCCEEDED
    assert harness.store.summary(job.id).steps[Step.SCENE_CLIP_EMBEDDINGS.value]["computed"] == 3


def test_importing_tasks_does_not_import_torch_or_connect() -> None:
    code = (
        "import sys, scenedex.tasks; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "assert 'open_clip' not in sys.modules; "
        "print('ok')"
    )
    env = {"SCENEDEX_REDIS_URL": "redis://127.0.0.1:1/0", "PATH": ""}  # unreachable: no connection made
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


class _RecordedEvents:
    def __init__(self) -> None:
        self.items: list[tuple[ItemKind, ItemStatus]] = []
        self.jobs: list[uuid.UUID] = []

    def item_finished(self, kind: ItemKind, status: ItemStatus, counts: dict) -> None:
        self.items.append((kind, status))

    def job_finished(self, job: Any) -> None:
        self.jobs.append(job.id)


class _NoSend:
    """Sender for tests that drive the coordinator by hand (messages are not needed)."""

    def send_plan(self, job_id: uuid.UUID) -> str:
        return f"test-plan-{job_id}"

    def send_video(self, job_id: uuid.UUID, video_id: uuid.UUID) -> str:
        return f"test-video-{video_id}"


def test_the_owners_suggested_persons_follow_a_finished_job(harness: Harness) -> None:
    """The worker that finishes a job runs FACE_CLUSTERS for its owners: an unknown face seen in
    three videos becomes one suggested person without any inline run."""
    from tests.fakes import face_image

    for v in range(3):
        harness.world.add_video(OWNER, [face_image("bob", salt=f"bob-{v}"), face_image(salt=f"x-{v}")])
    harness.start_worker()
    summary = harness.wait(harness.enqueue(owner_request()))
    assert summary.job.status is JobStatus.SUCCEEDED, summary.failed_items
    clusters = harness.runtime.services.face_clusters()  # type: ignore[union-attr]
    deadline = time.monotonic() + 20
    while (page := clusters.list(OWNER)).computed_at is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the clustering runs right after the last item, in the same worker
    assert [view.size for view in page.suggestions] == [3]
    assert len(page.suggestions[0].scene_ids) == 3
