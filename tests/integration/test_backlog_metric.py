"""The backlog metric (``scenedex.worker.backlog``, served by ``scenedex metrics``) against the job
ledger, with a real ``scenedex worker`` process running a job.

The worker (one process, two threads, queue ``reprocessing``; real text and face models, untrained
CLIP) runs an owner job on this module's own Postgres database and the tests' Redis database. The
test holds ``LOCK TABLE search_documents IN EXCLUSIVE MODE`` (reads go on, writes wait), so the
video items it runs stop at their first search document write and stay ``running`` for as long as
the test wants: a state to compare the two counts in. Then it lets them go and checks that the
metric is never below the ledger while the job drains (Redis read first, the ledger after).
Last, a one-video job: its item runs, Redis's list is empty (what KEDA's Redis list scaler reads),
and the metric, scraped over HTTP from ``scenedex metrics``, stays 1.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from scenedex.adapters.db import tables as t
from scenedex.adapters.db.engine import create_engine
from scenedex.adapters.db.repositories import SqlUnitOfWorkFactory
from scenedex.adapters.storage import FsspecBlobStore
from scenedex.domain.model import new_id
from scenedex.worker.backlog import read_backlog
from tests.worker_processes import (
    WorkerProcess,
    add_astronaut,
    add_synthetic_video,
    create_database,
    drop_database,
    run_cli,
    scenedex_command,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.models]

QUEUE = "reprocessing"
THREADS = 2
SCENES = 8
UNFINISHED = ("queued", "running", "waiting")


class Site:
    """The module's database, media folder, Redis database and worker environment."""

    def __init__(self, root: Path, database_url: str, redis_url: str) -> None:
        self.root = root
        self.env = {
            **os.environ,
            "SCENEDEX_DATABASE_URL": database_url,
            "SCENEDEX_STORAGE_URL": str(root / "media"),
            "SCENEDEX_REDIS_URL": redis_url,
            "SCENEDEX_CLIP__PRETRAINED": "none",
            "SCENEDEX_WORKER__METRICS_PORT": "0",
            "SCENEDEX_REPROCESS__BATCH_SIZE": "4",
            "HF_HUB_OFFLINE": "1",
        }
        self.engine = create_engine(database_url)
        self.uow_factory = SqlUnitOfWorkFactory(self.engine)
        self.blobs = FsspecBlobStore(str(root / "media"))
        self.redis = redis.Redis.from_url(redis_url)

    def cli(self, *args: str) -> str:
        result = run_cli(self.env, *args, cwd=self.root)
        assert result.returncode == 0, (args, result.stdout, result.stderr[-3000:])
        return result.stdout

    def owner(self, videos: int, seed: int) -> uuid.UUID:
        owner_id = new_id()
        add_astronaut(self.uow_factory, self.blobs, owner_id)
        for v in range(videos):
            add_synthetic_video(self.uow_factory, self.blobs, owner_id, SCENES, seed=seed + 100 * v)
        return owner_id

    def enqueue(self, owner_id: uuid.UUID) -> uuid.UUID:
        import json

        out = self.cli("reprocess", "--scope", "owner", "--owner-id", str(owner_id), "--enqueue", "--json")
        return uuid.UUID(json.loads(out)["job_id"])

    def items(self, job_id: uuid.UUID) -> dict[str, int]:
        """The job's items by status (the ledger)."""
        items = t.reprocess_job_items.c
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(items.status, sa.func.count()).where(items.job_id == job_id).group_by(items.status)
            )
            return {status: count for status, count in rows}

    def unfinished(self, job_id: uuid.UUID) -> int:
        counts = self.items(job_id)
        return sum(counts.get(status, 0) for status in UNFINISHED)

    def planned(self, job_id: uuid.UUID) -> bool:
        jobs = t.reprocess_jobs.c
        with self.engine.connect() as connection:
            return (
                connection.execute(sa.select(jobs.planned_at).where(jobs.id == job_id)).scalar() is not None
            )

    def backlog(self) -> tuple[int, int]:
        """``(backlog, waiting)`` of the queue, as the exporter reads them."""
        (queue,) = read_backlog(self.redis, [QUEUE])
        return queue.backlog, queue.waiting

    def running(self, job_id: uuid.UUID, count: int) -> bool:
        return self.planned(job_id) and self.items(job_id).get("running", 0) == count


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, postgres_url: str, redis_url: str) -> Iterator[Site]:
    database_url = create_database(postgres_url, f"scenedex_backlog_{os.getpid()}")
    site = Site(tmp_path_factory.mktemp("backlog"), database_url, redis_url)
    site.redis.flushdb()
    site.cli("db", "upgrade")
    yield site
    site.redis.flushdb()
    site.engine.dispose()
    drop_database(database_url)


