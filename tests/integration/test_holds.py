"""Outages hold work instead of failing it; pause and resume; owners in turn; uploads first.

In-process Dramatiq workers on real Redis and Postgres (``tests.job_harness``) with fake
embedders that an ``Outage`` switches off: a "down" embedder raises what the http embedder
raises when the service is gone (``DependencyUnavailableError('embedding')``). The retry budget
is shortened (1 retry, 50-100 ms backoff) so that without breakers every item would fail within
the outage. The same scenarios with real processes, a real embedding service, osmem-server and
a Postgres restart are in ``tests/e2e/test_outages.py``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any, ClassVar

import dramatiq
import pytest
import sqlalchemy as sa

from scenedex.adapters.breakers import BreakerConfig, CircuitBreaker
from scenedex.adapters.db import tables as t
from scenedex.domain.errors import EMBEDDING, DependencyUnavailableError
from scenedex.domain.jobs import RETRY, ItemKind, ItemStatus, JobStatus, JobTrigger
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.settings import BreakerSettings, WorkerSettings
from scenedex.tasks.messaging import PendingMessageIds
from tests.conftest import truncate_all
from tests.fakes import face_image
from tests.job_harness import OWNER, Harness, library

pytestmark = pytest.mark.integration

FAST_BREAKERS = BreakerSettings(
    failure_threshold=2, failure_window_s=30, open_s=0.3, max_open_s=0.6, hold_min_s=0.2, hold_max_s=0.5
)
SHORT_RETRIES = WorkerSettings(item_retries=1, min_backoff_ms=50, max_backoff_ms=100)


class Outage:
    """Switches the fake CLIP embedder off and on, and counts the calls that reach it while it
    is off (what a dead service would have received)."""

    def __init__(self, embedder: Any, seconds_per_call: float = 0.0) -> None:
        self.down = False
        self.calls_while_down = 0
        self.probes_while_down = 0
        self._embed = embedder.embed_images
        self._delay = seconds_per_call
        embedder.embed_images = self.embed_images

    def embed_images(self, images: Any) -> Any:
        time.sleep(self._delay)
        if self.down:
            self.calls_while_down += 1
            raise DependencyUnavailableError(
                EMBEDDING, "embedding service POST /v1/embed/image-batch: refused"
            )
        return self._embed(images)

    def probe(self) -> None:
        if self.down:
            self.probes_while_down += 1
            raise ConnectionRefusedError("embedding service /health: refused")


@pytest.fixture
def outage_harness(postgres_engine: sa.Engine, redis_url: str) -> Iterator[Harness]:
    truncate_all(postgres_engine)
    harness = Harness(postgres_engine, redis_url, breakers=FAST_BREAKERS, worker=SHORT_RETRIES)
    harness.redis.flushdb()
    yield harness
    harness.close()
    harness.redis.flushdb()


def add_embedding_breaker(harness: Harness, outage: Outage) -> None:
    """The breaker and probe a worker on the http backend has (the harness runs local fakes)."""
    config = BreakerConfig(
        failure_threshold=FAST_BREAKERS.failure_threshold,
        failure_window_s=FAST_BREAKERS.failure_window_s,
        open_s=FAST_BREAKERS.open_s,
        max_open_s=FAST_BREAKERS.max_open_s,
    )
    board = harness.runtime.breakers
    board.breakers[EMBEDDING] = CircuitBreaker(EMBEDDING, harness.redis, config)
    board.probes[EMBEDDING] = outage.probe


class Prober:
    """The worker's probe thread (``WorkerRuntime._breaker_loop``), for the in-process worker."""

    def __init__(self, harness: Harness) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(harness,), daemon=True)
        self._thread.start()

    def _loop(self, harness: Harness) -> None:
        while not self._stop.wait(0.1):
            harness.runtime.breakers.probe_due()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached in {timeout} s")


def owner_job(harness: Harness, owner: uuid.UUID = OWNER) -> uuid.UUID:
    return harness.enqueue(ReprocessRequest(ReprocessScope.OWNER, owner_id=owner))


