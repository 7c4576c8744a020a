"""Two deliveries of one video item at the same time (issue 27: "every job survives being
delivered twice" was tested with the deliveries one after the other).

A redelivery can race the original (a worker's heartbeat expired while it ran, the sweeper
re-sent a message it thought lost). Both deliveries here claim the item, wait for each other at a
barrier, then run its scenes at once (a batch's transaction locks its scene rows, so the second
batch waits for the first and then reads its records as current or computes them again; the
upserts make either harmless). One set of records must result, the item counts two deliveries,
and the job's counters are those of one run (counts are set per item, not added).

Twice: on two threads of this process (one runtime, one engine), and in two worker processes
(``multiprocessing`` with spawn: each its own runtime, engine and connections, as two workers
are), with a ``multiprocessing.Barrier`` between them. The in-memory blob store's keyframes are
handed to the processes with the job."""

from __future__ import annotations

import multiprocessing
import threading
import traceback
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
BARRIER_TIMEOUT_S = 120.0
"""How long a delivery waits at the barrier for the other (a spawned process imports scenedex
first: seconds on a loaded 2-core machine)."""


def claiming_together(store: Any, barrier: Any) -> None:
    """Make ``store.claim_item`` wait at ``barrier`` after claiming a video item: both
    deliveries hold their claim before either runs a step, so their scene steps overlap."""
    claim = store.claim_item

    def claim_together(job: uuid.UUID, kind: ItemKind, subject: uuid.UUID) -> Any:
        item = claim(job, kind, subject)
        if kind is ItemKind.VIDEO:
            barrier.wait()  # both deliveries have claimed the item: neither has computed yet
        return item

    store.claim_item = claim_together


def run_twice_at_once(harness: Harness, job_id: uuid.UUID, video_id: uuid.UUID) -> list[Any]:
    """``run_video`` of the same item on two threads that both hold their claim before either
    runs a step; the two claimed items (None: a delivery found nothing to do)."""
    barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT_S)
    store = harness.store
    claiming_together(store, barrier)
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
        thread.join(2 * BARRIER_TIMEOUT_S)
    del store.claim_item  # the class's method again
    assert not errors, errors
    return results


def deliver_in_process(
    slot: int,
    database_url: str,
    redis_url: str,
    blobs: dict[str, bytes],
    job_id: uuid.UUID,
    video_id: uuid.UUID,
    barrier: Any,
    results: Any,
) -> None:
    """A spawned process's delivery: a runtime of its own (``Harness``: its engine, the fake
    embedders, ``blobs`` as its blob store's content) runs ``run_video`` with the claim barrier;
    puts ``(slot, claimed item's deliveries or None, traceback or None)`` on ``results``."""
    from scenedex.adapters.db.engine import create_engine

    engine = create_engine(database_url)
    harness = Harness(engine, redis_url)
    try:
        harness.world.blobs.blobs.update(blobs)
        harness.coordinator.sender = _NoSend()
        claiming_together(harness.store, barrier)
        item = harness.coordinator.run_video(job_id, video_id)
        results.put((slot, None if item is None else item.deliveries, None))
    except BaseException:
        barrier.abort()
        results.put((slot, None, traceback.format_exc()))
    finally:
        harness.close()
        engine.dispose()


def run_twice_in_two_processes(
    harness: Harness, redis_url: str, job_id: uuid.UUID, video_id: uuid.UUID
) -> list[Any]:
    """``run_video`` of the same item in two spawned processes that both hold their claim
    before either runs a step; per process the deliveries its claim saw (None: nothing to do)."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2, timeout=BARRIER_TIMEOUT_S)
    results = context.Queue()
    database_url = harness.engine.url.render_as_string(hide_password=False)
    blobs = dict(harness.world.blobs.blobs)
    processes = [
        context.Process(
            target=deliver_in_process,
            args=(slot, database_url, redis_url, blobs, job_id, video_id, barrier, results),
        )
        for slot in (0, 1)
    ]
    for process in processes:
        process.start()
    reported: dict[int, tuple[Any, Any]] = {}
    try:
        for _ in processes:
            slot, claimed, error = results.get(timeout=3 * BARRIER_TIMEOUT_S)
            reported[slot] = (claimed, error)
        for process in processes:
            process.join(60)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(10)
    errors = [error for _, error in reported.values() if error]
    assert not errors, "\n".join(errors)
    assert [process.exitcode for process in processes] == [0, 0]
    return [reported[slot][0] for slot in (0, 1)]


def forced_job_after_a_reference_run(harness: Harness) -> tuple[uuid.UUID, uuid.UUID, Any, Any]:
    """One video run once alone (the reference: its summary and records), then a forced job
    over the same library, planned (its persons item run inline, its video item queued):
    ``(job id, video id, reference summary, reference records)``."""
    videos = library(harness.world, videos=1)
    request = ReprocessRequest(ReprocessScope.OWNER, owner_id=OWNER)
    harness.coordinator.sender = _NoSend()
    reference = harness.store.create(request, harness.spec_version, JobTrigger.CLI)
    harness.coordinator.plan(reference.id)  # runs the persons item inline, adds the video item
    harness.coordinator.run_video(reference.id, videos[0])
    once = harness.store.summary(reference.id)
    assert once.job.status is JobStatus.SUCCEEDED
    records_once = harness.records()

    forced = ReprocessRequest(ReprocessScope.OWNER, owner_id=OWNER, force=True)
    job = harness.store.create(forced, harness.spec_version, JobTrigger.CLI)
    harness.coordinator.plan(job.id)
    return job.id, videos[0], once, records_once


def assert_one_run(harness: Harness, job_id: uuid.UUID, once: Any, records_once: Any) -> None:
    """The item delivered twice, succeeded; the job's counters those of the reference run; its
    records the reference's, bit for bit."""
    summary = harness.store.summary(job_id)
    items = t.reprocess_job_items.c
    with harness.engine.connect() as connection:
        deliveries, status = connection.execute(
            sa.select(items.deliveries, items.status).where(
                items.job_id == job_id, items.kind == ItemKind.VIDEO.value
            )
        ).one()
    assert (deliveries, status) == (2, ItemStatus.SUCCEEDED.value)
    assert summary.job.status is JobStatus.SUCCEEDED
    assert summary.items_by_status == {ItemStatus.SUCCEEDED: 2}  # persons + the video
    assert summary.steps == once.steps  # every step's planned, computed, skipped and failed
    for step in (Step.SCENE_CLIP_EMBEDDINGS, Step.SCENE_TEXT_EMBEDDINGS, Step.SCENE_PERSON_EMBEDDINGS):
        assert summary.steps[step.value]["computed"] > 0 and summary.steps[step.value]["failed"] == 0, step
    assert harness.records() == records_once  # one set of records, bit for bit


def test_two_deliveries_of_one_item_at_once_leave_one_run(harness: Harness) -> None:
    job_id, video_id, once, records_once = forced_job_after_a_reference_run(harness)
    claimed = run_twice_at_once(harness, job_id, video_id)
    assert all(item is not None for item in claimed)  # both claimed it: neither waited for the other
    assert_one_run(harness, job_id, once, records_once)


def test_two_deliveries_in_two_processes_at_once_leave_one_run(harness: Harness, redis_url: str) -> None:
    job_id, video_id, once, records_once = forced_job_after_a_reference_run(harness)
    claimed = run_twice_in_two_processes(harness, redis_url, job_id, video_id)
    assert sorted(claimed) == [1, 2]  # both claimed it, one after the other, before either ran
    assert_one_run(harness, job_id, once, records_once)
