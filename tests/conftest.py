"""Shared fixtures: real Postgres and SQLite databases (migrated with Alembic) and a ``world``
harness that runs the same runner scenarios over the in-memory fakes and both databases."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from scenedex.adapters.db.engine import create_engine
from scenedex.adapters.db.migrate import upgrade
from scenedex.adapters.db.repositories import SqlUnitOfWorkFactory
from scenedex.adapters.db.search_index import TableSearchIndex
from scenedex.adapters.db.tables import metadata
from scenedex.domain.model import Person, PersonPhoto, Scene, Video, new_id
from scenedex.domain.reprocess import ReprocessRunner
from scenedex.domain.spec import ReprocessSpec, SpecInputs
from scenedex.services.ingest import keyframe_key
from tests.fakes import (
    FakeFaceEmbedder,
    FakeImageEmbedder,
    FakeTextEmbedder,
    InMemoryBlobStore,
    InMemorySearchIndex,
    InMemoryStore,
)

# The tests' broker: Redis database 15, flushed by the tests that use it (set before
# ``scenedex.tasks`` is first imported, which binds the actors to it).
os.environ.setdefault("SCENEDEX_REDIS_URL", "redis://127.0.0.1:6379/15")

REAL_MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/scenedex_test"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of a Postgres database the tests may wipe (SCENEDEX_TEST_DATABASE_URL). Skipped when
    unreachable, unless SCENEDEX_REQUIRE_POSTGRES=1 (CI), which makes that a failure."""
    url = os.environ.get("SCENEDEX_TEST_DATABASE_URL", DEFAULT_PG_URL)
    try:
        with create_engine(url).connect() as connection:
            connection.execute(sa.text("select 1"))
    except sa.exc.OperationalError as error:
        message = f"Postgres not reachable at {url}: {str(error).splitlines()[0]}"
        if os.environ.get("SCENEDEX_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The tests' Redis (SCENEDEX_REDIS_URL, database 15); skipped or failed like Postgres."""
    import redis

    url = os.environ["SCENEDEX_REDIS_URL"]
    try:
        redis.Redis.from_url(url).ping()
    except redis.exceptions.ConnectionError as error:
        message = f"Redis not reachable at {url}: {error}"
        if os.environ.get("SCENEDEX_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def postgres_engine(postgres_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        metadata.drop_all(connection)
        connection.execute(sa.text("drop table if exists alembic_version"))
    upgrade(engine)
    yield engine
    engine.dispose()


def truncate_all(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'scenedex.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def sql_engine(request: pytest.FixtureRequest) -> sa.Engine:
    """A migrated, empty database: SQLite file or the shared Postgres test database."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_engine")
    engine = request.getfixturevalue("postgres_engine")
    truncate_all(engine)
    return engine


def make_inputs(clip: Any, text: Any, faces: Any, **changes: Any) -> SpecInputs:
    inputs = SpecInputs(
        clip_model_id=clip.model_id,
        clip_preprocessing=clip.preprocessing_id,
        text_model_id=text.model_id,
        face_model_id=faces.model_id,
        face_detection=faces.detection_id,
    )
    return replace(inputs, **changes)


@dataclass
class World:
    """Ports wired for a runner test, plus helpers to add source rows."""

    uow_factory: Any
    blobs: InMemoryBlobStore
    index: Any
    clip: FakeImageEmbedder
    text: FakeTextEmbedder
    faces: FakeFaceEmbedder

    def runner(
        self,
        batch_size: int = 4,
        *,
        spec: ReprocessSpec | None = None,
        index: Any = None,
        **spec_changes: Any,
    ) -> ReprocessRunner:
        """A runner on this world's fakes; ``spec`` (default: the latest for the fakes with
        ``spec_changes``) and ``index`` (default: the world's) may be given."""
        if spec is None:
            spec = ReprocessSpec.latest(make_inputs(self.clip, self.text, self.faces, **spec_changes))
        return ReprocessRunner(
            uow_factory=self.uow_factory,
            blobs=self.blobs,
            image_embedder=self.clip,
            text_embedder=self.text,
            face_embedder=self.faces,
            search_index=self.index if index is None else index,
            spec=spec,
            batch_size=batch_size,
        )

    def add_video(
        self,
        owner_id: uuid.UUID,
        keyframes: Sequence[bytes | None],
        transcripts: Sequence[str] | None = None,
    ) -> tuple[Video, list[Scene]]:
        """A video with one scene per keyframe (None: the keyframe blob is never written)."""
        video = Video(
            id=new_id(), owner_id=owner_id, title="t", source_uri="memory://v", duration_s=len(keyframes)
        )
        scenes = []
        for i, data in enumerate(keyframes):
            key = keyframe_key(owner_id, video.id, i)
            uri = self.blobs.write(key, data) if data is not None else f"memory://blobs/{key}"
            scenes.append(
                Scene(
                    id=new_id(),
                    video_id=video.id,
                    owner_id=owner_id,
                    ordinal=i,
                    start_s=float(i),
                    end_s=float(i + 1),
                    keyframe_uri=uri,
                    keyframe_sha256=hashlib.sha256(data or b"").hexdigest(),
                    transcript=(transcripts[i] if transcripts else f"scene {i} words"),
                    summary="",
                )
            )
        with self.uow_factory() as uow:
            uow.videos.add(video)
            uow.scenes.add_many(scenes)
            uow.commit()
        return video, scenes

    def add_person(self, owner_id: uuid.UUID, name: str, photos: Sequence[bytes]) -> Person:
        person = Person(id=new_id(), owner_id=owner_id, name=name)
        with self.uow_factory() as uow:
            uow.persons.add(person)
            for data in photos:
                photo_id = new_id()
                uri = self.blobs.write(f"owners/{owner_id}/persons/{person.id}/{photo_id}.png", data)
                uow.persons.add_photo(
                    PersonPhoto(photo_id, person.id, owner_id, uri, hashlib.sha256(data).hexdigest())
                )
            uow.commit()
        return person


@pytest.fixture(
    params=[
        "memory",
        pytest.param("sqlite", marks=pytest.mark.integration),
        pytest.param("postgres", marks=pytest.mark.integration),
    ]
)
def world(request: pytest.FixtureRequest) -> World:
    """The same ports over three backends: in-memory fakes, SQLite and Postgres."""
    if request.param == "memory":
        uow_factory: Any = InMemoryStore()
        index: Any = InMemorySearchIndex()
    else:
        if request.param == "sqlite":
            engine = request.getfixturevalue("sqlite_engine")
        else:
            engine = request.getfixturevalue("postgres_engine")
            truncate_all(engine)
        uow_factory = SqlUnitOfWorkFactory(engine)
        index = TableSearchIndex(engine)
    return World(
        uow_factory, InMemoryBlobStore(), index, FakeImageEmbedder(), FakeTextEmbedder(), FakeFaceEmbedder()
    )


@pytest.fixture
def harness(postgres_engine: sa.Engine, redis_url: str) -> Iterator[Any]:
    """A ``tests.job_harness.Harness`` on a wiped Postgres and Redis database 15."""
    from tests.job_harness import Harness

    truncate_all(postgres_engine)
    h = Harness(postgres_engine, redis_url)
    h.redis.flushdb()
    yield h
    h.stop_worker()
    h.redis.flushdb()
    from scenedex.tasks import runtime

    runtime.install(None)


def cli_json(*args: str, timeout: float = 300, **env_vars: str) -> Any:
    """Run ``scenedex *args --json`` in a subprocess, offline and with explicitly untrained CLIP
    weights (plus ``env_vars``); assert exit 0 and return the parsed JSON of stdout."""
    env = {**os.environ, "SCENEDEX_CLIP__PRETRAINED": "none", "HF_HUB_OFFLINE": "1", **env_vars}
    result = subprocess.run(
        [sys.executable, "-m", "scenedex.scripts.cli", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr[-3000:])
    return json.loads(result.stdout)
