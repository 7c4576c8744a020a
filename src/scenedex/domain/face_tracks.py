"""Faces across a scene: sampled frame times, face tracks, and when each person appears.

A scene's faces come from frames sampled every ``interval_s`` within it (``sample_times``).
Faces of consecutive sampled frames that belong together (same identity by descriptor
distance, position near the last one) are linked into a ``FaceTrack`` with its first and last
time, its best face and a track descriptor (the normalised mean of its faces' unit
descriptors). Tracks are matched to persons like single faces (one rule:
``face_decisions.match_with_decisions``), and a person's
``appearances`` in the scene are its tracks' time ranges, merged when they overlap or the gap
between them is at most ``gap_s``.

Times are seconds from the start of the video; boxes are pixels of the sampled frame.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from scenedex.domain.face_decisions import match_with_decisions
from scenedex.domain.model import DetectedFace, l2_normalise

TRACK_MAX_DISTANCE = 0.5
"""Largest Euclidean distance between unit descriptors for a face to join a track. Above the
person match threshold (0.4, ``DEFAULT_FACE_MATCH_THRESHOLD``): a track links one face to the
next within a shot, where pose and blur change more than between reference photos; position
must agree as well (``TRACK_MAX_SHIFT``)."""
TRACK_MAX_SHIFT = 1.5
"""Largest move of a face's centre between two linked sampled frames, in face widths (the
larger of the two boxes)."""
TRACK_MAX_MISSED = 1
"""Sampled frames a track may miss (a face turned away for one sample) and still be continued."""


def sample_times(
    start_s: float, end_s: float, keyframe_s: float, interval_s: float, max_frames: int
) -> list[float]:
    """Times (seconds, ascending, unique to the millisecond) at which to sample a scene
    ``[start_s, end_s)``: the middle of every ``interval_s`` slot (``start + (k + 0.5) *
    interval``), thinned evenly (first and last slot kept) to at most ``max_frames - 1`` when
    there are more, plus
    ``keyframe_s`` (always kept). ``max_frames`` 1 or ``interval_s`` 0 gives the keyframe
    alone. The kept slots are computed arithmetically, O(``max_frames``) whatever the scene's
    length (a scene of 1e15 s costs what one of 10 s does). Raises ``ValueError`` for
    ``max_frames < 1``, a negative interval or a non-finite time."""
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    if interval_s < 0:
        raise ValueError(f"interval_s must be >= 0, got {interval_s}")
    if not all(math.isfinite(t) for t in (start_s, end_s, keyframe_s, interval_s)):
        raise ValueError(f"scene times must be finite, got [{start_s}, {end_s}) at {keyframe_s}")
    times = {round(keyframe_s, 3)}
    if interval_s > 0 and max_frames > 1:
        slots = max(1, math.floor((end_s - start_s) / interval_s + 1e-9))
        keep = max_frames - 1
        if slots <= keep:
            indices: Iterable[int] = range(slots)
        else:  # evenly spread, first and last slot kept
            last = slots - 1
            indices = [last // 2] if keep == 1 else [round(i * last / (keep - 1)) for i in range(keep)]
        grid = (start_s + (k + 0.5) * interval_s for k in indices)
        times.update(round(t, 3) for t in grid if start_s <= t < end_s)
    return sorted(times)


@dataclass(frozen=True)
class SampledFaces:
    """The faces found in one sampled frame of a scene at ``time_s``."""

    time_s: float
    faces: tuple[DetectedFace, ...]


@dataclass
class FaceTrack:
    """One face followed across sampled frames of a scene.

    ``first_s``/``last_s``: the first and last sampled time it was seen (seconds); ``best``:
    its largest face (box in the frame at ``best_s``, raw descriptor); ``descriptor``: ``(128,)``
    float32, the L2-normalised mean of its faces' unit descriptors; ``frames``: sampled frames
    it was seen in; ``person_id``/``distance``: its match (``match_tracks``)."""

    first_s: float
    last_s: float
    best_s: float
    best: DetectedFace
    descriptor: np.ndarray
    frames: int = 1
    person_id: uuid.UUID | None = None
    distance: float | None = None
    _units: list[np.ndarray] = field(default_factory=list, repr=False)
    _last_box: tuple[int, int, int, int] = (0, 0, 0, 0)
    _last_index: int = 0

    def to_payload(self) -> dict[str, object]:
        """The JSON form stored in a scene face record (times rounded to milliseconds)."""
        return {
            "bbox": list(self.best.bbox),
            "person_id": str(self.person_id) if self.person_id else None,
            "distance": self.distance,
            "first_s": round(self.first_s, 3),
            "last_s": round(self.last_s, 3),
            "best_s": round(self.best_s, 3),
            "frames": self.frames,
        }


def _area(box: tuple[int, int, int, int]) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def _near(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    width = max(a[2] - a[0], b[2] - b[0], 1)
    dx = (a[0] + a[2]) / 2 - (b[0] + b[2]) / 2
    dy = (a[1] + a[3]) / 2 - (b[1] + b[3]) / 2
    return math.hypot(dx, dy) <= TRACK_MAX_SHIFT * width


def build_tracks(frames: Sequence[SampledFaces]) -> list[FaceTrack]:
    """Link the faces of ``frames`` (any order; sorted by time here) into tracks, greedily by
    ascending descriptor distance: a face joins the track that was seen in one of the last
    ``TRACK_MAX_MISSED + 1`` sampled frames, whose last face is within ``TRACK_MAX_DISTANCE``
    (unit descriptors) and ``TRACK_MAX_SHIFT`` face widths of it; otherwise it starts a track.
    Returns the tracks ordered by first time, then left edge."""
    tracks: list[FaceTrack] = []
    for index, frame in enumerate(sorted(frames, key=lambda f: f.time_s)):
        units = [l2_normalise(face.descriptor) for face in frame.faces]
        live = [t for t in tracks if index - t._last_index <= TRACK_MAX_MISSED + 1]
        pairs = sorted(
            (float(np.linalg.norm(units[i] - track._units[-1])), i, j)
            for i, face in enumerate(frame.faces)
            for j, track in enumerate(live)
            if _near(face.bbox, track._last_box)
        )
        taken_faces: set[int] = set()
        taken_tracks: set[int] = set()
        for distance, i, j in pairs:
            if distance > TRACK_MAX_DISTANCE or i in taken_faces or j in taken_tracks:
                continue
            taken_faces.add(i)
            taken_tracks.add(j)
            _extend(live[j], frame.faces[i], units[i], frame.time_s, index)
        for i, face in enumerate(frame.faces):
            if i not in taken_faces:
                tracks.append(
                    FaceTrack(
                        frame.time_s, frame.time_s, frame.time_s, face, units[i],
                        _units=[units[i]], _last_box=face.bbox, _last_index=index,
                    )
                )  # fmt: skip
    return sorted(tracks, key=lambda t: (t.first_s, t.best.bbox[0]))


def _extend(track: FaceTrack, face: DetectedFace, unit: np.ndarray, time_s: float, index: int) -> None:
    track._units.append(unit)
    track.descriptor = l2_normalise(np.mean(track._units, axis=0))
    track.last_s = time_s
    track.frames += 1
    track._last_box = face.bbox
    track._last_index = index
    if _area(face.bbox) > _area(track.best.bbox):
        track.best, track.best_s = face, time_s


def match_tracks(
    tracks: Sequence[FaceTrack],
    person_vectors: Mapping[uuid.UUID, np.ndarray],
    threshold: float,
    references: Mapping[uuid.UUID, np.ndarray] | None = None,
    rejected: Sequence[tuple[uuid.UUID, np.ndarray]] = (),
) -> list[FaceTrack]:
    """``tracks`` with ``person_id``/``distance`` set by their track descriptor's nearest person
    (the one matching rule, ``match_with_decisions``: unit vectors, at most ``threshold``).
    With user decisions (``domain.face_decisions``): a person's confirmed faces (``references``) count as more
    query embeddings of it, and a person is never matched to a face rejected for it in this
    scene (``rejected``); see ``match_with_decisions``."""
    rows = (
        np.stack([l2_normalise(t.descriptor) for t in tracks]) if tracks else np.zeros((0, 128), np.float32)
    )
    for track, (person_id, distance) in zip(
        tracks, match_with_decisions(rows, person_vectors, threshold, references, rejected), strict=True
    ):
        track.person_id, track.distance = person_id, distance
    return list(tracks)


def appearances(tracks: Sequence[FaceTrack], gap_s: float) -> dict[uuid.UUID, list[tuple[float, float]]]:
    """Per matched person, the time ranges ``(start_s, end_s)`` (seconds, ascending) where its
    tracks are seen, merged when they overlap or are at most ``gap_s`` apart."""
    ranges: dict[uuid.UUID, list[tuple[float, float]]] = {}
    for track in sorted(tracks, key=lambda t: t.first_s):
        if track.person_id is None:
            continue
        spans = ranges.setdefault(track.person_id, [])
        if spans and track.first_s - spans[-1][1] <= gap_s + 1e-9:
            spans[-1] = (spans[-1][0], max(spans[-1][1], track.last_s))
        else:
            spans.append((track.first_s, track.last_s))
    return {person: [(round(a, 3), round(b, 3)) for a, b in spans] for person, spans in ranges.items()}
