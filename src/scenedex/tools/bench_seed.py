"""The bench's no-op seeding: a second, large owner whose records are all current under the real
spec (stand-in embedders return hashed vectors with the real models' identities), and the timed
no-op reprocess of it. Times are wall seconds (``time.perf_counter``)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from scenedex.adapters.db.migrate import upgrade
from scenedex.adapters.storage import FsspecBlobStore
from scenedex.application import Services, build_services
from scenedex.domain.errors import BadInputError
from scenedex.domain.model import DetectedFace, l2_normalise, new_id
from scenedex.domain.ports import FaceEmbedder, ImageEmbedder, TextEmbedder
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.settings import Settings
from scenedex.tools.bench_library import (
    SCENES_PER_VIDEO,
    SEED_BATCH_SIZE,
    SEED_ROUND,
    ListenerFactory,
    keyframe,
    video_rows,
)
from scenedex.tools.bench_measure import chunked, embedding_dim, timed_reprocess
from scenedex.tools.machine import machine

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- no-op seeding


def _hashed(data: bytes | str, dim: int) -> np.ndarray:
    """A deterministic ``(dim,)`` float32 unit vector from the SHA-256 of ``data``."""
    raw = data.encode() if isinstance(data, str) else data
    digest = hashlib.sha256(raw).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    return l2_normalise(rng.standard_normal(dim).astype(np.float32))


class StandInImageEmbedder:
    """Reports the real CLIP embedder's identity (``model_id``, ``preprocessing_id``, ``dim``)
    but returns hashed ``(dim,)`` vectors: records it produces are current under the real spec
    while carrying meaningless vectors. For seeding the bench database only."""

    def __init__(self, real: ImageEmbedder) -> None:
        self._real = real
        self.dim = embedding_dim(real)

    @property
    def model_id(self) -> str:
        return self._real.model_id

    @property
    def preprocessing_id(self) -> str:
        return self._real.preprocessing_id

    def embed_images(self, images: Sequence[bytes]) -> list[np.ndarray | BadInputError]:
        return [_hashed(data, self.dim) for data in images]

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([_hashed(text, self.dim) for text in texts])


class StandInTextEmbedder:
    """The real text embedder's ``model_id`` and ``dim`` with hashed ``(n, dim)`` vectors."""

    def __init__(self, real: TextEmbedder) -> None:
        self._real = real
        self.dim = embedding_dim(real)

    @property
    def model_id(self) -> str:
        return self._real.model_id

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([_hashed(text, self.dim) for text in texts])


class StandInFaceEmbedder:
    """The real face embedder's ``model_id`` and ``detection_id``; finds no face anywhere."""

    def __init__(self, real: FaceEmbedder) -> None:
        self._real = real

    @property
    def model_id(self) -> str:
        return self._real.model_id

    @property
    def detection_id(self) -> str:
        return self._real.detection_id

    def detect_faces(self, images: Sequence[bytes]) -> list[list[DetectedFace] | BadInputError]:
        return [[] for _ in images]


def seed_current_library(
    services: Services,
    blobs: FsspecBlobStore,
    scenes: int,
    listener_factory: ListenerFactory,
) -> tuple[uuid.UUID, float]:
    """A fresh owner with ``scenes`` scenes whose records are all current, made in rounds of
    ``SEED_ROUND`` scenes: rows through the repositories (every scene points at ONE shared small
    keyframe blob), the real runner with ``batch_size=1000`` and the stand-in embedders, then
    ``ANALYZE``. Returns ``(owner id, seconds)``."""
    started = time.perf_counter()
    owner_id = new_id()
    data = keyframe(0, None, size=(320, 180))
    shared = (blobs.write(f"owners/{owner_id}/shared/keyframe.jpg", data), hashlib.sha256(data).hexdigest())
    seeder = _seeding_services(services)
    request = ReprocessRequest(ReprocessScope.OWNER, owner_id=owner_id)
    rows = video_rows(owner_id, scenes, lambda _index, _video: shared)
    with listener_factory() as listener:
        for videos in chunked(rows, SEED_ROUND // SCENES_PER_VIDEO):
            for chunk in chunked(videos, 50):
                with services.uow_factory() as uow:
                    for video, video_scenes in chunk:
                        uow.videos.add(video)
                        uow.scenes.add_many(video_scenes)
                    uow.commit()
            seeder.runner().run(request, listener=listener)
            with services.engine.begin() as connection:
                connection.execute(sa.text("ANALYZE"))
    return owner_id, time.perf_counter() - started


def measure_noop(
    base: Settings,
    database_url: str,
    scenes: int,
    *,
    runs: int = 3,
    storage_url: str | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Seed ``scenes`` current scenes for a fresh owner in ``database_url`` (migrated first;
    blobs under ``storage_url``, default a temporary folder) with ``seed_current_library``,
    then time ``runs`` no-op reprocesses of that owner, with ``base``'s models (their ids
    only: no model is loaded, the seeding uses stand-in vectors). E.g. from a shell:
    ``measure_noop(Settings(), "postgresql+psycopg://...", 100_000)``.

    Returns ``{"cpu_model", "cpus", "database", "scenes", "owner_id", "seed_seconds",
    "noop_seconds": [per run, wall seconds], "computed": [items per run, expected 0]}``."""
    with tempfile.TemporaryDirectory(prefix="scenedex-noop-") as folder:
        storage = storage_url or str(Path(folder) / "media")
        settings = base.model_copy(update={"database_url": database_url, "storage_url": storage})
        blobs = FsspecBlobStore(storage)
        services = build_services(settings, blobs=blobs)
        upgrade(services.engine)
        say(f"seeding {scenes} current scenes...")
        owner_id, seed_seconds = seed_current_library(services, blobs, scenes, _no_listener)
        seconds, computed = [], []
        for _ in range(runs):
            figures = timed_reprocess(services, owner_id, scenes, _no_listener)
            seconds.append(figures.seconds)
            computed.append(figures.computed)
            say(f"no-op over {scenes} scenes: {figures.seconds:.2f} s ({figures.computed} computed)")
        services.engine.dispose()
    cpu = machine()
    return {
        "cpu_model": cpu["cpu_model"],
        "cpus": cpu["cpus"],
        "database": make_url(database_url).render_as_string(hide_password=True),
        "scenes": scenes,
        "owner_id": str(owner_id),
        "seed_seconds": round(seed_seconds, 1),
        "noop_seconds": seconds,
        "computed": computed,
    }


def _no_listener() -> AbstractContextManager[Any]:
    return contextlib.nullcontext()


def _seeding_services(services: Services) -> Services:
    """``services`` with the stand-in embedders and runner batches of ``SEED_BATCH_SIZE``;
    raises ``RuntimeError`` unless its spec equals the real one."""
    settings = services.settings
    batch = settings.reprocess.model_copy(update={"batch_size": SEED_BATCH_SIZE})
    seeder = build_services(
        settings.model_copy(update={"reprocess": batch}),
        engine=services.engine,
        blobs=services.blobs,
        search_index=services.search_index,
        image_embedder=StandInImageEmbedder(services.image_embedder),
        text_embedder=StandInTextEmbedder(services.text_embedder),
        face_embedder=StandInFaceEmbedder(services.face_embedder),
    )
    if seeder.spec.version != services.spec.version:
        raise RuntimeError(f"stand-in spec {seeder.spec.version} differs from {services.spec.version}")
    return seeder
