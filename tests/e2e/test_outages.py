"""Outages of a dependency hold work instead of failing it (issue 15), with real processes: a
``scenedex embed-server`` (real models, explicitly untrained CLIP), ``scenedex worker``
processes on the ``http`` embedder backend, a Postgres database and a ``redis-server`` of this
module's own. The embedding service (and, in one test,
osmem-server) sits behind an ``OutageProxy`` (``tests/outage_proxy.py``): the test takes it down
and up again and counts what reached it while it was down.

Retries are shortened (``RETRY_SETTINGS``) so that without the circuit breakers an item spends
its whole retry budget in about 3 s (3 attempts of 2 requests, 0.5 s and 1 s backoff): every
outage here is far longer than that, so an item that is not held fails. The breakers are
shortened too (probe after 1 s, at most 3 s apart; held messages come back after 0.5-2 s).

One worker (one process, one thread) runs at a time; the tests are ordered steps on one stack
(a step is skipped when an earlier one failed). The stack's database is on a Postgres cluster of
this module's own (``tests.pg_cluster``, created and dropped here), which the Postgres test stops
for 3 s and starts again (``pg_ctlcluster``): the machine's shared cluster is never stopped. Without
root no cluster can be made: the stack then uses the shared server and that test skips. Its
broker is a ``redis-server`` started for this module (``tests.redis_server``: a free port, no
persistence, a temporary folder), which the Redis test stops for 3 s and starts again empty:
nothing here touches the Redis other suites use.
Run with ``-s`` to see the figures. About 3 minutes on 2 cores.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from scenedex.tasks.messaging import PendingMessageIds
from tests.opensearch_fixtures import osmem
from tests.outage_proxy import OutageProxy
from tests.outage_stack import OutageStack
from tests.pg_cluster import Cluster, private_cluster
from tests.redis_server import RedisServer, private_redis
from tests.worker_processes import (
    create_database,
    drop_database,
    expected_counts,
    job_row,
    record_counts,
    wait_for,
)

__all__ = ["osmem"]  # the session fixture the OpenSearch step uses, imported for pytest
pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.models]

RETRY_SETTINGS = {
    "SCENEDEX_WORKER__ITEM_RETRIES": "2",
    "SCENEDEX_WORKER__MIN_BACKOFF_MS": "500",
    "SCENEDEX_WORKER__MAX_BACKOFF_MS": "2000",
    "SCENEDEX_EMBEDDER__MAX_RETRIES": "1",
    "SCENEDEX_EMBEDDER__BACKOFF_S": "0.2",
    "SCENEDEX_EMBEDDER__TIMEOUT_S": "10",
}
BREAKER_SETTINGS = {
    "SCENEDEX_BREAKERS__OPEN_S": "1",
    "SCENEDEX_BREAKERS__MAX_OPEN_S": "3",
    "SCENEDEX_BREAKERS__HOLD_MIN_S": "0.5",
    "SCENEDEX_BREAKERS__HOLD_MAX_S": "2",
    "SCENEDEX_BREAKERS__PROBE_TIMEOUT_S": "2",
}
SETTINGS = {
    **RETRY_SETTINGS,
    **BREAKER_SETTINGS,
    "SCENEDEX_WORKER__SWEEP_INTERVAL_S": "3",  # the sweeper runs during every outage
    # A killed worker's messages come back after 15 s. 5 s is close enough to the pauses of a live
    # worker on a loaded 2-core machine that its messages could be requeued under it (issue 27).
    "SCENEDEX_WORKER__HEARTBEAT_TIMEOUT_MS": "15000",
    "SCENEDEX_REPROCESS__BATCH_SIZE": "4",
}
FAILURE_THRESHOLD = 3  # SCENEDEX_BREAKERS__FAILURE_THRESHOLD's default
EMBED_OUTAGE_S = 30.0
SEARCH_OUTAGE_S = 12.0
SCENES = 12
"""Scenes per video: one video item takes one to two seconds on 2 cores."""
POSTGRES_DOWN_S = 3.0
REDIS_DOWN_S = 3.0
LOST_LINE = "sweeper re-sent lost messages"
"""What the worker logs when the sweeper takes a message for lost: never for a delayed one."""


@pytest.fixture(scope="module")
def own_postgres(postgres_url: str) -> Iterator[Cluster | None]:
    """This module's own Postgres cluster (``tests.pg_cluster``), which the restart step stops:
    never the machine's shared one. None where no cluster can be made (not root): the stack then
    uses a database on the shared server and the restart step skips."""
    with private_cluster(f"scenedex-outages-{os.getpid()}") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def own_redis() -> Iterator[RedisServer]:
    """This module's own ``redis-server`` (``tests.redis_server``), started here and stopped
    after the module: never the Redis other suites use."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed: the outage tests run on a Redis of their own")
    with private_redis() as server:
        yield server


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str,
    own_postgres: Cluster | None,
    own_redis: RedisServer,
) -> Iterator[OutageStack]:
    server = own_postgres.url if own_postgres is not None else postgres_url
    database_url = create_database(server, f"scenedex_outages_{os.getpid()}")
    root = tmp_path_factory.mktemp("outages")
    built = OutageStack(root, database_url, own_redis.url(), SETTINGS)  # the embed server starts loading
    try:
        assert not built.redis.dbsize(), "the module's own Redis is not empty"
        built.cli("db", "upgrade")
        built.embed.wait_ready()
        built.start_worker()
        yield built
    finally:
        built.close()
        drop_database(database_url)


