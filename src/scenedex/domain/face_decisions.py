"""Human decisions about faces: inputs of the pipeline, never its outputs.

A user looks at a suggested person (a ``FaceCluster``) or at a face and decides:

- ``confirm``: this face is person P (a cluster confirmed as P, or a new person created from
  it, is one ``confirm`` per face). The face's descriptor becomes an extra reference of P: P's
  query embedding is the normalised mean of its photo descriptors and its references, and a
  track matches P when it is within the match threshold of P's query embedding or of any
  reference.
- ``reject``: this face is not P. In the face's scene, a track that is the same face (within
  ``SAME_FACE_DISTANCE``) never matches P again (it may match another person).
- ``split``: these faces leave the cluster they were in and are suggested apart, as one group.

A decision names its face by what survives detecting the scene again (a new detector, sampling
or ``--force``; track indexes and cluster ids do not survive it): the scene and the face's
``(128,)`` float32 unit descriptor, with its time range and box for people to read. The same
face found again in the same scene lies within ``SAME_FACE_DISTANCE`` of it.

Decisions enter input hashes (``ExpectedStates``): confirmations of P the input of P's query
embedding (and through the person set every scene face record of the owner), rejections the
input of their scene's face record, splits the input of the owner's clustering. So a decision
makes exactly those records stale, and any reprocess, forced or under another spec, computes
around it. Decisions are stored per owner and removed only with their scene, their person or
by the user.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

import numpy as np

from scenedex.domain.model import DetectedFace, content_hash, l2_normalise

SAME_FACE_DISTANCE = 0.3
"""Largest distance between unit descriptors at which a track of a scene is the face a decision
names. The same face detected again (another detection size, sampling, a re-encode) measured
0.02-0.21 apart on astronaut.png variants (``tests/integration/test_face_clusters_real.py``);
different people are usually over 0.5 apart (dlib's 0.6 on raw descriptors, about 0.41 on unit
vectors, see ``DEFAULT_FACE_MATCH_THRESHOLD``), the bikes.mp4 face 0.58-0.61 from them."""


class DecisionKind(StrEnum):
    CONFIRM = "confirm"
    REJECT = "reject"
    SPLIT = "split"


@dataclass(frozen=True)
class FaceDecision:
    """One user decision about one face.

    ``person_id``: P for ``confirm``/``reject``, None for ``split``; ``group_id``: the decisions
    made together (a cluster confirmed at once, the faces split off together); ``descriptor``:
    ``(128,)`` float32, L2-normalised; ``first_s``/``last_s``: seconds from the video start;
    ``bbox``: ``(left, top, right, bottom)`` pixels.
    """

    id: uuid.UUID
    owner_id: uuid.UUID
    kind: DecisionKind
    scene_id: uuid.UUID
    person_id: uuid.UUID | None
    group_id: uuid.UUID
    descriptor: np.ndarray
    first_s: float = 0.0
    last_s: float = 0.0
    bbox: tuple[int, int, int, int] = (0, 0, 0, 0)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def descriptor_hash(self) -> str:
        """16 hex digits of the SHA-256 of the descriptor's float32 bytes."""
        return descriptor_hash(self.descriptor)

    def key(self) -> tuple[str, ...]:
        """What an input hash takes of the decision (not its time or box: they only describe)."""
        person = str(self.person_id) if self.person_id else ""
        return (
            str(self.id),
            self.kind.value,
            str(self.scene_id),
            person,
            str(self.group_id),
            self.descriptor_hash,
        )


def descriptor_hash(descriptor: np.ndarray) -> str:
    """16 hex digits of the SHA-256 of ``descriptor`` as float32 bytes."""
    return hashlib.sha256(np.asarray(descriptor, dtype=np.float32).tobytes()).hexdigest()[:16]


