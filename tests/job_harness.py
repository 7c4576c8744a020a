"""The job harness shared by the worker, API and scheduler tests: a runtime on real Postgres
and Redis with the fake embedders, an in-process Dramatiq worker, and a small library."""

from __future__ import annotations

import time
import uuid
from typing import Any

import dramatiq
import redis
import sqlalchemy as sa

from scenedex.adapters.db import tables as t
from scenedex.domain.jobs import JobTrigger
from scenedex.domain.request import ReprocessRequest
from scenedex.settings import Settings
from tests.conftest import World
from tests.fakes import (
    FakeFaceEmbedder,
    FakeImageEmbedder,
    FakeTextEmbedder,
    InMemoryBlobStore,
    face_image,
)

OWNER = uuid.UUID("00000000-0000-0000-0000-0000000000a1")


class Harness:
    """A runtime on Postgres + Redis with fake embedders, held by a ``TaskRuntime`` middleware
    on the tests' broker (where the actors find it; ``close`` removes it), and an in-process
    worker."""

    def __init__(self, engine: sa.Engine, redis_url: str, **setting_fields: Any) -> None:
        """``setting_fields``: ``Settings`` fields for this runtime (``breakers=BreakerSettings(...)``)."""
        from scenedex.adapters.db.repositories import SqlUnitOfWorkFactory
        from scenedex.adapters.db.search_index import TableSearchIndex
        from scenedex.application import build_services
        from scenedex.tasks.queue import build_runtime
        from scenedex.tasks.runtime import TaskRuntime

        self.engine = engine
        self.redis = redis.Redis.from_url(redis_url)
        self.world = World(
            SqlUnitOfWorkFactory(engine),
            InMemoryBlobStore(),
            TableSearchIndex(engine),
            FakeImageEmbedder(),
            FakeTextEmbedder(),
            FakeFaceEmbedder(),
        )
        settings = Settings(database_url=str(engine.url), redis_url=redis_url, **setting_fields)
        services = build_services(
            settings,
            engine=engine,
            uow_factory=self.world.uow_factory,
            blobs=self.world.blobs,
            image_embedder=self.world.clip,
            text_embedder=self.world.text,
            face_embedder=self.world.faces,
            search_index=self.world.index,
        )
        self.runtime = build_runtime(settings, services)  # installs the tests' broker if none is set
        self.middleware = TaskRuntime(self.runtime)
        dramatiq.get_broker().add_middleware(self.middleware)
        self.coordinator = self.runtime.coordinator
        self.store = self.coordinator.store
        self.worker: dramatiq.Worker | None = None

    def start_worker(self) -> None:
        self.worker = dramatiq.Worker(dramatiq.get_broker(), worker_threads=1, worker_timeout=100)
        self.worker.start()

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None

    def close(self) -> None:
        """Stop the worker and take the runtime off the broker."""
        self.stop_worker()
        broker = dramatiq.get_broker()
        if self.middleware in broker.middleware:
            broker.middleware.remove(self.middleware)

    def enqueue(self, request: ReprocessRequest) -> uuid.UUID:
        """Create the job and send its planner message (no scope check: an unknown video is
        found by the planner, as the job tests want)."""
        return self.coordinator.enqueue(request, self.spec_version, JobTrigger.CLI).id

    @property
    def spec_version(self) -> str:
        assert self.runtime.services is not None
        return self.runtime.services.spec.version

    def wait(self, job_id: uuid.UUID, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.store.get(job_id)
            if job is not None and not job.status.active:
                return self.store.summary(job_id)
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} still {self.store.get(job_id)} after {timeout} s")

    def records(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every derived record (and search document) as comparable tuples."""
        snapshot = {}
        with self.engine.connect() as connection:
            for step, table in t.RECORD_TABLES.items():
                rows = connection.execute(
                    sa.select(
                        table.c[0], table.c.key, table.c.fingerprint, table.c.input_hash, table.c.vector
                    )
                )
                snapshot[step.value] = sorted(tuple(row) for row in rows)
            docs = t.search_documents.c
            rows = connection.execute(sa.select(docs.scene_id, docs.fingerprint, docs.input_hash))
            snapshot["documents"] = sorted(tuple(row) for row in rows)
        return snapshot


def library(world: World, videos: int = 3, scenes: int = 3) -> list[uuid.UUID]:
    world.add_person(OWNER, "alice", [face_image("alice", salt="p1")])
    ids = []
    for v in range(videos):
        keyframes = [face_image(*(["alice"] if s == 0 else []), salt=f"{v}-{s}") for s in range(scenes)]
        video, _ = world.add_video(OWNER, keyframes)
        ids.append(video.id)
    return ids