@pytest.fixture(scope="module")
def worker(site: Site) -> Iterator[WorkerProcess]:
    process = WorkerProcess(
        site.env, site.root / "worker.log", "--processes", "1", "--threads", str(THREADS), "--queues", QUEUE
    )
    try:
        yield process  # the test waits until it is ready
    finally:
        process.stop(timeout=30)


class DocumentWrites:
    """``LOCK TABLE search_documents IN EXCLUSIVE MODE`` held by a transaction of the test: the
    workers' document writes wait (their items stay ``running``), reads do not."""

    def __init__(self, engine: sa.Engine) -> None:
        self._connection = engine.connect()
        self._transaction = self._connection.begin()
        self._connection.execute(sa.text("LOCK TABLE search_documents IN EXCLUSIVE MODE"))

    def release(self) -> None:
        self._transaction.rollback()
        self._connection.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int) -> dict[str, float]:
    """``scenedex metrics``' samples for the queue: ``{metric name: value}``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    label = f'{{queue="{QUEUE}"}}'
    return {
        line.split(label)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if label in line
    }


def test_backlog_equals_the_ledger_and_counts_running_work(site: Site, worker: WorkerProcess) -> None:
    small, big = site.owner(videos=1, seed=5000), site.owner(videos=3, seed=0)
    exporter_port = free_port()
    exporter = subprocess.Popen(
        scenedex_command("metrics", "--port", str(exporter_port), "--host", "127.0.0.1", "--queues", QUEUE),
        env=site.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    lock = DocumentWrites(site.engine)
    try:
        # 1. one item running, the Redis list empty: the exporter says 1, and keeps saying it
        first = site.enqueue(small)  # while the worker loads its models
        worker.wait_ready()
        wait_for(lambda: site.running(first, 1), 60, "the running item of the 1-video job", 0.1)
        samples = []
        for _ in range(5):
            samples.append(wait_for(lambda: _scrape_or_none(exporter_port), 30, "scenedex metrics to answer"))
            assert site.unfinished(first) == 1
            time.sleep(0.2)
        for sample in samples:
            assert sample["scenedex_queue_waiting"] == 0, samples
            assert sample["scenedex_queue_backlog"] == 1, samples
            assert sample["scenedex_queue_oldest_age_seconds"] > 0, samples

        # 2. three more video items: the other thread runs one, two wait; metric = ledger = 4
        second = site.enqueue(big)
        wait_for(lambda: site.running(second, 1), 60, "a running item of the 3-video job", 0.1)
        for _ in range(10):
            backlog, waiting = site.backlog()
            ledger = site.unfinished(first) + site.unfinished(second)
            assert (backlog, waiting, ledger) == (4, 2, 4), (site.items(first), site.items(second))
            time.sleep(0.1)
    finally:
        lock.release()
        exporter.terminate()
        exporter.wait(timeout=10)

    # 3. the jobs drain: Redis read first, then the ledger, so the metric is never below it
    pairs = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        backlog, _ = site.backlog()
        unfinished = site.unfinished(first) + site.unfinished(second)
        pairs.append((backlog, unfinished))
        assert backlog >= unfinished, pairs
        if unfinished == 0 and backlog == 0:
            break
        time.sleep(0.02)
    assert pairs[-1] == (0, 0), pairs[-5:]
    assert site.items(first) == {"succeeded": 2}  # the video + the owner's persons item
    assert site.items(second) == {"succeeded": 4}


def _scrape_or_none(port: int) -> dict[str, float] | None:
    try:
        return scrape(port)
    except OSError:
        return None
