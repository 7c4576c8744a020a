"""The stack of the outage tests (``tests/e2e/test_outages.py``) and bench
(``tests/bench_outage.py``): a ``scenedex embed-server`` process (real models, explicitly
untrained CLIP), an ``OutageProxy`` in front of it, and ``scenedex worker`` processes with the
``http`` embedder backend pointed at the proxy, on a Postgres database and a Redis database of
the caller's, with synthetic libraries written straight to the database and the blob store.

Everything listens on loopback. The processes are started in their own sessions and stopped by
their process group, nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import redis
import sqlalchemy as sa

from scenedex.adapters.db import tables as t
from scenedex.adapters.db.engine import create_engine
from scenedex.adapters.db.repositories import SqlUnitOfWorkFactory
from scenedex.adapters.storage import FsspecBlobStore
from scenedex.domain.model import Video, new_id
from tests.outage_proxy import OutageProxy
from tests.worker_processes import (
    WorkerProcess,
    add_astronaut,
    add_synthetic_video,
    job_items,
    job_row,
    process_env,
    run_cli,
    scenedex_command,
    wait_for,
)

SECRET = "outage-test-secret-of-at-least-32-bytes"
FINISHED = ("succeeded", "failed", "partially_failed", "cancelled")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbedServer:
    """``scenedex embed-server`` on a free loopback port, logging to ``log_path``."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                scenedex_command("embed-server", "--host", "127.0.0.1", "--port", str(self.port)),
                env=dict(env),
                cwd=log_path.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 180.0) -> None:
        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"embed-server exited:\n{self.log_path.read_text()[-4000:]}")
            try:
                return httpx.get(f"{self.url}/health", timeout=2, trust_env=False).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, timeout, "the embedding service to answer /health", interval=0.3)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)


def base_env(root: Path, database_url: str, redis_url: str) -> dict[str, str]:
    """The settings every process of the stack shares (no other ``SCENEDEX_*`` leaks in)."""
    return process_env(
        database_url,
        redis_url,
        root / "media",
        # OCR off, as the conftest sets for the suite: the outage tests are about holds and
        # redeliveries, and OCR's own tests cover it (it would triple a video item's time here).
        SCENEDEX_OCR__ENABLED="false",
        SCENEDEX_EMBED__HMAC_SECRET=SECRET,
        SCENEDEX_WORKER__METRICS_PORT="0",
        SCENEDEX_LOG_LEVEL="INFO",
    )