def items(harness: Harness, job_id: uuid.UUID) -> list[Any]:
    with harness.engine.connect() as connection:
        return list(
            connection.execute(
                sa.select(t.reprocess_job_items).where(
                    t.reprocess_job_items.c.job_id == job_id,
                    t.reprocess_job_items.c.kind == ItemKind.VIDEO.value,
                )
            )
        )


def test_an_outage_longer_than_the_retry_budget_holds_items_and_the_job_succeeds(
    outage_harness: Harness,
) -> None:
    """Down after the first item for longer than 1 retry with 100 ms backoff: without holds
    every later item would fail. With them: items wait on ``embedding``, the dead service gets
    a bounded number of calls, and the job ends succeeded, every record current."""
    harness = outage_harness
    library(harness.world, videos=7)
    outage = Outage(harness.world.clip, seconds_per_call=0.05)
    add_embedding_breaker(harness, outage)
    prober = Prober(harness)
    harness.start_worker()
    job_id = owner_job(harness)
    wait_for(lambda: any(i.status == "succeeded" for i in items(harness, job_id)), what="a first item")
    outage.down = True
    down_at = time.monotonic()
    summary = wait_for(
        lambda: (
            (s := harness.store.summary(job_id)) and s.waiting and s.waiting[0].waiting_on == EMBEDDING and s
        ),
        what="items waiting on embedding",
    )
    group = summary.waiting[0]
    assert "refused" in (group.error or "")
    assert summary.to_dict()["waiting"][0]["waiting_on"] == EMBEDDING
    assert harness.runtime.breakers.breakers[EMBEDDING].is_open()
    time.sleep(max(0.0, 3.0 - (time.monotonic() - down_at)))  # 30x the retry budget
    held = harness.store.summary(job_id)
    assert held.job.status is JobStatus.RUNNING and held.items_by_status.get(ItemStatus.FAILED, 0) == 0
    outage.down = False
    summary = harness.wait(job_id, timeout=30)
    prober.stop()

    assert summary.job.status is JobStatus.SUCCEEDED, summary.to_dict()
    assert summary.items_by_status == {ItemStatus.SUCCEEDED: 8}  # 7 videos + the persons item
    # Calls that reached the dead service: below the threshold (2) plus the in-flight item;
    # probes: about one per max_open_s (0.6 s) over 3 s, never one per held message.
    assert outage.calls_while_down <= FAST_BREAKERS.failure_threshold + 1, outage.calls_while_down
    assert 1 <= outage.probes_while_down <= 3.0 / FAST_BREAKERS.open_s + 1, outage.probes_while_down
    # Holds spent no delivery: every item was delivered at most twice (the claim that met the
    # outage mid-run is refunded; a retry before the breaker opened counts).
    assert max(row.deliveries for row in items(harness, job_id)) <= 2
    plan = harness.runtime.services.runner().plan(ReprocessRequest(ReprocessScope.OWNER, owner_id=OWNER))
    behind = [step for step in plan.to_dict()["steps"] if step["stale"] or step["missing"]]
    assert behind == [], behind  # the steps that are not current, whole (the plan's repr was cut)


def test_a_corrupt_keyframe_during_an_outage_still_fails_its_own_item_only(outage_harness: Harness) -> None:
    harness = outage_harness
    library(harness.world, videos=2)
    broken, _ = harness.world.add_video(OWNER, [b"CORRUPT keyframe"])
    outage = Outage(harness.world.clip)
    add_embedding_breaker(harness, outage)
    outage.down = True
    for _ in range(FAST_BREAKERS.failure_threshold):  # the breaker is open before the job starts
        harness.runtime.breakers.record_failure(EMBEDDING, DependencyUnavailableError(EMBEDDING, "refused"))
    prober = Prober(harness)
    harness.start_worker()
    job_id = owner_job(harness)
    time.sleep(1.0)
    assert harness.store.get(job_id).status is JobStatus.QUEUED  # its planner is held
    assert outage.calls_while_down == 0  # held before any call
    outage.down = False
    summary = harness.wait(job_id, timeout=30)
    prober.stop()
    assert summary.job.status is JobStatus.PARTIALLY_FAILED
    [failed] = summary.failed_items
    assert failed.subject_id == broken.id and "cannot identify image file" in str(failed.errors)
    assert summary.items_by_status == {ItemStatus.SUCCEEDED: 3, ItemStatus.FAILED: 1}