def step(name: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The module's tests are ordered steps on one stack: a step runs only after the previous
    ones passed (else it is skipped with the reason); each starts with every breaker closed and
    a worker running, and leaves the embedding service up."""

    def decorate(test: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(test)
        def wrapper(stack: OutageStack, **fixtures: Any) -> None:
            failed = stack.state.get("failed")
            if failed:
                pytest.skip(f"an earlier step failed: {failed}")
            wait_for(lambda: not stack.redis.keys("scenedex:breaker:*:open"), 30, "every breaker closed")
            stack.ensure_worker()
            try:
                test(stack, **fixtures)
            except pytest.skip.Exception:  # a skipped step is no failed one: the next steps run
                raise
            except BaseException:
                stack.state["failed"] = name
                raise
            finally:
                stack.embedding.up()

        return wrapper

    return decorate


# ----------------------------------------------------------------------------- helpers


def video_items(stack: OutageStack, job_id: uuid.UUID) -> list[Any]:
    return [item for item in stack.items(job_id) if item.kind == "video"]


def wait_succeeded_items(stack: OutageStack, job_id: uuid.UUID, count: int, timeout: float = 120) -> None:
    wait_for(
        lambda: stack.items_by_status(job_id).get("succeeded", 0) >= count,
        timeout,
        f"{count} video item(s) of job {job_id} to succeed",
        interval=0.1,
    )


def waiting_on(stack: OutageStack, job_id: uuid.UUID, dependency: str) -> set[uuid.UUID]:
    return {
        item.subject_id
        for item in video_items(stack, job_id)
        if item.status == "waiting" and item.waiting_on == dependency
    }


def failed_items(stack: OutageStack, job_id: uuid.UUID) -> list[Any]:
    return [item for item in stack.items(job_id) if item.status == "failed"]


def assert_current(
    stack: OutageStack,
    owner_id: uuid.UUID,
    *,
    missing: dict[str, int] | None = None,
    stale: dict[str, int] | None = None,
) -> None:
    """``reprocess --dry-run``: nothing stale, nothing missing (except ``missing`` and ``stale``
    per step)."""
    plan = stack.dry_run(owner_id)
    for found in plan["steps"]:
        assert found["stale"] == (stale or {}).get(found["step"], 0), plan["steps"]
        assert found["missing"] == (missing or {}).get(found["step"], 0), plan["steps"]


def log_since(stack: OutageStack, offset: int) -> str:
    assert stack.worker is not None
    return stack.worker.log()[offset:]


# ----------------------------------------------------------------------------- pause and resume


@step("pause")
def test_1_pause_starts_no_item_and_resume_completes_the_job(stack: OutageStack) -> None:
    owner_id, videos = stack.library(6, 8, seed=10_000)
    job_id = stack.enqueue_owner(owner_id)
    wait_succeeded_items(stack, job_id, 1)

    paused = stack.cli_json("jobs", "pause", str(job_id))
    assert paused["status"] == "paused", paused
    wait_for(  # the item running when the job was paused finishes
        lambda: not any(i.status == "running" for i in stack.items(job_id)), 60, "the running item"
    )
    before = sorted((i.subject_id, i.status, i.deliveries, i.started_at) for i in stack.items(job_id))
    time.sleep(5)
    after = sorted((i.subject_id, i.status, i.deliveries, i.started_at) for i in stack.items(job_id))
    status = stack.job_status(job_id)
    done_while_paused = sum(1 for item in before if item[1] == "succeeded")
    print(f"\npause: {done_while_paused}/{len(videos)} videos done at the pause, none started in 5 s")
    assert after == before, "an item started or changed while the job was paused"
    assert status["status"] == "paused" and done_while_paused < len(videos), status

    resumed = stack.cli_json("jobs", "resume", str(job_id))
    assert resumed["status"] == "running", resumed
    job = stack.wait_job(job_id)
    assert job.status == "succeeded", job
    assert stack.items_by_status(job_id) == {"succeeded": len(videos)}
    assert record_counts(stack.engine, owner_id) == expected_counts(len(videos) * 8, photos=1, persons=1)


# ----------------------------------------------------------------------------- priorities


@step("priority")
def test_2_an_upload_finishes_before_a_running_backfill(stack: OutageStack) -> None:
    owner_id, backfill = stack.library(12, 6, seed=20_000)
    uploader, [upload] = stack.library(1, 6, seed=29_000)
    job_id = stack.enqueue_owner(owner_id)
    wait_succeeded_items(stack, job_id, 2)

    stack.send_embed(upload.id, uploader)
    sent = time.monotonic()
    wait_for(lambda: stack.video_status(upload.id) == "ready", 120, "the upload to be ready", interval=0.1)
    ready = time.monotonic()
    backfill_left = 1 + len(backfill) - sum(stack.items_by_status(job_id).get(s, 0) for s in ("succeeded",))
    backfill_status = job_row(stack.engine, job_id).status
    job = stack.wait_job(job_id)
    over = time.monotonic()
    print(
        f"\nupload under backfill: ready {ready - sent:.1f} s after its embed_video was sent; the "
        f"backfill ({len(backfill)} videos, 1 thread) had {backfill_left - 1} videos left and ended "
        f"{over - ready:.1f} s later"
    )
    assert backfill_status == "running" and backfill_left > 1
    assert job.status == "succeeded", job


# ----------------------------------------------------------------------------- embedding service


@step("embedding outage")
def test_3_an_embedding_outage_holds_the_job_and_a_corrupt_keyframe_fails_only_its_item(
    stack: OutageStack,
) -> None:
    owner_id, videos = stack.library(7, SCENES, seed=30_000)
    corrupt = max(videos, key=lambda video: video.id)  # items are sent in id order: it runs last
    corrupt_scene = stack.corrupt_keyframe(corrupt.id)
    job_id = stack.enqueue_owner(owner_id)
    wait_succeeded_items(stack, job_id, 1)
    offset = len(stack.worker.log()) if stack.worker else 0

    stack.embedding.down()
    down = time.monotonic()
    held: set[uuid.UUID] = set()
    shown: dict[str, Any] | None = None
    while time.monotonic() < down + EMBED_OUTAGE_S:
        held |= waiting_on(stack, job_id, "embedding")
        if shown is None and held:
            status = stack.job_status(job_id)
            if any(group["waiting_on"] == "embedding" for group in status["waiting"]):
                shown = status
        time.sleep(0.5)
    during = {"failed": len(failed_items(stack, job_id)), "status": job_row(stack.engine, job_id).status}
    stack.embedding.up()
    up = time.monotonic()

    def first_held_done() -> bool:
        return any(
            i.subject_id in held and i.status in ("succeeded", "failed") for i in video_items(stack, job_id)
        )

    first_done = wait_for(first_held_done, 60, "a held item to finish", interval=0.1) and time.monotonic()
    job = stack.wait_job(job_id)
    refused = [r for r in stack.embedding.refused_since(down) if r.at < up]
    probes = [r for r in refused if r.is_probe]
    work = len(refused) - len(probes)
    print(
        f"\nembedding service down {up - down:.0f} s: {len(refused)} connections reached it "
        f"({len(probes)} probes GET /health, {work} work requests); "
        f"{len(held)} items seen waiting on embedding; recovery -> first held item done "
        f"{first_done - up:.1f} s; job {job.status}"
    )

    assert shown is not None, "jobs status never showed items waiting on embedding during the outage"
    group = next(g for g in shown["waiting"] if g["waiting_on"] == "embedding")
    assert group["items"] >= 1 and group["since"], group
    assert during == {"failed": 0, "status": "running"}, during
    assert held, "no item was held"
    # Bounded: the breaker opens after FAILURE_THRESHOLD failed attempts (2 requests each);
    # then only the probes reach the service, at least OPEN_S = 1 s apart.
    assert work <= 2 * FAILURE_THRESHOLD * 2, [r.request_line for r in refused]
    assert len(probes) <= EMBED_OUTAGE_S / 1.0 + 2, len(probes)

    assert job.status == "partially_failed", job
    [failed] = failed_items(stack, job_id)
    print(
        f"the corrupt keyframe's item: {failed.error}: {[(e['step'], e['message']) for e in failed.errors]}"
    )
    assert failed.subject_id == corrupt.id, failed
    assert {e["item_id"] for e in failed.errors} == {str(corrupt_scene)}, failed.errors
    assert "scene_clip_embeddings" in {e["step"] for e in failed.errors}, failed.errors
    assert stack.items_by_status(job_id) == {"succeeded": len(videos) - 1, "failed": 1}
    log = log_since(stack, offset)
    assert "circuit breaker embedding OPEN" in log and LOST_LINE not in log, log[-6000:]
    # The corrupt scene's failed records are missing, and its search document (written without
    # them) is stale: the next job tries them again. Everything else is current.
    assert_current(
        stack,
        owner_id,
        missing={e["step"]: 1 for e in failed.errors},
        # the owner's suggestions follow any face record still to compute
        stale={"search_reindex": 1, "face_clusters": 1},
    )


@step("kill -9 while held")
def test_4_kill_9_of_a_worker_while_items_are_held_loses_nothing(stack: OutageStack) -> None:
    owner_id, videos = stack.library(5, 8, seed=40_000)
    job_id = stack.enqueue_owner(owner_id)
    wait_succeeded_items(stack, job_id, 1)
    stack.embedding.down()
    wait_for(lambda: len(waiting_on(stack, job_id, "embedding")) >= 2, 60, "two held items", interval=0.2)
    victim = stack.worker
    assert victim is not None
    held = len(waiting_on(stack, job_id, "embedding"))
    offset = len(victim.log())
    os.kill(victim.worker_child(), signal.SIGKILL)
    victim.wait_restart(timeout=60, since=offset)  # the master stopped; a new worker replaces it here
    victim.kill_group()
    stack.worker = None
    stack.embedding.up()

    replacement = stack.start_worker()
    job = stack.wait_job(job_id)
    print(f"\nkill -9 while {held} items were held: job {job.status}")
    assert job.status == "succeeded", job
    assert LOST_LINE not in replacement.log(), replacement.log()[-6000:]
    assert not failed_items(stack, job_id)
    assert record_counts(stack.engine, owner_id) == expected_counts(len(videos) * 8, photos=1, persons=1)
    assert_current(stack, owner_id)


# ----------------------------------------------------------------------------- Postgres


@step("postgres restart")
def test_5_a_postgres_restart_mid_job_fails_nothing_and_resends_nothing(
    stack: OutageStack, own_postgres: Cluster | None
) -> None:
    cluster = own_postgres
    if cluster is None:
        pytest.skip(
            "no private Postgres cluster here (pg_createcluster needs root): the shared one is not stopped"
        )
    owner_id, videos = stack.library(6, SCENES, seed=50_000)
    job_id = stack.enqueue_owner(owner_id)
    wait_succeeded_items(stack, job_id, 1)
    offset = len(stack.worker.log()) if stack.worker else 0

    # A restart with a known downtime (pg_ctlcluster restart is down for well under a second,
    # often between two database calls of the worker): stop, POSTGRES_DOWN_S, start.
    started = time.monotonic()
    try:
        cluster.ctl("stop", "-m", "fast")
        time.sleep(POSTGRES_DOWN_S)
    finally:
        cluster.ctl("start")
        wait_for(cluster.ready, 60, "pg_isready")
    restarted = time.monotonic()
    job = stack.wait_job(job_id)
    log = log_since(stack, offset)
    kept = log.count("message id kept in Redis")
    flushed = log.count("kept in Redis while the database was down")
    print(
        f"\npostgres down {restarted - started:.1f} s: job {job.status}; worker log: "
        f"{log.count('Retrying message')} retries, {log.count(' held ')} holds, {kept} message ids kept "
        f"in Redis, {flushed} flushes of them, {log.count(LOST_LINE)} lost-message re-sends"
    )
    assert job.status == "succeeded", job
    assert not failed_items(stack, job_id)
    assert LOST_LINE not in log, log[-6000:]
    assert record_counts(stack.engine, owner_id) == expected_counts(len(videos) * SCENES, photos=1, persons=1)
    wait_for(  # the ids kept while the database was down are written (or were replaced) by now
        lambda: not stack.redis.hlen(PendingMessageIds.KEY), 15, "the pending message ids to be written"
    )


# ----------------------------------------------------------------------------- OpenSearch


@step("opensearch outage")
def test_6_a_search_index_outage_mid_job_fails_nothing(stack: OutageStack, osmem: Any) -> None:
    clone = osmem.clone()
    proxy = OutageProxy(clone.url)
    search = {
        "SCENEDEX_SEARCH__BACKEND": "opensearch",
        "SCENEDEX_SEARCH__URL": proxy.url,
        "SCENEDEX_SEARCH__INDEX_PREFIX": "outage-",
        "SCENEDEX_SEARCH__MAX_RETRIES": "0",
        "SCENEDEX_SEARCH__TIMEOUT_S": "5",
    }
    try:
        stack.stop_worker()
        stack.start_worker(**search)
        owner_id, videos = stack.library(5, 8, seed=60_000)
        job_id = stack.enqueue_owner(owner_id)
        wait_succeeded_items(stack, job_id, 1)
        offset = len(stack.worker.log()) if stack.worker else 0

        proxy.down()
        down = time.monotonic()
        held: set[uuid.UUID] = set()
        while time.monotonic() < down + SEARCH_OUTAGE_S:
            held |= waiting_on(stack, job_id, "opensearch")
            time.sleep(0.3)
        failed_during = len(failed_items(stack, job_id))
        proxy.up()
        up = time.monotonic()
        job = stack.wait_job(job_id)
        refused = [r for r in proxy.refused_since(down) if r.at < up]
        print(
            f"\nsearch index down {up - down:.0f} s: {len(refused)} connections reached it "
            f"({sum(r.is_probe for r in refused)} probes); {len(held)} items seen waiting on opensearch; "
            f"job {job.status}"
        )
        assert held and failed_during == 0
        assert LOST_LINE not in log_since(stack, offset), log_since(stack, offset)[-6000:]
        assert job.status == "succeeded", job
        assert not failed_items(stack, job_id)
        verified = stack.cli_json("index", "verify", "--owner-id", str(owner_id), expect=None, env=search)
        report = verified["owners"][0]
        assert report["documents"] == report["scenes"] == len(videos) * 8, report
        assert [report[k]["count"] for k in ("missing", "stale", "extra")] == [0, 0, 0], report
    finally:
        stack.stop_worker()  # before the cluster it writes to goes
        proxy.close()
        clone.close()


# ----------------------------------------------------------------------------- Redis


@step("redis restart")
def test_7_a_redis_restart_without_persistence_loses_no_item(
    stack: OutageStack, own_redis: RedisServer
) -> None:
    """The module's own Redis (no persistence) stopped for ``REDIS_DOWN_S`` and started empty
    mid-job: the queued messages are gone, the worker reconnects, and the sweeper re-sends the
    messages of the unfinished items (``resend_lost``): nothing fails, every record is there."""
    owner_id, videos = stack.library(6, 8, seed=70_000)
    job_id = stack.enqueue_owner(owner_id)
    wait_succeeded_items(stack, job_id, 1)
    offset = len(stack.worker.log()) if stack.worker else 0

    started = time.monotonic()
    own_redis.stop()
    try:
        time.sleep(REDIS_DOWN_S)
    finally:
        own_redis.start()
    restarted = time.monotonic()
    job = stack.wait_job(job_id, timeout=300)
    log = log_since(stack, offset)
    print(
        f"\nredis down {restarted - started:.1f} s (restarted empty): job {job.status}; worker log: "
        f"{log.count(LOST_LINE)} lost-message re-sends"
    )
    assert job.status == "succeeded", job
    assert not failed_items(stack, job_id)
    assert LOST_LINE in log, log[-6000:]  # the restart lost the queued messages: the sweeper sent them again
    assert record_counts(stack.engine, owner_id) == expected_counts(len(videos) * 8, photos=1, persons=1)
    assert_current(stack, owner_id)