class OutageStack:
    """The embedding service behind ``embedding`` (an ``OutageProxy``), the worker's settings
    (``env``: ``base_env`` + the http backend on the proxy + ``settings``), the worker (one at
    a time: ``start_worker``), and the database, blob store and Redis seen from the test."""

    def __init__(self, root: Path, database_url: str, redis_url: str, settings: Mapping[str, str]) -> None:
        self.root = root
        (root / "media").mkdir(parents=True, exist_ok=True)
        self.database_url = database_url
        self.redis_url = redis_url
        common = base_env(root, database_url, redis_url)
        self.embed = EmbedServer(common, root / "embed-server.log")
        self.embedding = OutageProxy(self.embed.url)
        self.env = {
            **common,
            "SCENEDEX_EMBEDDER__BACKEND": "http",
            "SCENEDEX_EMBEDDER__URL": self.embedding.url,
            **settings,
        }
        self.engine = create_engine(database_url)
        self.uow_factory = SqlUnitOfWorkFactory(self.engine)
        self.blobs = FsspecBlobStore(str(root / "media"))
        self.redis = redis.Redis.from_url(redis_url)
        self._broker: Any = None  # the stack's own broker, built on first send (sending_to_stack)
        self.worker: WorkerProcess | None = None
        self.workers_started = 0
        self.state: dict[str, Any] = {}  # what ordered test steps pass on

    # -- processes ----------------------------------------------------------------------------

    def start_worker(self, **env: str) -> WorkerProcess:
        """A ``scenedex worker`` (one process, one thread unless ``env`` says otherwise), ready."""
        assert self.worker is None or not self.worker.alive(), "one worker at a time"
        self.workers_started += 1
        log = self.root / f"worker-{self.workers_started}.log"
        self.worker = WorkerProcess({**self.env, **env}, log, "--processes", "1")
        self.worker.wait_ready()
        return self.worker

    def ensure_worker(self) -> WorkerProcess:
        if self.worker is None or not self.worker.alive():
            return self.start_worker()
        return self.worker

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop(timeout=30)
            self.worker = None

    def close(self) -> None:
        self.stop_worker()
        self.embedding.close()
        self.embed.stop()
        self.engine.dispose()

    # -- libraries ----------------------------------------------------------------------------

    def library(
        self, videos: int, scenes: int, *, seed: int = 0, size: tuple[int, int] = (320, 180)
    ) -> tuple[uuid.UUID, list[Video]]:
        """A fresh owner with one person (one photo) and ``videos`` synthetic videos."""
        owner_id = new_id()
        add_astronaut(self.uow_factory, self.blobs, owner_id)
        made = [
            add_synthetic_video(
                self.uow_factory, self.blobs, owner_id, scenes, seed=seed + 1000 * v, size=size
            )[0]
            for v in range(videos)
        ]
        return owner_id, made

    def corrupt_keyframe(self, video_id: uuid.UUID) -> uuid.UUID:
        """Overwrite the first keyframe of the video with bytes that are no image; its scene id."""
        with self.engine.connect() as connection:
            scene_id, uri = connection.execute(
                sa.select(t.scenes.c.id, t.scenes.c.keyframe_uri)
                .where(t.scenes.c.video_id == video_id)
                .order_by(t.scenes.c.ordinal)
                .limit(1)
            ).one()
        Path(urlsplit(uri).path).write_bytes(b"this is not a jpeg, the disk ate it")
        return uuid.UUID(str(scene_id))

    # -- jobs ---------------------------------------------------------------------------------

    def runtime(self) -> Any:
        """A job runtime in this process (no services) on the stack's database and Redis."""
        from scenedex.settings import Settings
        from scenedex.tasks.queue import build_runtime

        return build_runtime(
            Settings(database_url=self.database_url, redis_url=self.redis_url), engine=self.engine
        )

    @contextlib.contextmanager
    def sending_to_stack(self) -> Iterator[None]:
        """Messages sent meanwhile go to the stack's own Redis, where its worker listens.

        The actors are declared on dramatiq's global broker, which in a whole-suite run is the
        one an earlier test installed on the tests' shared Redis: a message sent through it
        would never reach this stack's worker (the sweeper re-sends a job's planner message
        from Postgres, but an upload's ``embed_video`` would be lost). Each declared actor is
        bound to a broker on ``redis_url`` for the block, then bound back."""
        import dramatiq

        from scenedex.settings import Settings
        from scenedex.tasks.broker import build_broker

        if self._broker is None:
            self._broker = build_broker(Settings(database_url=self.database_url, redis_url=self.redis_url))
        declared = dramatiq.get_broker()
        actors = [declared.get_actor(name) for name in declared.get_declared_actors()]
        bound = [(actor, actor.broker) for actor in actors]
        for actor in actors:
            actor.broker = self._broker
        try:
            yield
        finally:
            for actor, broker in bound:
                actor.broker = broker

    def enqueue_owner(self, owner_id: uuid.UUID) -> uuid.UUID:
        """An owner job under the running worker's spec, its planner message sent."""
        from scenedex.domain.jobs import JobTrigger
        from scenedex.domain.request import ReprocessRequest, ReprocessScope

        assert self.worker is not None
        request = ReprocessRequest(ReprocessScope.OWNER, owner_id=owner_id)
        with self.sending_to_stack():
            job = self.runtime().coordinator.enqueue(request, self.worker.spec_version(), JobTrigger.CLI)
        return job.id  # type: ignore[no-any-return]

    def send_embed(self, video_id: uuid.UUID, owner_id: uuid.UUID) -> None:
        """``embed_video`` for a video (an upload), after marking it ``embedding``."""
        with self.engine.begin() as connection:
            connection.execute(
                sa.update(t.videos).where(t.videos.c.id == video_id).values(status="embedding")
            )
        with self.sending_to_stack():
            self.runtime().sender.send_embed(video_id, owner_id)

    def video_status(self, video_id: uuid.UUID) -> str:
        with self.engine.connect() as connection:
            return str(
                connection.execute(sa.select(t.videos.c.status).where(t.videos.c.id == video_id)).scalar_one()
            )

    def wait_job(self, job_id: uuid.UUID, timeout: float = 180.0) -> Any:
        def over() -> Any:
            row = job_row(self.engine, job_id)
            return row if row.status in FINISHED else None

        try:
            return wait_for(over, timeout, f"job {job_id} to finish", interval=0.2)
        except AssertionError:
            log = self.worker.log()[-6000:] if self.worker else ""
            raise AssertionError(f"job {job_id} not over after {timeout} s:\n{log}") from None

    def items(self, job_id: uuid.UUID) -> list[Any]:
        return job_items(self.engine, job_id)

    def items_by_status(self, job_id: uuid.UUID, kind: str = "video") -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.items(job_id):
            if item.kind == kind:
                counts[item.status] = counts.get(item.status, 0) + 1
        return counts

    # -- the CLI ------------------------------------------------------------------------------

    def cli(
        self, *args: str, expect: int | None = 0, timeout: float = 120, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``scenedex ARGS`` under the worker's settings (plus ``env``)."""
        result = run_cli({**self.env, **(env or {})}, *args, cwd=self.root, timeout=timeout)
        if expect is not None:
            assert result.returncode == expect, (
                args,
                result.returncode,
                result.stdout,
                result.stderr[-3000:],
            )
        return result

    def cli_json(self, *args: str, expect: int | None = 0, env: Mapping[str, str] | None = None) -> Any:
        return json.loads(self.cli(*args, "--json", expect=expect, env=env).stdout)

    def job_status(self, job_id: uuid.UUID) -> dict[str, Any]:
        """``scenedex jobs status JOB --json`` (exit 0 while the job runs)."""
        return dict(self.cli_json("jobs", "status", str(job_id), expect=None))

    def dry_run(self, owner_id: uuid.UUID) -> dict[str, Any]:
        """``scenedex reprocess --scope owner --dry-run --json`` under the worker's settings:
        per step what is current, stale or missing (the embedding service must answer)."""
        return dict(self.cli_json("reprocess", "--scope", "owner", "--owner-id", str(owner_id), "--dry-run"))


def wait_until(condition: Any, timeout: float, what: str, interval: float = 0.1) -> float:
    """``wait_for`` that returns the monotonic time the condition held."""
    wait_for(condition, timeout, what, interval)
    return time.monotonic()