def test_a_transient_error_that_is_not_an_outage_waits_for_its_retry_not_running(
    outage_harness: Harness,
) -> None:
    harness = outage_harness
    [video] = library(harness.world, videos=1)
    job = harness.store.create(
        ReprocessRequest(ReprocessScope.OWNER, owner_id=OWNER), harness.spec_version, JobTrigger.CLI
    )
    harness.coordinator.store.add_items(job.id, [(ItemKind.VIDEO, video, OWNER)])
    harness.store.claim_item(job.id, ItemKind.VIDEO, video)
    harness.coordinator.hold(job.id, video, RETRY, "OpenSearch busy", refund_delivery=False)
    [item] = [i for i in harness.store.unfinished_items(job.id) if i.kind is ItemKind.VIDEO]
    assert item.status is ItemStatus.WAITING and item.waiting_on == RETRY and item.deliveries == 1
    first_since = item.waiting_since
    harness.coordinator.hold(job.id, video, RETRY, "OpenSearch busy again", refund_delivery=True)
    [item] = [i for i in harness.store.unfinished_items(job.id) if i.kind is ItemKind.VIDEO]
    assert (
        item.waiting_since == first_since and item.deliveries == 0 and item.error == "OpenSearch busy again"
    )
    claimed = harness.store.claim_item(job.id, ItemKind.VIDEO, video)
    assert claimed.status is ItemStatus.RUNNING and claimed.waiting_on is None and claimed.deliveries == 1


def test_pause_starts_no_item_and_resume_completes_the_job(outage_harness: Harness) -> None:
    harness = outage_harness
    library(harness.world, videos=6)
    Outage(harness.world.clip, seconds_per_call=0.15)  # slow enough to pause mid-job
    harness.start_worker()
    job_id = owner_job(harness)
    wait_for(lambda: any(i.started_at for i in items(harness, job_id)), what="a first item")
    paused = harness.coordinator.pause(job_id)
    assert paused.status is JobStatus.PAUSED
    time.sleep(0.5)  # the item running at the pause finishes
    started = {i.subject_id for i in items(harness, job_id) if i.started_at}
    time.sleep(1.5)
    assert {i.subject_id for i in items(harness, job_id) if i.started_at} == started
    assert len(started) < 6 and harness.store.get(job_id).status is JobStatus.PAUSED
    job, resent = harness.coordinator.resume(job_id, harness.runtime.probe)
    assert job.status is JobStatus.RUNNING and resent == 6 - len(started)
    summary = harness.wait(job_id, timeout=30)
    assert summary.job.status is JobStatus.SUCCEEDED and summary.items_by_status == {ItemStatus.SUCCEEDED: 7}


class RecordingSender:
    def __init__(self) -> None:
        self.videos: list[uuid.UUID] = []

    def send_plan(self, job_id: uuid.UUID) -> str:
        return "plan"

    def send_video(self, job_id: uuid.UUID, video_id: uuid.UUID) -> str:
        self.videos.append(video_id)
        return f"m{len(self.videos)}"


def test_an_all_job_sends_the_owners_in_turn_not_the_largest_first(outage_harness: Harness) -> None:
    harness = outage_harness
    owners = sorted(uuid.UUID(int=n) for n in (0xA1, 0xB2, 0xC3))
    sizes = {owners[0]: 5, owners[1]: 2, owners[2]: 1}
    owner_of = {}
    for owner, size in sizes.items():
        for n in range(size):
            video, _ = harness.world.add_video(owner, [face_image(salt=f"{owner}-{n}")])
            owner_of[video.id] = owner
    sender = RecordingSender()
    harness.coordinator.sender = sender
    harness.coordinator.page_size = 3  # pages must not break the turns
    job = harness.store.create(
        ReprocessRequest(ReprocessScope.ALL), harness.spec_version, JobTrigger.SCHEDULER
    )
    harness.coordinator.plan(job.id)
    a, b, c = owners
    assert [owner_of[v] for v in sender.videos] == [a, b, c, a, b, a, a, a]
    harness.coordinator.plan(job.id)  # a second delivery sends nothing again
    assert len(sender.videos) == 8


