"""Throughput of ``scenedex worker`` with 1, 2... worker processes on one owner job.

    .venv/bin/python tests/bench_worker_throughput.py --scenes 200 --processes 1 2

Builds a synthetic library (``scenedex.tools.bench_library.build_library``: videos of 20 scenes,
1280x720 JPEG keyframes, one in five with a face, seeded texts, one person with two photos) in a
fresh Postgres database (``scenedex_wk_bench_<pid>``, dropped afterwards unless ``--keep``),
then for each process count: deletes every derived record (fresh state), starts
``scenedex worker --processes N``, waits until every process has loaded its models, enqueues an
owner job and times it until it is over. Real text and face models; CLIP untrained
(``--pretrained none``) unless given weights. Not collected by pytest (the name does not start
with ``test_``).

Figures per run: ``job_s`` (the job's ``started_at`` to ``finished_at``, as the database
records them: the planner picking the job up to the last video finishing), ``wall_s`` (enqueue
to the job seen finished, polled every 0.2 s), ``scenes_per_s`` = scenes / ``job_s``, and
``cores_busy``: the worker processes' CPU seconds over ``wall_s`` (2.0 = two cores all along).
The Redis database given (default: ``SCENEDEX_REDIS_URL`` or the tests' database 15) is flushed
before each run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis

from scenedex.adapters.db.engine import create_engine
from scenedex.adapters.db.migrate import upgrade
from scenedex.adapters.storage import FsspecBlobStore
from scenedex.application import build_services
from scenedex.domain.jobs import JobTrigger
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.settings import ClipSettings, Settings
from scenedex.tasks.queue import build_runtime
from scenedex.tools.bench_library import build_library, face_photo
from tests.worker_processes import (
    WorkerProcess,
    clear_records,
    create_database,
    drop_database,
    job_items,
    job_row,
    wait_for,
)

FINISHED = ("succeeded", "failed", "partially_failed", "cancelled")
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/scenedex_test"
REAL_MEDIA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=200, help="scenes in the library (videos of 20)")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="worker processes per run")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker process")
    parser.add_argument("--batch-size", type=int, default=32, help="SCENEDEX_REPROCESS__BATCH_SIZE")
    parser.add_argument("--pretrained", default="none", help="SCENEDEX_CLIP__PRETRAINED (default: untrained)")
    parser.add_argument(
        "--omp-threads", type=int, default=None, help="OMP_NUM_THREADS per worker process (default: torch's)"
    )
    parser.add_argument(
        "--server-url",
        default=os.environ.get("SCENEDEX_TEST_DATABASE_URL", DEFAULT_PG_URL),
        help="any database URL on the Postgres server to use (the bench creates its own database)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("SCENEDEX_REDIS_URL", "redis://127.0.0.1:6379/15"),
        help="flushed",
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    return parser.parse_args(argv)


def worker_env(args: argparse.Namespace, database_url: str, media: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "SCENEDEX_DATABASE_URL": database_url,
        "SCENEDEX_STORAGE_URL": str(media),
        "SCENEDEX_REDIS_URL": args.redis_url,
        "SCENEDEX_CLIP__PRETRAINED": args.pretrained,
        "SCENEDEX_REPROCESS__BATCH_SIZE": str(args.batch_size),
        "SCENEDEX_CLIP__BATCH_SIZE": str(args.batch_size),
        "SCENEDEX_WORKER__METRICS_PORT": "0",
        "SCENEDEX_LOG_LEVEL": "INFO",
        "HF_HUB_OFFLINE": "1",
    }
    if args.omp_threads:
        env["OMP_NUM_THREADS"] = str(args.omp_threads)
    return env


def timed_job(
    args: argparse.Namespace, env: dict[str, str], work: Path, owner_id: Any, processes: int
) -> dict[str, Any]:
    """One run: fresh records, a worker with ``processes`` processes, one owner job."""
    engine = create_engine(env["SCENEDEX_DATABASE_URL"])
    clear_records(engine)
    redis.Redis.from_url(args.redis_url).flushdb()
    load = os.getloadavg()[0]
    worker = WorkerProcess(
        env, work / f"worker-{processes}.log", "--processes", str(processes), "--threads", str(args.threads)
    )
    try:
        booted = worker.wait_ready(timeout=600) - worker.started
        settings = Settings(database_url=env["SCENEDEX_DATABASE_URL"], redis_url=args.redis_url)
        coordinator = build_runtime(settings, engine=engine).coordinator  # installs the broker
        request = ReprocessRequest(ReprocessScope.OWNER, owner_id=owner_id)
        cpu_before = worker.cpu_seconds()
        enqueued = time.monotonic()
        job_id = coordinator.enqueue(request, worker.spec_version(), JobTrigger.CLI).id
        job = wait_for(
            lambda: (row := job_row(engine, job_id)).status in FINISHED and row, 3600, "the job", interval=0.2
        )
        wall = time.monotonic() - enqueued
        cpu = worker.cpu_seconds() - cpu_before
    finally:
        worker.stop()
    job_s = (job.finished_at - job.started_at).total_seconds()
    computed = sum(
        (item.counts or {}).get("scene_clip_embeddings", {}).get("computed", 0)
        for item in job_items(engine, job_id)
    )
    engine.dispose()
    return {
        "processes": processes,
        "threads": args.threads,
        "status": job.status,
        "scenes_computed": computed,
        "boot_s": round(booted, 1),
        "job_s": round(job_s, 2),
        "wall_s": round(wall, 2),
        "scenes_per_s": round(args.scenes / job_s, 2),
        "cores_busy": round(cpu / wall, 2),
        "load_average_before": round(load, 2),
    }


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    database_url = create_database(args.server_url, f"scenedex_wk_bench_{os.getpid()}")
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="scenedex-wk-bench-") as folder:
            work = Path(folder)
            env = worker_env(args, database_url, work / "media")
            settings = Settings(
                database_url=database_url,
                storage_url=str(work / "media"),
                clip=ClipSettings(pretrained="none"),
            )
            services = build_services(settings)
            upgrade(services.engine)
            started = time.perf_counter()
            library = build_library(
                services, FsspecBlobStore(str(work / "media")), args.scenes, face_photo(REAL_MEDIA), work
            )
            say(args, f"library: {args.scenes} scenes in {len(library.videos)} videos, "
                f"built in {time.perf_counter() - started:.1f} s; cpus: {os.cpu_count()}")  # fmt: skip
            services.engine.dispose()
            for processes in args.processes:
                result = timed_job(args, env, work, library.owner_id, processes)
                results.append(result)
                say(
                    args,
                    f"{processes} process(es) x {args.threads} thread(s): {result['scenes_per_s']} scenes/s "
                    f"(job {result['job_s']} s, wall {result['wall_s']} s, models loaded in "
                    f"{result['boot_s']} s, {result['cores_busy']} cores busy on average, "
                    f"{result['status']}, load average before "
                    f"{result['load_average_before']})",
                )
    finally:
        if not args.keep:
            drop_database(database_url)
    if args.json:
        print(json.dumps({"scenes": args.scenes, "batch_size": args.batch_size, "runs": results}))
    return 0 if all(r["status"] == "succeeded" for r in results) else 1


def say(args: argparse.Namespace, line: str) -> None:
    print(line, file=sys.stderr if args.json else sys.stdout, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
