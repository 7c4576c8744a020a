"""Suggested persons at scale (issue 19): DBSCAN over tens of thousands of unknown faces of one
owner, on synthetic faces that look like dlib's, and the whole FACE_CLUSTERS step on Postgres.

``python -m scenedex.tools.bench_clusters [--faces 10000 30000 100000] [--identities N]
[--database-url URL] [--json]``

**Faces** (``synthetic_faces``): ``identities`` identities whose centroids are random unit
vectors of one cone (two centroids ~0.55-0.65 apart, the closest pairs ~0.5: dlib's "different
people 0.5-0.6+"); each identity has at least ``min_faces`` faces and the rest are shared out
by a Zipf law of exponent ``zipf`` (1: a few main characters hold most faces; 0: even). A face
is its centroid plus Gaussian noise, at a distance drawn uniformly from ``FACE_RADIUS``, so two
faces of one identity are ~0.2-0.35 apart. ``noise_share`` of the faces are singletons (each
its own centroid). Descriptors are unit float32 rows. The generator's measured distances are in
the output (``generator``).

**Figures per size** (``sizes[n]``): ``full`` (``DbscanFaceClusterer`` + ``cluster_faces``,
the step's full clustering), ``incremental`` (``assign_incrementally`` of 1 % more faces from
the same identities onto those clusters), ``quality`` (adjusted Rand index of the clusters vs
the identities over the faces of identities, DBSCAN noise counted as singletons; clusters vs
identities) and ``variants`` (the same faces through other sklearn settings, labels only).
Peak RSS is the process's high-water mark (``/proc/self/status`` VmHWM, reset through
``/proc/self/clear_refs`` before each measurement; ``ru_maxrss`` where that is unavailable)
less the RSS when the measurement started (after ``gc.collect`` and glibc's ``malloc_trim``:
memory an earlier measurement freed would otherwise hide the next one's peak): every
allocation (numpy, sklearn's C++ and Python objects), not only numpy's.

**Postgres** (``--database-url``): a fresh owner with the faces in scene face records
(``FACES_PER_SCENE`` per scene), then ``FaceClusterStep.run``: first run (full), second run
(no-op), a run after 1 % more scenes (incremental), with the sizes of the stored state.
Thumbnails are off (no keyframes): the real step also crops one per new suggestion.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import logging
import re
import resource
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scenedex.adapters.face_clustering import DbscanFaceClusterer
from scenedex.domain.face_clusters import (
    ClusterSettings,
    FaceCluster,
    UnmatchedFace,
    assign_incrementally,
    cluster_faces,
)

DIMENSIONS = 128
FACE_RADIUS = (0.14, 0.25)
"""Distance of a face from its identity's centroid (uniform): two faces of one identity are
then sqrt(r1² + r2²) ~ 0.2-0.35 apart (dlib, same person: 0.02-0.21 in one shot, more across
shots and lighting)."""
RSS_METHOD = "VmHWM reset via /proc/self/clear_refs, minus RSS at start after gc + malloc_trim"
INCREMENTAL_SHARE = 0.01
FACES_PER_SCENE = 2
SLOW_VARIANTS_MAX = 10_000
"""Largest size the slow variants run at (ball_tree: 54 s, HDBSCAN: 29 s at 10k, both worse
than quadratic above)."""


@dataclass(frozen=True)
class Generator:
    """The synthetic faces' parameters (module docstring)."""

    faces: int
    identities: int
    noise_share: float = 0.3
    zipf: float = 1.0
    identity_distance: float = 0.6
    min_faces: int = 3
    seed: int = 0


@dataclass(frozen=True)
class SyntheticFaces:
    """``descriptors`` ``(n, 128)`` float32 unit rows; ``identity`` ``(n,)``: the true identity,
    ``>= identities`` for a singleton noise face; rows in random order."""

    descriptors: np.ndarray
    identity: np.ndarray
    identities: int


def synthetic_faces(gen: Generator) -> SyntheticFaces:
    """Faces of ``gen`` (module docstring). Raises ``ValueError`` when the identities cannot
    hold ``min_faces`` each."""
    rng = np.random.default_rng(gen.seed)
    in_identities = round(gen.faces * (1 - gen.noise_share))
    spare = in_identities - gen.min_faces * gen.identities
    if gen.identities < 1 or spare < 0:
        raise ValueError(f"{gen.identities} identities of {gen.min_faces}+ faces need more faces")
    weights = 1 / np.arange(1, gen.identities + 1) ** gen.zipf
    sizes = gen.min_faces + rng.multinomial(spare, weights / weights.sum())
    singletons = gen.faces - in_identities
    # centroids around a common direction: |c1 - c2| ~ tau sqrt(2d) / sqrt(1 + d tau²)
    d, dist = DIMENSIONS, gen.identity_distance
    tau = dist / np.sqrt(2 * d - d * dist**2)
    axis = _unit(rng.standard_normal(d))
    centroids = _unit(axis + tau * rng.standard_normal((gen.identities + singletons, d)))
    identity = np.concatenate(
        [np.repeat(np.arange(gen.identities), sizes), gen.identities + np.arange(singletons)]
    )
    radius = rng.uniform(*FACE_RADIUS, size=gen.faces) / np.sqrt(d)
    faces = _unit(centroids[identity] + radius[:, None] * rng.standard_normal((gen.faces, d)))
    order = rng.permutation(gen.faces)
    return SyntheticFaces(faces[order].astype(np.float32), identity[order], gen.identities)