def test_an_upload_is_served_before_a_running_backfill(outage_harness: Harness) -> None:
    """One worker thread busy with a backfill of 12 videos, 8 of them fetched ahead (prefetch
    8); an upload's ``embed_video`` sent after them runs next (priority 0 before 10): after the
    item running when it arrived (and at most one more while its message is fetched), not after
    the fetched backfill messages as in FIFO order."""
    from scenedex.tasks import enqueue_embed_video

    harness = outage_harness
    library(harness.world, videos=12)
    Outage(harness.world.clip, seconds_per_call=0.3)
    upload, _ = harness.world.add_video(OWNER, [face_image(salt="upload")])
    harness.worker = dramatiq.Worker(dramatiq.get_broker(), worker_threads=1, worker_timeout=100)
    harness.worker.queue_prefetch = 8  # FIFO would run these 8 before the upload
    harness.worker.start()
    backfill = owner_job(harness)
    wait_for(lambda: any(i.status == "succeeded" for i in items(harness, backfill)), what="backfill started")
    done_before = sum(i.status == "succeeded" for i in items(harness, backfill))
    sent_at = time.monotonic()
    enqueue_embed_video(upload.id, OWNER)

    def upload_done() -> Any:
        jobs = harness.store.list(trigger=JobTrigger.INGEST)
        return jobs and jobs[0].status is JobStatus.SUCCEEDED and jobs[0]

    wait_for(upload_done, timeout=30, what="the upload's job")
    upload_wait = time.monotonic() - sent_at
    done_meanwhile = sum(i.status == "succeeded" for i in items(harness, backfill)) - done_before
    summary = harness.wait(backfill, timeout=60)
    print(f"upload waited {upload_wait:.2f} s, {done_meanwhile} backfill video(s) finished meanwhile")
    assert done_meanwhile <= 2, done_meanwhile
    assert summary.job.status is JobStatus.SUCCEEDED


def test_message_ids_of_held_messages_survive_a_database_outage(outage_harness: Harness) -> None:
    """``after_enqueue`` with the database down keeps the new id in Redis; the sweep writes it,
    so the sweeper never takes the delayed message for lost."""
    from scenedex.worker.runtime import WorkerRuntime

    harness = outage_harness
    [video] = library(harness.world, videos=1)
    job = harness.store.create(
        ReprocessRequest(ReprocessScope.OWNER, owner_id=OWNER), harness.spec_version, JobTrigger.CLI
    )
    harness.store.add_items(job.id, [(ItemKind.VIDEO, video, OWNER)])
    harness.store.set_message_ids(job.id, [(ItemKind.VIDEO, video, "old")])

    class DatabaseDown:
        def set_message_ids(self, *args: Any) -> None:
            raise sa.exc.OperationalError("UPDATE", {}, Exception("connection refused"))

    class Message:
        actor_name = "reprocess_video"
        args = (str(job.id), str(video))
        message_id = "m"
        options: ClassVar[dict[str, str]] = {"redis_message_id": "held-1"}

    middleware = WorkerRuntime(lambda: harness.runtime)
    middleware.runtime = type("Runtime", (), {"coordinator": type("C", (), {"store": DatabaseDown()})()})()
    broker = type("Broker", (), {"client": harness.redis})()
    middleware.after_enqueue(broker, Message(), delay=1000)
    assert harness.redis.hget(PendingMessageIds.KEY, f"{job.id}:{video}") == b"held-1"

    assert PendingMessageIds(harness.redis).flush(harness.store) == 1
    [item] = [i for i in harness.store.unfinished_items(job.id) if i.kind is ItemKind.VIDEO]
    assert item.message_id == "held-1" and not harness.redis.exists(PendingMessageIds.KEY)


