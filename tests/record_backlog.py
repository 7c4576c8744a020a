"""Record a backlog from a real ``scenedex worker``: an upload burst plus a forced reprocess of
everything, for the autoscaler simulation (``scenedex.tools.autoscale_sim``, docs/SCALING.md).

    .venv/bin/python tests/record_backlog.py --videos 20 --scenes 8 --out tests/fixtures/backlog_burst.json

Builds ``--videos`` synthetic videos of ``--scenes`` scenes (``tests.worker_processes``: 320x180
JPEG keyframes, one in five with a face, seeded texts) of one owner with one person, in a fresh
Postgres database (dropped afterwards); starts ``scenedex worker --processes 1 --threads 2`` on
both queues (real text and face models, untrained CLIP: the same cost as trained) and times its
boot; then at once sends one ``embed_video`` per video (the upload burst, queue ``embeddings``) and
enqueues ``scenedex reprocess --scope all --force`` (queue ``reprocessing``). Every 0.25 s until
both queues are empty it samples each queue's backlog as ``scenedex metrics`` reads it
(``scenedex.worker.backlog``: not-acknowledged, waiting list, delayed); the fixture kept in
the repository keeps the first sample of each second. Afterwards it reads from
the job ledger when each message ran: an upload is its ``ingest`` job (created and run inline by
the ``embed_video`` message), a reprocess message its video item, the planner the ``all`` job's
start to its planning end. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
import sqlalchemy as sa
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker

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
)

QUEUES = ("embeddings", "reprocessing")
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/scenedex_test"


def cpu_model() -> str:
    """``lscpu``'s model name (the machine the figures come from)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return platform.processor()
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line), "")


def record(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="scenedex-backlog-"))
    database_url = create_database(args.postgres_url, f"scenedex_backlog_rec_{os.getpid()}")
    env = {
        **os.environ,
        "SCENEDEX_DATABASE_URL": database_url,
        "SCENEDEX_STORAGE_URL": str(root / "media"),
        "SCENEDEX_REDIS_URL": args.redis_url,
        "SCENEDEX_CLIP__PRETRAINED": "none",
        "SCENEDEX_WORKER__METRICS_PORT": "0",
        "SCENEDEX_REPROCESS__BATCH_SIZE": "8",
        "HF_HUB_OFFLINE": "1",
    }
    client = redis.Redis.from_url(args.redis_url)
    client.flushdb()
    engine = create_engine(database_url)
    worker = None
    try:
        assert run_cli(env, "db", "upgrade", cwd=root).returncode == 0
        uow_factory, blobs = SqlUnitOfWorkFactory(engine), FsspecBlobStore(str(root / "media"))
        owner = new_id()
        add_astronaut(uow_factory, blobs, owner)
        videos = [
            add_synthetic_video(uow_factory, blobs, owner, args.scenes, seed=1000 * v)[0].id
            for v in range(args.videos)
        ]
        started = time.monotonic()
        worker = WorkerProcess(env, root / "worker.log", "--processes", "1", "--threads", "2")
        boot_s = worker.wait_ready() - started

        broker = RedisBroker(url=args.redis_url)
        t0 = time.monotonic()
        wall0 = datetime.now(UTC)
        reprocess = subprocess.Popen(
            scenedex_command("reprocess", "--scope", "all", "--force", "--enqueue", "--json"),
            env=env,
            cwd=root,
            stdout=subprocess.PIPE,
            text=True,
        )
        for video in videos:
            message = Message(
                queue_name="embeddings",
                actor_name="embed_video",
                args=(str(video), str(owner)),
                kwargs={},
                options={},
            )
            broker.enqueue(message)
        samples: list[dict[str, Any]] = []
        job_id = None
        while True:
            now = round(time.monotonic() - t0, 3)
            for queue in read_backlog(client, QUEUES):
                samples.append({"t": now, **queue.to_dict()})
            if job_id is None and reprocess.poll() is not None:
                job_id = uuid.UUID(json.loads(reprocess.stdout.read())["job_id"])  # type: ignore[union-attr]
            if job_id is not None and all(s["backlog"] == 0 for s in samples[-len(QUEUES) :]):
                break
            if now > args.timeout:
                raise AssertionError(f"backlog not drained after {args.timeout} s")
            time.sleep(0.25)
        messages = ledger_messages(engine, wall0, job_id)
        return {
            "recorded": wall0.isoformat(timespec="seconds"),
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "worker": {"processes": 1, "threads": 2, "boot_s": round(boot_s, 2)},
            "videos": args.videos,
            "scenes_per_video": args.scenes,
            "drain_s": samples[-1]["t"],
            "samples": samples,
            "messages": messages,
        }
    finally:
        if worker is not None:
            worker.stop(timeout=60)
        client.flushdb()
        engine.dispose()
        drop_database(database_url)


def ledger_messages(engine: sa.Engine, wall0: datetime, all_job: uuid.UUID) -> list[dict[str, Any]]:
    """When each message ran, seconds from the burst: ``{"queue", "kind", "start_s", "end_s"}``."""
    jobs, items = t.reprocess_jobs.c, t.reprocess_job_items.c

    def s(moment: datetime) -> float:
        return round((moment.replace(tzinfo=moment.tzinfo or UTC) - wall0).total_seconds(), 3)

    found = []
    with engine.connect() as connection:
        for row in connection.execute(sa.select(t.reprocess_jobs).where(jobs.trigger == "ingest")):
            found.append(
                {
                    "queue": "embeddings",
                    "kind": "embed_video",
                    "start_s": s(row.started_at),
                    "end_s": s(row.finished_at),
                }
            )
        job = connection.execute(sa.select(t.reprocess_jobs).where(jobs.id == all_job)).one()
        found.append(
            {
                "queue": "reprocessing",
                "kind": "planner",
                "start_s": s(job.started_at),
                "end_s": s(job.planned_at),
            }
        )
        video_items = sa.select(t.reprocess_job_items).where(items.job_id == all_job, items.kind == "video")
        for row in connection.execute(video_items):
            found.append(
                {
                    "queue": "reprocessing",
                    "kind": "reprocess_video",
                    "start_s": s(row.started_at),
                    "end_s": s(row.finished_at),
                }
            )
    return sorted(found, key=lambda m: m["start_s"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--postgres-url", default=os.environ.get("SCENEDEX_TEST_DATABASE_URL", DEFAULT_PG_URL)
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("SCENEDEX_REDIS_URL", "redis://127.0.0.1:6379/15")
    )
    args = parser.parse_args()
    recording = record(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(recording, indent=None, separators=(",", ":")) + "\n")
    print(json.dumps({k: v for k, v in recording.items() if k not in ("samples", "messages")}))


if __name__ == "__main__":
    main()