def _unit(rows: np.ndarray) -> np.ndarray:
    return np.asarray(rows / np.linalg.norm(rows, axis=-1, keepdims=True))


def distance_profile(faces: SyntheticFaces, sample: int = 2000) -> dict[str, Any]:
    """Quantiles of the distances within and between identities on a sample of faces."""
    rng = np.random.default_rng(1)
    pick = rng.choice(len(faces.identity), min(sample, len(faces.identity)), replace=False)
    x, ids = faces.descriptors[pick], faces.identity[pick]
    sq = np.maximum(2 - 2 * (x @ x.T), 0)
    distances = np.sqrt(sq)
    same = ids[:, None] == ids[None, :]
    upper = np.triu(np.ones_like(same), 1)
    within, between = distances[same & upper], distances[~same & upper]
    return {
        "same_identity_p1_p50_p99": _quantiles(within, (0.01, 0.5, 0.99)),
        "other_identity_p0.01_p1_p50": _quantiles(between, (0.0001, 0.01, 0.5)),
    }


def _quantiles(values: np.ndarray, qs: Sequence[float]) -> list[float] | None:
    return [round(float(v), 3) for v in np.quantile(values, qs)] if len(values) else None


def unmatched(descriptors: np.ndarray, owner_id: uuid.UUID, start: int = 0) -> list[UnmatchedFace]:
    """``UnmatchedFace``s of the rows, ``FACES_PER_SCENE`` per made-up scene (as the step reads
    them: face ids ``scene:index``)."""
    faces = []
    video = uuid.uuid5(owner_id, "video")
    for i, row in enumerate(descriptors, start):
        scene = uuid.uuid5(owner_id, f"scene-{i // FACES_PER_SCENE}")
        faces.append(
            UnmatchedFace(
                f"{scene}:{i % FACES_PER_SCENE}", owner_id, scene, video, 1.0, 2.0, (0, 0, 50, 50), row
            )
        )
    return faces


# --- measuring -----------------------------------------------------------------------------


@dataclass
class Measured:
    seconds: float = 0.0
    peak_mib: float = 0.0


def _status_kib(key: str) -> int | None:
    try:
        match = re.search(rf"{key}:\s+(\d+)", Path("/proc/self/status").read_text())
    except OSError:
        return None
    return int(match[1]) if match else None