def same_face(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two unit descriptors of one scene are the same face (``SAME_FACE_DISTANCE``)."""
    return float(np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32))) <= SAME_FACE_DISTANCE


class FaceDecisions:
    """An owner's decisions, indexed for the steps that read them. Empty decisions change no
    hash (records computed before decisions existed stay current)."""

    def __init__(self, decisions: Iterable[FaceDecision] = ()) -> None:
        self.all = tuple(sorted(decisions, key=lambda d: (d.created_at, str(d.id))))
        self._confirmed: dict[uuid.UUID, list[FaceDecision]] = {}
        self._rejected: dict[uuid.UUID, list[FaceDecision]] = {}
        self._splits: dict[uuid.UUID, list[FaceDecision]] = {}
        for decision in self.all:
            if decision.kind is DecisionKind.CONFIRM and decision.person_id is not None:
                self._confirmed.setdefault(decision.person_id, []).append(decision)
            elif decision.kind is DecisionKind.REJECT and decision.person_id is not None:
                self._rejected.setdefault(decision.scene_id, []).append(decision)
            elif decision.kind is DecisionKind.SPLIT:
                self._splits.setdefault(decision.group_id, []).append(decision)

    def __bool__(self) -> bool:
        return bool(self.all)

    def references(self, person_ids: Iterable[uuid.UUID] | None = None) -> dict[uuid.UUID, np.ndarray]:
        """Per person (of ``person_ids``, None: all), its confirmed faces' descriptors
        ``(m, 128)`` float32, unit rows."""
        wanted = set(self._confirmed) if person_ids is None else set(person_ids) & set(self._confirmed)
        return {
            pid: np.stack([np.asarray(d.descriptor, np.float32) for d in self._confirmed[pid]])
            for pid in wanted
        }

    def reference_hash(self, person_id: uuid.UUID) -> str | None:
        """Hash of the person's confirmations (None: it has none)."""
        confirmed = self._confirmed.get(person_id)
        return content_hash(sorted(d.key() for d in confirmed)) if confirmed else None

    def rejections(self, scene_id: uuid.UUID) -> list[tuple[uuid.UUID, np.ndarray]]:
        """The scene's rejected faces: ``(person_id, (128,) unit descriptor)`` each."""
        return [(d.person_id, d.descriptor) for d in self._rejected.get(scene_id, []) if d.person_id]

    def scene_hash(self, scene_id: uuid.UUID) -> str | None:
        """Hash of the scene's rejections (None: it has none)."""
        rejected = self._rejected.get(scene_id)
        return content_hash(sorted(d.key() for d in rejected)) if rejected else None

    @property
    def split_groups(self) -> list[list[FaceDecision]]:
        """The faces split off together, one list per ``split`` call, oldest first."""
        return list(self._splits.values())

    @property
    def splits_hash(self) -> str | None:
        """Hash of every split (None: there is none)."""
        keys = sorted(d.key() for group in self._splits.values() for d in group)
        return content_hash(keys) if keys else None

    @property
    def digest(self) -> str | None:
        """Hash of every decision (None: there is none)."""
        return content_hash(sorted(d.key() for d in self.all)) if self.all else None


class FaceDecisionRepository(Protocol):
    """Port: an owner's face decisions (written only by users, through ``services.face_clusters``)."""

    def list(self, owner_id: uuid.UUID) -> list[FaceDecision]:
        """Every decision of the owner."""
        ...

    def add_many(self, decisions: Sequence[FaceDecision]) -> None:
        """Store new decisions (ids are new; every decision's owner owns its scene and person)."""
        ...

    def delete(self, owner_id: uuid.UUID, decision_ids: Iterable[uuid.UUID]) -> int:
        """Remove the owner's decisions with these ids; returns how many were removed."""
        ...


def match_with_decisions(
    descriptors: np.ndarray,
    person_vectors: Mapping[uuid.UUID, np.ndarray],
    threshold: float,
    references: Mapping[uuid.UUID, np.ndarray] | None = None,
    rejected: Sequence[tuple[uuid.UUID, np.ndarray]] = (),
) -> list[tuple[uuid.UUID | None, float | None]]:
    """Each row of ``descriptors`` (``(n, 128)`` float32, unit rows) matched to a person: the
    nearest by Euclidean distance, a person's distance being the smallest to its query
    embedding (``person_vectors``, ``(128,)`` unit) and to its confirmed references
    (``references``, ``(m, 128)`` unit rows); a match needs a distance at most ``threshold``;
    a person is never matched to a row within ``SAME_FACE_DISTANCE`` of a face rejected for it
    (``rejected``: ``(person_id, (128,) descriptor)``). Returns ``(person_id, distance)`` per
    row (the distance to the nearest allowed person even when it is over ``threshold``; None
    when no person is allowed). Ties go to the person listed first."""
    rows = np.asarray(descriptors, dtype=np.float32).reshape(-1, 128)
    people = list(dict.fromkeys([*person_vectors, *(references or {})]))
    if not len(rows) or not people:
        return [(None, None)] * len(rows)
    distances = np.full((len(rows), len(people)), np.inf, dtype=np.float64)
    for j, pid in enumerate(people):
        if pid in person_vectors:
            distances[:, j] = np.linalg.norm(rows - np.asarray(person_vectors[pid], np.float32), axis=1)
        if references and pid in references:
            refs = np.asarray(references[pid], np.float32).reshape(-1, 128)
            nearest = np.linalg.norm(rows[:, None, :] - refs[None, :, :], axis=2).min(axis=1)
            distances[:, j] = np.minimum(distances[:, j], nearest)
    column = {pid: j for j, pid in enumerate(people)}
    for pid, descriptor in rejected:
        if pid in column:
            near = np.linalg.norm(rows - np.asarray(descriptor, np.float32), axis=1) <= SAME_FACE_DISTANCE
            distances[near, column[pid]] = np.inf
    matches: list[tuple[uuid.UUID | None, float | None]] = []
    for row in distances:
        best = int(np.argmin(row))
        distance = round(float(row[best]), 6) if np.isfinite(row[best]) else None
        matches.append((people[best] if row[best] <= threshold else None, distance))
    return matches


def match_faces(
    faces: Iterable[DetectedFace], person_vectors: Mapping[uuid.UUID, np.ndarray], threshold: float
) -> tuple[DetectedFace, ...]:
    """Each face with ``person_id``/``distance`` set as ``match_with_decisions`` sets them with no
    decisions (the one matching rule, for single faces and face tracks alike): the nearest
    person by the Euclidean distance between unit vectors, matched when it is at most
    ``threshold`` (``DEFAULT_FACE_MATCH_THRESHOLD``). ``person_vectors``: ``(128,)`` float32
    L2-normalised vectors by person id; descriptors are normalised here."""
    faces = tuple(faces)
    rows = np.stack([l2_normalise(f.descriptor) for f in faces]) if faces else np.zeros((0, 128), np.float32)
    matches = match_with_decisions(rows, person_vectors, threshold)
    return tuple(
        DetectedFace(face.bbox, face.descriptor, person_id, distance)
        for face, (person_id, distance) in zip(faces, matches, strict=True)
    )
