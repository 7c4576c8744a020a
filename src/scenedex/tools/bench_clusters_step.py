"""The FACE_CLUSTERS step of ``bench_clusters`` on Postgres: a fresh owner with synthetic faces in
scene face records (``FACES_PER_SCENE`` per scene), then ``FaceClusterStep.run`` first (full),
again (no-op) and after 1 % more scenes (incremental), with the sizes of the stored state."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from scenedex.adapters.face_clustering import DbscanFaceClusterer
from scenedex.domain.face_clusters import (
    ClusterSettings,
)
from scenedex.tools.bench_cluster_faces import (
    FACES_PER_SCENE,
    INCREMENTAL_SHARE,
    Generator,
    measure,
    synthetic_faces,
)

# --- the FACE_CLUSTERS step on Postgres -------------------------------------------------------


def measure_step(database_url: str, gen: Generator, say: Callable[[str], None]) -> dict[str, Any]:
    """The FACE_CLUSTERS step on a seeded owner of ``gen.faces`` faces (module docstring)."""
    import sqlalchemy as sa

    from scenedex.adapters.db import migrate
    from scenedex.adapters.db import tables as t
    from scenedex.adapters.db.engine import create_engine
    from scenedex.adapters.db.repositories import SqlUnitOfWorkFactory
    from scenedex.adapters.storage import FsspecBlobStore
    from scenedex.domain.cluster_step import FaceClusterStep
    from scenedex.domain.face_decisions import FaceDecisions
    from scenedex.domain.logcontext import SpecLogger
    from scenedex.domain.progress import ProgressTracker, ReprocessProgress
    from scenedex.domain.spec import EmbeddingStepType, ReprocessSpec, SpecInputs

    engine = create_engine(database_url)
    migrate.upgrade(engine)
    uow_factory: Any = SqlUnitOfWorkFactory(engine)  # the port's UnitOfWork, structurally
    spec = ReprocessSpec.latest(
        SpecInputs("bench-clip", "bench-pre", "bench-text", "bench-dlib", "bench-hog")
    )
    extra = max(FACES_PER_SCENE, int(gen.faces * INCREMENTAL_SHARE))
    faces = synthetic_faces(Generator(**{**asdict(gen), "faces": gen.faces + extra}))
    owner = uuid.uuid4()
    say(f"postgres: seeding {gen.faces} faces ({gen.faces // FACES_PER_SCENE} scenes)...")
    with measure() as seeded:
        _seed(uow_factory, spec, owner, faces.descriptors[: gen.faces], 0)
    step = FaceClusterStep(DbscanFaceClusterer(), ClusterSettings(), FsspecBlobStore("memory://bench"))

    def run(label: str) -> dict[str, Any]:
        say(f"postgres {gen.faces} faces: {label} run...")
        progress = ReprocessProgress(spec.version)
        tracker = ProgressTracker(progress, None, SpecLogger(spec.version))
        with measure() as took:
            step.run(uow_factory, owner, spec, FaceDecisions(), tracker)
        counts = progress.steps[EmbeddingStepType.FACE_CLUSTERS]
        with uow_factory() as uow:
            state = uow.face_clusters.state(owner)
        return {
            **asdict(took),
            "computed": counts.computed,
            "skipped": counts.skipped,
            "full": state.full if state else None,
            "waiting": len(state.waiting) if state else None,
        }

    figures: dict[str, Any] = {"faces": gen.faces, "seed_seconds": seeded.seconds}
    figures["first"] = run("first (full)")
    figures["second"] = run("second (no-op)")
    _seed(uow_factory, spec, owner, faces.descriptors[gen.faces :], gen.faces)
    figures["after_1pct_more"] = {**run("incremental"), "new_faces": extra}
    with engine.connect() as connection:
        state = t.face_clusterings.c
        figures["state_noise_json_bytes"] = connection.scalar(
            sa.select(sa.func.pg_column_size(state.noise)).where(state.owner_id == owner)
        )
        rows = t.face_clusters.c
        size = sa.func.pg_column_size
        total = connection.execute(
            sa.select(
                sa.func.count(),
                sa.func.sum(size(rows.members)),
                sa.func.sum(size(rows.descriptors)),
                sa.func.sum(size(sa.text("face_clusters.*"))),
            ).where(rows.owner_id == owner)
        ).one()
    figures["face_clusters"] = {
        "rows": total[0],
        "members_json_bytes": int(total[1] or 0),
        "descriptors_bytes": int(total[2] or 0),
        "row_bytes": int(total[3] or 0),
    }
    engine.dispose()
    return figures


def _seed(uow_factory: Any, spec: Any, owner: uuid.UUID, descriptors: np.ndarray, start: int) -> None:
    """One video per call, ``FACES_PER_SCENE`` unmatched faces per scene, in one transaction."""
    from scenedex.domain.model import EmbeddingRecord, Scene, Video
    from scenedex.domain.spec import EmbeddingStepType

    step = EmbeddingStepType.SCENE_PERSON_EMBEDDINGS
    video = Video(uuid.uuid4(), owner, f"bench {start}", f"file:///bench/{start}.mp4", 0.0)
    scenes, records = [], []
    for ordinal, first in enumerate(range(0, len(descriptors), FACES_PER_SCENE)):
        rows = descriptors[first : first + FACES_PER_SCENE]
        scene = Scene(
            uuid.uuid4(), video.id, owner, ordinal, 2.0 * ordinal, 2.0 * ordinal + 2,
            f"file:///bench/{start}-{ordinal}.jpg", f"{start}-{ordinal}",
        )  # fmt: skip
        entries = [
            {"bbox": [10, 10, 60, 60], "person_id": None, "distance": None,
             "first_s": scene.start_s, "last_s": scene.end_s, "best_s": scene.start_s + 1}
            for _ in rows
        ]  # fmt: skip
        scenes.append(scene)
        records.append(
            EmbeddingRecord(
                owner_id=owner,
                subject_id=scene.id,
                key="",
                vector=np.asarray(rows, np.float32),
                model_id="bench-dlib",
                spec_version=spec.version,
                fingerprint=spec.fingerprint(step),
                input_hash=f"bench-{scene.id}",
                payload={"faces": entries},
            )
        )
    with uow_factory() as uow:
        uow.videos.add(video)
        uow.scenes.add_many(scenes)
        uow.records.upsert(step, records)
        uow.commit()