@contextmanager
def measure() -> Iterator[Measured]:
    """Wall time and peak RSS above the RSS at the start (module docstring)."""
    gc.collect()
    _malloc_trim()
    result = Measured()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        start_kib = _status_kib("VmRSS") or 0
        peak: Callable[[], int] = lambda: _status_kib("VmHWM") or 0  # noqa: E731
    except OSError:
        start_kib = _status_kib("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # noqa: E731
    started = time.perf_counter()
    yield result
    result.seconds = round(time.perf_counter() - started, 3)
    result.peak_mib = round(max(peak() - start_kib, 0) / 1024, 1)


def _malloc_trim() -> None:
    """Hand freed heap memory back to the system (glibc), so the RSS at the start of a
    measurement does not include room an earlier one left behind (it would hide its peak)."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def adjusted_rand(labels: np.ndarray, faces: SyntheticFaces) -> float:
    """ARI of ``labels`` vs the identities over the faces of identities; noise (-1) counts as
    one singleton cluster per face."""
    from sklearn.metrics import adjusted_rand_score

    labels = np.asarray(labels).copy()
    noise = labels < 0
    labels[noise] = labels.max(initial=0) + 1 + np.arange(int(noise.sum()))
    keep = faces.identity < faces.identities
    return round(float(adjusted_rand_score(faces.identity[keep], labels[keep])), 4)


def labels_of(clusters: Sequence[FaceCluster], faces: Sequence[UnmatchedFace]) -> np.ndarray:
    """Per face, the index of its cluster, -1 for none."""
    index = {face_id: c for c, cluster in enumerate(clusters) for face_id in cluster.face_ids}
    return np.array([index.get(face.face_id, -1) for face in faces], dtype=np.int64)


def measure_size(gen: Generator, slow_max: int, say: Callable[[str], None]) -> dict[str, Any]:
    """The figures of one size (module docstring)."""
    settings = ClusterSettings()
    extra = max(1, int(gen.faces * INCREMENTAL_SHARE))
    everything = synthetic_faces(Generator(**{**asdict(gen), "faces": gen.faces + extra}))
    base = SyntheticFaces(
        everything.descriptors[: gen.faces], everything.identity[: gen.faces], gen.identities
    )
    owner = uuid.uuid4()
    faces = unmatched(base.descriptors, owner)
    new = unmatched(everything.descriptors[gen.faces :], owner, start=gen.faces)
    say(f"{gen.faces} faces: DbscanFaceClusterer + cluster_faces...")
    with measure() as full:
        clusters = cluster_faces(faces, DbscanFaceClusterer(), settings)
    labels = labels_of(clusters, faces)
    with measure() as incremental:
        assignment = assign_incrementally(clusters, new, settings)
    figures: dict[str, Any] = {
        "faces": gen.faces,
        "identities": gen.identities,
        "full": {**asdict(full), "clusters": len(clusters)},
        "incremental": {
            **asdict(incremental),
            "new_faces": len(new),
            **_incremental_quality(clusters, faces, base, assignment.joined, new, everything),
        },
        "quality": {
            "ari": adjusted_rand(labels, base),
            "clusters": len(clusters),
            "identities": gen.identities,
            "noise_faces": int((labels < 0).sum()),
            "true_noise_faces": int((base.identity >= gen.identities).sum()),
            "largest_cluster": clusters[0].size if clusters else 0,
        },
        "variants": measure_variants(base, settings, slow_max, say),
    }
    return figures


def _incremental_quality(
    clusters: Sequence[FaceCluster],
    faces: Sequence[UnmatchedFace],
    base: SyntheticFaces,
    joined: Any,
    new: Sequence[UnmatchedFace],
    everything: SyntheticFaces,
) -> dict[str, Any]:
    """Share of new faces of an identity that joined the cluster of that identity (the
    identity most of its faces have), and of new singleton faces that joined any."""
    identity_of_face = dict(zip((f.face_id for f in faces), base.identity.tolist(), strict=True))
    majority = {}
    for cluster in clusters:
        values, counts = np.unique([identity_of_face[i] for i in cluster.face_ids], return_counts=True)
        majority[cluster.cluster_id] = int(values[np.argmax(counts)])
    new_identity = dict(
        zip((f.face_id for f in new), everything.identity[len(faces) :].tolist(), strict=True)
    )
    placed = {face.face_id: cluster_id for cluster_id, group in joined.items() for face in group}
    real = [f.face_id for f in new if new_identity[f.face_id] < base.identities]
    singles = [f.face_id for f in new if new_identity[f.face_id] >= base.identities]
    right = sum(1 for i in real if i in placed and majority[placed[i]] == new_identity[i])
    return {
        "joined": len(placed),
        "identity_faces_joined_right": round(right / len(real), 4) if real else None,
        "singletons_joined": sum(1 for i in singles if i in placed),
    }


def measure_variants(
    faces: SyntheticFaces, settings: ClusterSettings, slow_max: int, say: Callable[[str], None]
) -> dict[str, Any]:
    """Labels only (no ``FaceCluster``s) through other sklearn settings on the same faces."""
    from sklearn.cluster import DBSCAN

    eps, k = settings.max_distance, settings.min_faces
    cosine_eps = eps**2 / 2  # unit rows: |a - b|² = 2 (1 - cos)
    variants: dict[str, Callable[[], Any]] = {
        "dbscan_auto_n_jobs1 (current)": lambda: DBSCAN(eps=eps, min_samples=k, n_jobs=1),
        "dbscan_brute_n_jobs-1": lambda: DBSCAN(eps=eps, min_samples=k, algorithm="brute", n_jobs=-1),
        "dbscan_cosine_brute": lambda: DBSCAN(
            eps=cosine_eps, min_samples=k, metric="cosine", algorithm="brute"
        ),
    }
    if len(faces.identity) <= slow_max:
        variants["dbscan_ball_tree"] = lambda: DBSCAN(eps=eps, min_samples=k, algorithm="ball_tree")
        try:
            from sklearn.cluster import HDBSCAN

            variants["hdbscan_min3"] = lambda: HDBSCAN(min_cluster_size=k, min_samples=k, copy=True)
        except ImportError:  # scikit-learn < 1.3
            pass
    figures = {}
    for name, make in variants.items():
        say(f"{len(faces.identity)} faces: {name}...")
        with measure() as took:
            labels = make().fit_predict(faces.descriptors)
        found = len(set(labels[labels >= 0].tolist()))
        figures[name] = {**asdict(took), "clusters": found, "ari": adjusted_rand(labels, faces)}
    return figures


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


# --- entry point -------------------------------------------------------------------------------


def run(
    sizes: Sequence[int],
    identities: int | None,
    *,
    database_url: str | None = None,
    db_sizes: Sequence[int] = (),
    zipf: float = 1.0,
    noise_share: float = 0.3,
    slow_max: int = SLOW_VARIANTS_MAX,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Every figure as one JSON-able dict: ``{"machine", "generator", "distances", "sizes",
    "postgres"}``."""
    generators = [Generator(n, identities or max(1, n // 100), noise_share, zipf) for n in sizes]
    report: dict[str, Any] = {
        "machine": machine(),
        "generator": {**asdict(generators[0]), "faces": list(sizes), "face_radius": FACE_RADIUS}
        if generators
        else None,
        "distances": distance_profile(synthetic_faces(generators[0])) if generators else None,
        "rss_method": RSS_METHOD,
        "sizes": {str(g.faces): measure_size(g, slow_max, say) for g in generators},
        "postgres": None,
    }
    if database_url:
        report["postgres"] = {
            str(n): measure_step(
                database_url, Generator(n, identities or max(1, n // 100), noise_share, zipf), say
            )
            for n in db_sizes
        }
    return report


def machine() -> dict[str, Any]:
    """CPU model (lscpu's "Model name", read from /proc/cpuinfo), cores, load, library versions."""
    import os

    import sklearn

    model = None
    try:
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        model = match[1].strip() if match else None
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
    }


def print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    console.print(f"machine: {report['machine']}")
    console.print(f"generator: {report['generator']}")
    console.print(f"distances: {report['distances']}")
    console.print(f"peak RSS: {report['rss_method']}")
    table = Table(title="clustering (wall s / peak MiB above start)")
    for column in ("faces", "what", "seconds", "peak MiB", "clusters", "ARI / right"):
        table.add_column(column)
    for size, fig in report["sizes"].items():
        q, inc = fig["quality"], fig["incremental"]
        table.add_row(
            size, "cluster_faces (DBSCAN)", str(fig["full"]["seconds"]), str(fig["full"]["peak_mib"]),
            f"{q['clusters']} / {q['identities']} ids", str(q["ari"]),
        )  # fmt: skip
        table.add_row(
            size, f"assign_incrementally {inc['new_faces']}", str(inc["seconds"]), str(inc["peak_mib"]),
            f"joined {inc['joined']}", str(inc["identity_faces_joined_right"]),
        )  # fmt: skip
        for name, v in fig["variants"].items():
            table.add_row(
                size, name, str(v["seconds"]), str(v["peak_mib"]), str(v["clusters"]), str(v["ari"])
            )
    console.print(table)
    if report["postgres"]:
        steps = Table(title="FACE_CLUSTERS step on Postgres (wall s / peak MiB)")
        for column in ("faces", "first (full)", "second (no-op)", "+1 % (incremental)", "noise JSON", "rows"):
            steps.add_column(column)
        for size, fig in report["postgres"].items():
            rows = fig["face_clusters"]
            steps.add_row(
                size,
                *(
                    f"{fig[k]['seconds']} s / {fig[k]['peak_mib']} MiB full={fig[k]['full']}"
                    for k in ("first", "second", "after_1pct_more")
                ),
                f"{fig['state_noise_json_bytes']} B",
                f"{rows['rows']} rows, {rows['row_bytes']} B",
            )
        console.print(steps)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m scenedex.tools.bench_clusters", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--faces", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    parser.add_argument("--identities", type=int, default=None, help="default: faces // 100")
    parser.add_argument("--zipf", type=float, default=1.0, help="identity size exponent (0: even)")
    parser.add_argument("--noise-share", type=float, default=0.3)
    parser.add_argument(
        "--slow-max", type=int, default=SLOW_VARIANTS_MAX, help="largest size for ball_tree/HDBSCAN"
    )
    parser.add_argument("--database-url")
    parser.add_argument("--db-faces", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    say = (lambda _: None) if args.json else (lambda text: print(text, flush=True))
    report = run(
        args.faces, args.identities, database_url=args.database_url, db_sizes=args.db_faces,
        zipf=args.zipf, noise_share=args.noise_share, slow_max=args.slow_max, say=say,
    )  # fmt: skip
    if args.json:
        print(json.dumps(report))
    else:
        print_table(report)


if __name__ == "__main__":
    main()
