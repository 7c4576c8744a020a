"""Fixtures for the OpenSearch adapter tests: an ``osmem-server`` (an in-memory
OpenSearch-compatible server from PyPI, no kNN) started once per session on a free port, one
clone of it per test, and a harness wiring the runner to the adapter over a SQLite database.

Import the fixtures into a test module: ``from tests.opensearch_fixtures import osmem, os_world``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from opensearchpy import OpenSearch

from scenedex.adapters.db.repositories import SqlUnitOfWorkFactory
from scenedex.adapters.opensearch import (
    IndexLayout,
    IndexNames,
    OpenSearchIndex,
    make_client,
    sql_scene_counts,
)
from scenedex.domain.reprocess import ReprocessRunner
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.domain.spec import ReprocessSpec
from tests.conftest import World, make_inputs
from tests.fakes import FakeFaceEmbedder, FakeImageEmbedder, FakeTextEmbedder, InMemoryBlobStore


@pytest.fixture(scope="session")
def osmem() -> Iterator[Any]:
    """A running osmem-server (``OsmemServer``) on a free loopback port; the tests skip with
    the reason when the package is missing or the server cannot start."""
    try:
        from osmem_server import OsmemError, OsmemServer
    except ImportError:
        pytest.skip("osmem-server is not installed (it is in the dev extra: pip install -e '.[dev]')")
    try:
        server = OsmemServer.start(japanese=False, addr="127.0.0.1:0", startup_timeout=30)
    except (OsmemError, OSError) as error:
        pytest.skip(f"osmem-server could not start: {error}")
    yield server
    server.close()


@pytest.fixture
def os_client(osmem: Any) -> Iterator[OpenSearch]:
    """A client on a fresh clone of the (empty) base cluster: every test starts with nothing."""
    clone = osmem.clone()
    yield make_client(clone.url, max_retries=0, timeout_s=10)
    clone.close()


@dataclass
class OsWorld:
    """The runner's ports over SQLite, fake embedders and OpenSearch (one spec per runner, the
    adapter's layout derived from it)."""

    world: World
    engine: sa.Engine
    client: OpenSearch
    names: IndexNames

    def spec(self, **changes: Any) -> ReprocessSpec:
        w = self.world
        return ReprocessSpec.latest(make_inputs(w.clip, w.text, w.faces, **changes))

    def layout(self, spec: ReprocessSpec) -> IndexLayout:
        return IndexLayout.from_spec(
            spec, self.names, text_dim=self.world.text.dim, clip_dim=self.world.clip.dim
        )

    def index(self, spec: ReprocessSpec, **options: Any) -> OpenSearchIndex:
        options.setdefault("scene_counts", lambda: sql_scene_counts(self.engine))
        options.setdefault("initial_backoff", 0.01)
        return OpenSearchIndex(self.client, self.layout(spec), **options)

    def runner(self, spec: ReprocessSpec, index: Any, batch_size: int = 2) -> ReprocessRunner:
        return self.world.runner(batch_size, spec=spec, index=index)

    def run_all(self, spec: ReprocessSpec, index: Any, batch_size: int = 2) -> Any:
        return self.runner(spec, index, batch_size).run(ReprocessRequest(ReprocessScope.ALL))

    def library(self, owners: int = 1, videos: int = 2, scenes: int = 3) -> list[uuid.UUID]:
        """``owners`` owners with ``videos`` videos of ``scenes`` scenes each (texts differ)."""
        owner_ids = []
        for o in range(owners):
            owner = uuid.uuid4()
            owner_ids.append(owner)
            for v in range(videos):
                frames = [f"frame-{o}-{v}-{s}".encode() for s in range(scenes)]
                texts = [f"owner {o} video {v} scene {s} bicycle" for s in range(scenes)]
                self.world.add_video(owner, frames, texts)
        return owner_ids


def fake_world(engine: sa.Engine) -> World:
    """A world on ``engine`` with fake embedders and no index of its own (each test gives one)."""
    return World(
        SqlUnitOfWorkFactory(engine),
        InMemoryBlobStore(),
        None,
        FakeImageEmbedder(),
        FakeTextEmbedder(),
        FakeFaceEmbedder(),
    )


@pytest.fixture
def os_world(sqlite_engine: sa.Engine, os_client: OpenSearch) -> OsWorld:
    return OsWorld(fake_world(sqlite_engine), sqlite_engine, os_client, IndexNames("t-"))


class WorkerKilled(Exception):
    """Stands for a worker killed in the middle of a reprocess."""


class InterruptedIndex:
    """Delegates to an index, and dies like a killed worker on upsert number ``after + 1``."""

    def __init__(self, inner: OpenSearchIndex, after: int) -> None:
        self.inner = inner
        self.after = after
        self.upserts = 0

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return getattr(self.inner, name)  # type: ignore[no-any-return]

    def upsert(self, documents: Any) -> Any:
        if self.upserts == self.after:
            raise WorkerKilled(f"killed before upsert {self.after + 1}")
        self.upserts += 1
        return self.inner.upsert(documents)
