"""Two deliveries of one video item at the same time (issue 27: "every job survives being
delivered twice" was tested with the deliveries one after the other).

A redelivery can race the original (a worker's heartbeat expired while it ran, the sweeper
re-sent a message it thought lost). Both threads here claim the item, wait for each other at a
barrier, then run its scenes at once (a batch's transaction locks its scene rows, so the second
batch waits for the first and then reads its records as current or computes them again; the
upserts make either harmless). One set of records must result, the
item counts two deliveries, and the job's counters are those of one run (counts are set per
item, not added)."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from scenedex.adapters.db import tables as t
from scenedex.domain.jobs import ItemKind, ItemStatus, JobStatus, JobTrigger
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.domain.spec import EmbeddingStepType as Step
from tests.integration.test_worker_jobs import _NoSend
from tests.job_harness import OWNER, Harness, library

pytestmark = pytest.mark.integration


def run_twice_at_once(harness: Harness, job_id: uuid.UUID, video_id: uuid.UUID) -> list[Any]:
    """``run_video`` of the same item on two threads that both hold their claim before either
    runs a step (a barrier after ``claim_item``), so their scene steps overlap."""
    barrier = threading.Barrier(2, timeout=60)
    store = harness.store
    claim = store.claim_item

    def claim_together(job: uuid.UUID, kind: ItemKind, subject: uuid.UUID) -> Any:
        item = claim(job, kind, subject)
        if kind is ItemKind.VIDEO:
            barrier.wait()  # both deliveries have claimed the item: neither has computed yet
        return item

    store.claim_item = claim_together  # type: ignore[method-assign]
    results: list[Any] = [None, None]
    errors: list[BaseException] = []

    def deliver(slot: int) -> None:
        try:
            results[slot] = harness.coordinator.run_video(job_id, video_id)
        except BaseException as error:  # reported by the main thread
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=deliver, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    del store.claim_item  # the class's method again
    assert not errors, errors
    return results


def test_two_deliveries_of_one_item_at_once_leave_one_run(harness: Harness) -> None:
    videos = library(harness.world, videos=1)
    request = ReprocessRequest(ReprocessScope.OWNER, owner_id=OWNER)
    harness.coordinator.sender = _NoSend()

    # The reference: the same library run once, alone.
    reference = harness.store.create(request, harness.spec_version, JobTrigger.CLI)
    harness.coordinator.plan(reference.id)  # runs the persons item inline, adds the video item
    harness.coordinator.run_video(reference.id, videos[0])
    once = harness.store.summary(reference.id)
    records_once = harness.records()
    assert once.job.status is JobStatus.SUCCEEDED

    # The same work forced, delivered twice at once.
    forced = ReprocessRequest(ReprocessScope.OWNER, owner_id=OWNER, force=True)
    job = harness.store.create(forced, harness.spec_version, JobTrigger.CLI)
    harness.coordinator.plan(job.id)
    claimed = run_twice_at_once(harness, job.id, videos[0])

    assert all(item is not None for item in claimed)  # both claimed it: neither waited for the other
    summary = harness.store.summary(job.id)
    items = t.reprocess_job_items.c
    with harness.engine.connect() as connection:
        deliveries, status = connection.execute(
            sa.select(items.deliveries, items.status).where(
                items.job_id == job.id, items.kind == ItemKind.VIDEO.value
            )
        ).one()
    assert deliveries == 2 and status == ItemStatus.SUCCEEDED.value
    assert summary.job.status is JobStatus.SUCCEEDED
    assert summary.items_by_status == {ItemStatus.SUCCEEDED: 2}  # persons + the video
    for step in (Step.SCENE_CLIP_EMBEDDINGS, Step.SCENE_TEXT_EMBEDDINGS, Step.SCENE_PERSON_EMBEDDINGS):
        assert summary.steps[step.value]["computed"] == once.steps[step.value]["computed"] > 0, step
        assert summary.steps[step.value]["failed"] == 0
    assert harness.records() == records_once  # one set of records, bit for bit
