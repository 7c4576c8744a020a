"""The figures of issue 15, by hand: an owner job with the embedding service down in its middle
for ``--outage-s`` seconds, on the stack of the outage tests (``tests/outage_stack.py``: a
``scenedex embed-server``, an ``OutageProxy`` in front of it, one ``scenedex worker`` of one
process and one thread on the ``http`` backend), with the **default** retry and breaker settings
(``--test-settings``: the shortened ones of ``tests/e2e/test_outages.py`` instead).

Prints, then one JSON line with the same figures:

- connections that reached the dead service per minute of outage (probes ``GET /health`` and
  work requests apart);
- time from recovery to the first held item running, and to it finishing;
- the job's outcome and failed items;
- upload latency under backfill: a backfill job of ``--backfill-videos`` running, an upload's
  ``embed_video`` sent: seconds from sending to the video being ``ready``, and how much longer
  the backfill ran.

    .venv/bin/python -m tests.bench_outage --outage-s 600 [--defaults | --test-settings]

Postgres: ``SCENEDEX_TEST_DATABASE_URL``'s server (the database ``scenedex_bench_outage`` is
created there and dropped after); Redis: ``--redis-url`` (default database 12, **flushed** before
and after). Everything listens on loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from tests.outage_stack import OutageStack
from tests.worker_processes import create_database, drop_database, job_row, wait_for

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/scenedex_test"
LOST_LINE = "sweeper re-sent lost messages"


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def held_ids(stack: OutageStack, job_id: uuid.UUID) -> set[uuid.UUID]:
    return {
        i.subject_id
        for i in stack.items(job_id)
        if i.kind == "video" and i.status == "waiting" and i.waiting_on == "embedding"
    }


def outage(stack: OutageStack, args: argparse.Namespace) -> dict[str, Any]:
    """The owner job with the service down for ``args.outage_s`` in its middle."""
    owner_id, videos = stack.library(args.videos, args.scenes, seed=1)
    job_id = stack.enqueue_owner(owner_id)
    wait_for(
        lambda: stack.items_by_status(job_id).get("succeeded", 0) >= 1, 600, "a first item", interval=0.1
    )
    stack.embedding.down()
    down = time.monotonic()
    log(f"embedding service DOWN for {args.outage_s:.0f} s (job {job_id}, {len(videos)} videos)")
    held: set[uuid.UUID] = set()
    next_report = down + 60
    while time.monotonic() < down + args.outage_s:
        held |= held_ids(stack, job_id)
        if time.monotonic() >= next_report:
            refused = stack.embedding.refused_since(down)
            log(
                f"  {time.monotonic() - down:.0f} s down: {len(refused)} connections reached it, "
                f"{len(held)} items held so far, items {stack.items_by_status(job_id)}"
            )
            next_report += 60
        time.sleep(1.0)
    failed_during = stack.items_by_status(job_id).get("failed", 0)
    stack.embedding.up()
    up = time.monotonic()
    log("embedding service UP")

    def first(statuses: tuple[str, ...]) -> bool:
        return any(i.subject_id in held and i.status in statuses for i in stack.items(job_id))

    running = wait_for(lambda: first(("running", "succeeded", "failed")), 600, "a held item to run", 0.05)
    running_at = time.monotonic() if running else None
    wait_for(lambda: first(("succeeded", "failed")), 600, "a held item to finish", interval=0.1)
    finished_at = time.monotonic()
    job = stack.wait_job(job_id, timeout=1800)
    done = time.monotonic()
    refused = [r for r in stack.embedding.refused_since(down) if r.at < up]
    minutes = max(1, int((up - down + 59) // 60))
    per_minute = []
    for minute in range(minutes):
        bucket = [r for r in refused if down + 60 * minute <= r.at < down + 60 * (minute + 1)]
        probes = sum(r.is_probe for r in bucket)
        per_minute.append({"minute": minute + 1, "probes": probes, "work": len(bucket) - probes})
    failed = [
        {"video_id": str(i.subject_id), "error": i.error, "deliveries": i.deliveries}
        for i in stack.items(job_id)
        if i.status == "failed"
    ]
    return {
        "outage_s": round(up - down, 1),
        "videos": len(videos),
        "scenes_per_video": args.scenes,
        "connections_during_outage": len(refused),
        "probes_during_outage": sum(r.is_probe for r in refused),
        "work_requests_during_outage": sum(not r.is_probe for r in refused),
        "per_minute": per_minute,
        "items_held": len(held),
        "failed_during_outage": failed_during,
        "recovery_to_first_held_item_running_s": round((running_at or finished_at) - up, 2),
        "recovery_to_first_held_item_done_s": round(finished_at - up, 2),
        "recovery_to_job_done_s": round(done - up, 1),
        "job_status": job.status,
        "failed_items": failed,
        "lost_message_resends": (stack.worker.log() if stack.worker else "").count(LOST_LINE),
    }


def upload_under_backfill(stack: OutageStack, args: argparse.Namespace) -> dict[str, Any]:
    owner_id, backfill = stack.library(args.backfill_videos, args.scenes, seed=50_000)
    uploader, [upload] = stack.library(1, args.scenes, seed=90_000)
    job_id = stack.enqueue_owner(owner_id)
    wait_for(lambda: stack.items_by_status(job_id).get("succeeded", 0) >= 2, 600, "the backfill to run", 0.1)
    stack.send_embed(upload.id, uploader)
    sent = time.monotonic()
    wait_for(lambda: stack.video_status(upload.id) == "ready", 600, "the upload to be ready", interval=0.05)
    ready = time.monotonic()
    left = len(backfill) - stack.items_by_status(job_id).get("succeeded", 0)
    backfill_running = job_row(stack.engine, job_id).status == "running"
    job = stack.wait_job(job_id, timeout=3600)
    over = time.monotonic()
    return {
        "backfill_videos": len(backfill),
        "upload_wait_s": round(ready - sent, 2),
        "backfill_videos_left_at_upload_ready": left,
        "backfill_still_running_at_upload_ready": backfill_running,
        "backfill_remaining_s": round(over - ready, 1),
        "backfill_status": job.status,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outage-s", type=float, default=600.0, help="how long the service is down")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--defaults", action="store_true", help="default retry and breaker settings (default)")
    mode.add_argument("--test-settings", action="store_true", help="the outage tests' shortened settings")
    parser.add_argument("--videos", type=int, default=7, help="videos of the owner job")
    parser.add_argument("--scenes", type=int, default=12, help="scenes per video")
    parser.add_argument("--backfill-videos", type=int, default=20)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12", help="flushed before and after")
    parser.add_argument("--keep", action="store_true", help="keep the logs folder (printed)")
    args = parser.parse_args(argv)

    settings: dict[str, str] = {}
    if args.test_settings:
        from tests.e2e.test_outages import SETTINGS

        settings = dict(SETTINGS)
    server = os.environ.get("SCENEDEX_TEST_DATABASE_URL", DEFAULT_PG_URL)
    database_url = create_database(server, "scenedex_bench_outage")
    root = Path(tempfile.mkdtemp(prefix="bench-outage-"))
    log(f"logs in {root}; settings: {'test (shortened)' if settings else 'defaults'}")
    stack = OutageStack(root, database_url, args.redis_url, settings)
    stack.redis.flushdb()
    try:
        stack.cli("db", "upgrade")
        stack.embed.wait_ready()
        stack.start_worker()
        figures = {"settings": "test" if settings else "defaults", "outage": outage(stack, args)}
        figures["upload_under_backfill"] = upload_under_backfill(stack, args)
    finally:
        stack.close()
        stack.redis.flushdb()
        drop_database(database_url)

    out = figures["outage"]
    log(
        f"outage {out['outage_s']:.0f} s: {out['connections_during_outage']} connections reached the dead "
        f"service ({out['probes_during_outage']} probes, {out['work_requests_during_outage']} work)"
    )
    for row in out["per_minute"]:
        log(f"  minute {row['minute']:>2}: {row['probes']} probes, {row['work']} work requests")
    log(
        f"recovery -> first held item running {out['recovery_to_first_held_item_running_s']} s, done "
        f"{out['recovery_to_first_held_item_done_s']} s, job done {out['recovery_to_job_done_s']} s"
    )
    log(f"job {out['job_status']}, failed items: {out['failed_items'] or 'none'}")
    up = figures["upload_under_backfill"]
    log(
        f"upload under backfill ({up['backfill_videos']} videos): ready after {up['upload_wait_s']} s; "
        f"the backfill had {up['backfill_videos_left_at_upload_ready']} videos left, ran "
        f"{up['backfill_remaining_s']} s more ({up['backfill_status']})"
    )
    print(json.dumps(figures), flush=True)
    return 0 if out["job_status"] == "succeeded" and not out["failed_items"] else 1


if __name__ == "__main__":
    sys.exit(main())
