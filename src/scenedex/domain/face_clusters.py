"""Unknown faces: the unmatched face tracks of an owner's scenes, grouped into suggested persons.

The faces step stores every track of a scene, matched or not (``scene_person_embeddings``:
``vector`` ``(n, 128)`` float32 unit track descriptors, ``payload["faces"]`` one entry per row).
The tracks no person matched (``person_id`` None) are ``UnmatchedFace``s here; a full
clustering of one owner's unmatched faces (``cluster_faces``, through the ``FaceClusterer``
port, DBSCAN in ``adapters/face_clustering.py``) gives ``FaceCluster``s, the suggested persons;
faces seen after it join the nearest cluster or wait for the next full clustering
(``assign_incrementally``).

Distances are Euclidean between L2-normalised descriptors, the space of person matching
(``DEFAULT_FACE_MATCH_THRESHOLD``). This module does no I/O: the step that keeps an owner's
suggestions current is ``domain/cluster_step.py``; they are stored through the
``FaceClusterRepository`` port (``adapters/db/face_repositories.py``).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import numpy as np

from scenedex.domain.model import EmbeddingRecord, RecordState, faces_from_record, l2_normalise
from scenedex.domain.spec import DEFAULT_FACE_MATCH_THRESHOLD

DEFAULT_CLUSTER_MIN_FACES = 3
"""Fewest faces that make a suggested person: a face seen once or twice is not worth a
person's review (DBSCAN's ``min_samples``, the face itself included)."""
NOISE = -1
"""The label of a face in no cluster (DBSCAN's convention)."""


@dataclass(frozen=True)
class UnmatchedFace:
    """One face track no person matched.

    ``face_id``: ``f"{scene_id}:{track_index}"``, the track's row in the scene's face record
    (stable while that record is not detected again); ``first_s``/``last_s``: seconds from the
    start of the video; ``bbox``: ``(left, top, right, bottom)`` pixels of the frame at the
    track's ``best_s``; ``descriptor``: ``(128,)`` float32, L2-normalised.
    """

    face_id: str
    owner_id: uuid.UUID
    scene_id: uuid.UUID
    video_id: uuid.UUID
    first_s: float
    last_s: float
    bbox: tuple[int, int, int, int]
    descriptor: np.ndarray
    best_s: float | None = None
    """When the track's best face (``bbox``) was seen (seconds; None: not recorded)."""


@dataclass(frozen=True)
class ClusterSettings:
    """How unmatched faces are clustered.

    - ``max_distance``: Euclidean distance between unit descriptors (DBSCAN's ``eps``; for
      incremental assignment, the farthest a face may be from a cluster's centroid). Default
      0.4, the person match threshold (``DEFAULT_FACE_MATCH_THRESHOLD``), so a cluster holds
      faces that would match one another as a person.
    - ``min_faces``: fewest faces of a cluster (DBSCAN's ``min_samples``).
    - ``algorithm``: the clusterer these settings are for (``"dbscan"``).

    Raises ``ValueError`` for ``max_distance`` outside ``(0, 2]`` (unit vectors are at most 2
    apart) or ``min_faces`` under 1.
    """

    max_distance: float = DEFAULT_FACE_MATCH_THRESHOLD
    min_faces: int = DEFAULT_CLUSTER_MIN_FACES
    algorithm: str = "dbscan"

    def __post_init__(self) -> None:
        if not 0 < self.max_distance <= 2:
            raise ValueError(f"max_distance must be in (0, 2], got {self.max_distance}")
        if self.min_faces < 1:
            raise ValueError(f"min_faces must be >= 1, got {self.min_faces}")

    @property
    def id(self) -> str:
        """What decides the clusters, for a fingerprint, e.g. ``dbscan-eps0.4-min3``."""
        return f"{self.algorithm}-eps{self.max_distance:g}-min{self.min_faces}"

    @classmethod
    def parse(cls, settings_id: str) -> ClusterSettings:
        """The settings an ``id`` names (the spec keeps the id); raises ``ValueError`` for an
        id ``id`` never makes."""
        match = re.fullmatch(r"([a-z]+)-eps([0-9.e+-]+)-min([0-9]+)", settings_id)
        if match is None:
            raise ValueError(f"not a face cluster settings id: {settings_id!r}")
        return cls(float(match[2]), int(match[3]), match[1])


@dataclass(frozen=True)
class FaceCluster:
    """A suggested person: faces of one owner that DBSCAN put together.

    - ``cluster_id``: ``"fc-"`` + the first 16 hex digits of the SHA-256 of the cluster's
      smallest face id (string order). Clusters are disjoint, so ids are unique within a
      clustering; the id depends only on the members, never on input order or label numbers,
      and survives the cluster growing or losing faces other than that one.
    - ``face_ids``: sorted; ``scene_ids``: its faces' scenes, sorted, each once.
    - ``centroid``: ``(128,)`` float32, the L2-normalised mean of the members' descriptors.
    - ``representative``: the member nearest the centroid (ties: the smallest face id), the
      face to show for the cluster.
    """

    cluster_id: str
    owner_id: uuid.UUID
    face_ids: tuple[str, ...]
    scene_ids: tuple[uuid.UUID, ...]
    representative: str
    centroid: np.ndarray

    @property
    def size(self) -> int:
        """Number of faces."""
        return len(self.face_ids)


@dataclass(frozen=True)
class IncrementalAssignment:
    """New faces after ``assign_incrementally``: ``joined`` maps a cluster id to the faces that
    join it (in input order); ``waiting`` holds the faces no cluster is near enough to."""

    joined: Mapping[str, tuple[UnmatchedFace, ...]]
    waiting: tuple[UnmatchedFace, ...]


class FaceClusterer(Protocol):
    """Port: density clustering of unit face descriptors."""

    def cluster(self, descriptors: np.ndarray, settings: ClusterSettings) -> np.ndarray:
        """Labels ``(n,)`` int, one per row of ``descriptors`` (``(n, 128)`` float32, unit rows):
        equal labels >= 0 are one cluster, ``NOISE`` (-1) is none. Raises ``ValueError`` for
        settings of another ``algorithm``."""
        ...


def unmatched_faces(
    records: Iterable[EmbeddingRecord], video_ids: Mapping[uuid.UUID, uuid.UUID]
) -> list[UnmatchedFace]:
    """The unmatched tracks of scene face records, in record order then track order.

    ``records``: scene face records (``subject_id`` = scene id); ``video_ids``: each scene's
    video (a record carries no video id). Skipped: matched tracks, records without a vector
    (no face found), and records of scenes missing from ``video_ids`` (deleted since they were
    read). Descriptors are normalised again (older records stored raw dlib descriptors).
    Raises ``ValueError`` when a record's rows and ``payload["faces"]`` differ in number."""
    found: list[UnmatchedFace] = []
    for record in records:
        video_id = video_ids.get(record.subject_id)
        if record.vector is None or video_id is None:
            continue
        faces = faces_from_record(record)
        if len(faces) != len(record.payload.get("faces", [])):
            raise ValueError(f"face record of scene {record.subject_id}: rows and payload differ in number")
        found.extend(
            face_at(record, index, video_id) for index, face in enumerate(faces) if face.person_id is None
        )
    return found


def face_at(record: EmbeddingRecord, index: int, video_id: uuid.UUID) -> UnmatchedFace:
    """Track ``index`` of a scene face record as a face (matched or not; face id
    ``f"{scene_id}:{index}"``, descriptor normalised). Raises ``IndexError`` for no such track."""
    face = faces_from_record(record)[index]
    entry = record.payload["faces"][index]
    first_s = float(entry.get("first_s", 0.0))
    return UnmatchedFace(
        face_id=f"{record.subject_id}:{index}",
        owner_id=record.owner_id,
        scene_id=record.subject_id,
        video_id=video_id,
        first_s=first_s,
        last_s=float(entry.get("last_s", first_s)),
        bbox=face.bbox,
        descriptor=l2_normalise(face.descriptor).reshape(128),
        best_s=float(entry["best_s"]) if "best_s" in entry else None,
    )


def cluster_id_of(face_ids: Iterable[str]) -> str:
    """The content id of a cluster with these faces (see ``FaceCluster.cluster_id``); raises
    ``ValueError`` for no faces."""
    return "fc-" + hashlib.sha256(min(face_ids).encode()).hexdigest()[:16]


def cluster_faces(
    faces: Sequence[UnmatchedFace], clusterer: FaceClusterer, settings: ClusterSettings
) -> list[FaceCluster]:
    """One owner's unmatched faces clustered: the clusters, largest first (ties by cluster id).

    Faces labelled noise are in no cluster; so are the faces of a label with fewer than
    ``settings.min_faces`` members (DBSCAN can give a core point's border neighbours to another
    cluster, leaving it smaller than ``min_samples``). The result does not depend on the order
    of ``faces`` as long as the clusterer's labels do not (DBSCAN's partition does not, except
    for a border face within reach of two clusters). Raises ``ValueError`` when faces belong to
    several owners, a face id repeats, or the labels are not ``(n,)`` integers."""
    if not faces:
        return []
    if len({face.owner_id for face in faces}) > 1:
        raise ValueError("faces of several owners cannot be clustered together")
    if len({face.face_id for face in faces}) != len(faces):
        raise ValueError("face ids must be unique")
    descriptors = _descriptors(faces)
    labels = np.asarray(clusterer.cluster(descriptors, settings))
    if labels.shape != (len(faces),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be ({len(faces)},) integers, got {labels.shape} {labels.dtype}")
    clusters = []
    for label in np.unique(labels[labels != NOISE]):
        members = np.flatnonzero(labels == label)
        if len(members) >= settings.min_faces:
            clusters.append(cluster_of([faces[i] for i in members.tolist()], descriptors[members]))
    return sorted(clusters, key=lambda c: (-c.size, c.cluster_id))


def assign_incrementally(
    clusters: Sequence[FaceCluster], new_faces: Iterable[UnmatchedFace], settings: ClusterSettings
) -> IncrementalAssignment:
    """New faces placed without a full clustering: each joins the cluster whose centroid is
    nearest, when that is at most ``settings.max_distance`` away (ties: the cluster listed
    first); the others wait for the next ``cluster_faces``.

    Centroids are not moved by the faces that join, so the result does not depend on the order
    of ``new_faces``; faces already in one of ``clusters`` are left out (a repeated call gives
    nothing new). Raises ``ValueError`` for a face of another owner than the clusters'."""
    known = {face_id for cluster in clusters for face_id in cluster.face_ids}
    pending = [face for face in new_faces if face.face_id not in known]
    owners = {cluster.owner_id for cluster in clusters} | {face.owner_id for face in pending}
    if len(owners) > 1:
        raise ValueError("faces and clusters of several owners cannot be assigned together")
    if not clusters or not pending:
        return IncrementalAssignment({}, tuple(pending))
    centroids = np.stack([cluster.centroid for cluster in clusters]).astype(np.float32)
    # unit vectors: |a - b|^2 = 2 - 2 a.b, a (new, clusters) matrix; the (new, clusters, 128)
    # difference array took ~1 GB for 1,000 faces x 1,000 clusters (tools/bench_clusters.py)
    similarity = _descriptors(pending) @ centroids.T
    distances = np.sqrt(np.maximum(2.0 - 2.0 * similarity, 0.0))
    joined: dict[str, list[UnmatchedFace]] = {}
    waiting = []
    for face, row in zip(pending, distances, strict=True):
        best = int(np.argmin(row))
        if row[best] <= settings.max_distance:
            joined.setdefault(clusters[best].cluster_id, []).append(face)
        else:
            waiting.append(face)
    return IncrementalAssignment({key: tuple(value) for key, value in joined.items()}, tuple(waiting))


def _descriptors(faces: Sequence[UnmatchedFace]) -> np.ndarray:
    """``(n, 128)`` float32 of the faces' descriptors; ``ValueError`` for another shape."""
    stacked = np.stack([np.asarray(face.descriptor, dtype=np.float32) for face in faces])
    if stacked.shape != (len(faces), 128):
        raise ValueError(f"descriptors must be (128,) each, got {stacked.shape[1:]}")
    return stacked


def cluster_of(members: Sequence[UnmatchedFace], descriptors: np.ndarray) -> FaceCluster:
    """The cluster of ``members`` (``descriptors``: their ``(m, 128)`` float32 unit rows, in
    ``members`` order): content id, centroid, representative (see ``FaceCluster``)."""
    centroid = l2_normalise(descriptors.mean(axis=0))
    distances = np.linalg.norm(descriptors - centroid, axis=1)
    representative = min(
        zip(distances.tolist(), (face.face_id for face in members), strict=True),
    )[1]
    face_ids = tuple(sorted(face.face_id for face in members))
    return FaceCluster(
        cluster_id=cluster_id_of(face_ids),
        owner_id=members[0].owner_id,
        face_ids=face_ids,
        scene_ids=tuple(sorted({face.scene_id for face in members}, key=str)),
        representative=representative,
        centroid=centroid,
    )


@dataclass(frozen=True)
class SuggestedPerson:
    """A suggested person: a cluster with its faces (``members``, in ``cluster.face_ids``
    order, descriptors included), a JPEG ``thumbnail`` of its representative face (None when
    its frame could not be read), and ``split``: a group of faces a user split off."""

    cluster: FaceCluster
    members: tuple[UnmatchedFace, ...]
    thumbnail: bytes | None = None
    split: bool = False

    @property
    def cluster_id(self) -> str:
        return self.cluster.cluster_id

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def representative(self) -> UnmatchedFace:
        return next(m for m in self.members if m.face_id == self.cluster.representative)


@dataclass(frozen=True)
class ClusteringState:
    """What the owner's suggestions were computed from: the step's ``fingerprint`` and
    ``input_hash`` (``clustering_input``), the ``splits_hash`` of that time, ``noise``: the face
    ids the last full clustering left in no suggestion, ``waiting``: faces seen since that
    joined no suggestion, ``full``: whether this computation was a full clustering, ``faces``: the
    owner's unknown faces then."""

    owner_id: uuid.UUID
    fingerprint: str
    input_hash: str
    settings_id: str
    splits_hash: str | None = None
    noise: tuple[str, ...] = ()
    waiting: tuple[str, ...] = ()
    full: bool = True
    faces: int = 0
    computed_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def state(self) -> RecordState:
        return RecordState(self.fingerprint, self.input_hash)


class FaceClusterRepository(Protocol):
    """Port: an owner's suggested persons and the state they were computed in."""

    def state(self, owner_id: uuid.UUID) -> ClusteringState | None:
        """The owner's clustering state (None: never clustered)."""
        ...

    def replace(
        self, state: ClusteringState, suggestions: Sequence[SuggestedPerson], unchanged: Iterable[str] = ()
    ) -> None:
        """Store the owner's state and suggestions in place of the previous ones (one
        transaction: readers see the old set or the new one); the suggestions whose ids are in
        ``unchanged`` are stored as they are already and not written again."""
        ...

    def page(
        self, owner_id: uuid.UUID, limit: int, offset: int, after: tuple[int, str] | None = None
    ) -> tuple[list[SuggestedPerson], int]:
        """The owner's suggestions, largest first (ties: cluster id), ``offset`` skipped, or
        those after the ``(size, cluster_id)`` key ``after`` (a keyset page); and their number."""
        ...

    def get(self, owner_id: uuid.UUID, cluster_id: str) -> SuggestedPerson | None: ...

    def delete(self, owner_id: uuid.UUID, cluster_id: str) -> bool:
        """Remove one suggestion (a user confirmed it); False when there was none."""
        ...

    def list(self, owner_id: uuid.UUID) -> list[SuggestedPerson]:
        """Every suggestion of the owner, largest first."""
        ...
