"""Synthetic faces and the in-memory measurements of ``bench_clusters`` (the module docstring there
describes the generator and every figure): ``Generator``/``synthetic_faces`` (unit float32
descriptors, dlib-like distances), peak-RSS measuring, full and incremental DBSCAN per size."""

from __future__ import annotations

import ctypes
import gc
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