def test_a_flush_never_writes_a_kept_id_over_a_newer_one(outage_harness: Harness) -> None:
    """Two items kept ids while the database was down (``old-*``). While a sweep's flush writes
    the first, the other item's delayed message moves back to its queue under a newer id, which
    ``after_enqueue`` writes and forgets (another worker thread, the database back). The flush
    must leave that newer id: writing its stale one over it made the sweeper re-send the item's
    message as lost (seen in a quiet CI run of the Postgres-restart outage step)."""
    harness = outage_harness
    videos = library(harness.world, videos=2)
    job = harness.store.create(
        ReprocessRequest(ReprocessScope.OWNER, owner_id=OWNER), harness.spec_version, JobTrigger.CLI
    )
    harness.store.add_items(job.id, [(ItemKind.VIDEO, v, OWNER) for v in videos])
    pending = PendingMessageIds(harness.redis)
    for v in videos:
        pending.record(job.id, v, f"old-{v}")
    from scenedex.worker.runtime import WorkerRuntime

    middleware = WorkerRuntime(lambda: harness.runtime)
    middleware.runtime = SimpleNamespace(coordinator=SimpleNamespace(store=harness.store))
    broker = SimpleNamespace(client=harness.redis)
    moved: list[uuid.UUID] = []

    class Store:
        """The real store; before its first write, the other item's ``after_enqueue`` runs in a
        thread (the flush writes one item at a time)."""

        def set_message_ids(self, job_id: uuid.UUID, ids: Any) -> None:
            if not moved:
                writing = {subject for _, subject, _ in ids}
                other = next(v for v in videos if v not in writing)
                moved.append(other)
                self.move(other)
            harness.store.set_message_ids(job_id, ids)

        def move(self, other: uuid.UUID) -> None:

            class Moved:
                actor_name = "reprocess_video"
                args = (str(job.id), str(other))
                message_id = "m"
                options: ClassVar[dict[str, Any]] = {"redis_message_id": "newer", "holds": 1}

            thread = threading.Thread(target=middleware.after_enqueue, args=(broker, Moved(), None))
            thread.start()
            thread.join(30)
            assert not thread.is_alive()

    assert pending.flush(Store()) == 1  # the other id was no longer the pending one
    ids = {
        i.subject_id: i.message_id for i in harness.store.unfinished_items(job.id) if i.kind is ItemKind.VIDEO
    }
    [first] = [v for v in videos if v not in moved]
    assert ids == {first: f"old-{first}", moved[0]: "newer"}
    assert not harness.redis.exists(PendingMessageIds.KEY)


def test_a_delayed_message_moved_back_to_its_queue_keeps_its_new_id_on_the_item(
    outage_harness: Harness,
) -> None:
    """When a held or retried message's delay is over, dramatiq's worker re-enqueues it (no
    delay) under a new Redis id: that id must reach the item too, or the sweeper would take the
    message for lost. A first send (no ``retries``/``holds`` option) is the coordinator's."""
    from scenedex.worker.runtime import WorkerRuntime

    harness = outage_harness
    [video] = library(harness.world, videos=1)
    job = harness.store.create(
        ReprocessRequest(ReprocessScope.OWNER, owner_id=OWNER), harness.spec_version, JobTrigger.CLI
    )
    harness.store.add_items(job.id, [(ItemKind.VIDEO, video, OWNER)])
    harness.store.set_message_ids(job.id, [(ItemKind.VIDEO, video, "first")])
    middleware = WorkerRuntime(lambda: harness.runtime)
    middleware.runtime = harness.runtime
    broker = type("Broker", (), {"client": harness.redis})()

    def message(**options: Any) -> Any:
        return type(
            "Message",
            (),
            {
                "actor_name": "reprocess_video",
                "args": (str(job.id), str(video)),
                "message_id": "m",
                "options": options,
            },
        )()

    def item_message_id() -> str | None:
        return next(i.message_id for i in harness.store.unfinished_items(job.id) if i.kind is ItemKind.VIDEO)

    middleware.after_enqueue(broker, message(redis_message_id="sent-again"), delay=None)
    assert item_message_id() == "first"  # a first send is recorded by the coordinator
    middleware.after_enqueue(broker, message(redis_message_id="held", holds=1), delay=1500)
    assert item_message_id() == "held"
    middleware.after_enqueue(broker, message(redis_message_id="moved", holds=1), delay=None)
    assert item_message_id() == "moved"
    middleware.after_enqueue(broker, message(redis_message_id="retried", retries=1), delay=None)
    assert item_message_id() == "retried"
