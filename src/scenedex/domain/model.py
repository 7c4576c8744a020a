"""What the product means: videos, scenes, persons and the embedding records derived from them.

Pure Python (standard library and numpy for vectors). Every entity carries its ``owner_id``
(the tenant); a scene's owner always equals its video's owner, a photo's owner its person's.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import numpy as np

TEXT_CHANNELS: tuple[str, ...] = ("transcript", "visual", "summary")
"""Scene text channels, each embedded on its own (``Scene`` attribute per channel below)."""

_CHANNEL_ATTRIBUTE = {"transcript": "transcript", "visual": "visual_description", "summary": "summary"}

OCR_CHANNEL = "ocr"
"""The text channel read from the keyframe's pixels (the ``scene_ocr`` step), not a scene field."""
SEARCH_CHANNELS: tuple[str, ...] = (*TEXT_CHANNELS, OCR_CHANNEL)
"""Every text channel a search document can hold: the scene's own texts, then the OCR text."""


def utcnow() -> datetime:
    """Timezone-aware current time in UTC."""
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    """A fresh random UUID (v4) for a new entity."""
    return uuid.uuid4()


def content_hash(*parts: Any) -> str:
    """Stable SHA-256 hex digest of JSON-serialisable ``parts`` (keys sorted, UUIDs as str).

    Used for input hashes and fingerprints: equal inputs give equal digests across processes
    and machines.
    """
    return hashlib.sha256(_HASH_ENCODER.encode(parts).encode()).hexdigest()


_HASH_ENCODER = json.JSONEncoder(sort_keys=True, default=str, separators=(",", ":"))
"""Built once: ``json.dumps`` with these options builds a new encoder per call, which was a
third of the cost of planning a no-op over 100k scenes."""


class VideoStatus(StrEnum):
    """Where a video is in its lifecycle. ``scenedex ingest`` creates ``ready`` videos (their
    scenes exist; it sends the embed itself). A video created over HTTP is ``queued`` until a
    worker's ``ingest_video`` takes it (``ingesting``: fetch, scene detection, keyframes), then
    ``embedding`` until its embed job finishes (``ready``); ``failed`` with an ``error`` when its
    source cannot be read. Changed scene texts put a ready video back to ``embedding``."""

    QUEUED = "queued"
    INGESTING = "ingesting"
    EMBEDDING = "embedding"
    READY = "ready"
    FAILED = "failed"


class PhotoStatus(StrEnum):
    PENDING = "pending"
    OK = "ok"
    NO_FACE = "no_face"
    FAILED = "failed"


@dataclass(frozen=True)
class Video:
    id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    source_uri: str
    duration_s: float
    status: VideoStatus = VideoStatus.READY
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    error: str | None = None
    external_id: str | None = None
    ingest: Mapping[str, Any] | None = None
    """What the video was created from over HTTP (``source_uri``, ``subtitles_uri``, upstream
    ``scenes``), as JSON; None for videos ingested from a local file."""


@dataclass(frozen=True)
class Scene:
    """One shot of a video: a time range (seconds), its texts and one keyframe image.

    ``keyframe_sha256`` is the SHA-256 of the keyframe bytes, taken at ingest; blobs are
    immutable, so it stands for the image content without reading the blob again.
    """

    id: uuid.UUID
    video_id: uuid.UUID
    owner_id: uuid.UUID
    ordinal: int
    start_s: float
    end_s: float
    keyframe_uri: str
    keyframe_sha256: str
    transcript: str = ""
    visual_description: str = ""
    summary: str = ""
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)

    def text(self, channel: str) -> str:
        """The scene's text for ``channel`` (one of ``TEXT_CHANNELS``); raises KeyError otherwise."""
        return getattr(self, _CHANNEL_ATTRIBUTE[channel]) or ""


@dataclass(frozen=True)
class Person:
    """A person of an owner. ``changed_at``: its last change that matching depends on (created,
    photos added or removed); ``searchable_at``: when every scene of the owner was last matched
    again after such a change (``person.searchable``); ``updated_at``: its last change of any
    kind the person resource shows (name, photos and their status, searchable)."""

    id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    created_at: datetime = field(default_factory=utcnow)
    changed_at: datetime | None = None
    searchable_at: datetime | None = None
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.changed_at is None:
            object.__setattr__(self, "changed_at", self.created_at)
        if self.updated_at is None:
            object.__setattr__(self, "updated_at", self.created_at)

    @property
    def searchable(self) -> bool:
        """Its latest change is searchable: the owner's scenes were matched again after it."""
        changed = self.changed_at or self.created_at
        return self.searchable_at is not None and self.searchable_at >= changed


@dataclass(frozen=True)
class PersonPhoto:
    """A reference photo of a person; ``image_sha256`` is the content hash taken when added."""

    id: uuid.UUID
    person_id: uuid.UUID
    owner_id: uuid.UUID
    image_uri: str
    image_sha256: str
    status: PhotoStatus = PhotoStatus.PENDING
    error: str | None = None
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class DetectedFace:
    """A face found in an image.

    ``bbox`` is ``(left, top, right, bottom)`` in pixels of the decoded image; ``descriptor`` is
    the ``(128,)`` float32 dlib ResNet face descriptor (Euclidean space, not normalised).
    ``person_id``/``distance`` are set once the face is matched to a person query embedding.
    """

    bbox: tuple[int, int, int, int]
    descriptor: np.ndarray
    person_id: uuid.UUID | None = None
    distance: float | None = None


@dataclass(frozen=True)
class EmbeddingRecord:
    """A derived record: the output of one spec step for one subject, stamped with its provenance.

    - ``subject_id``: the person photo, person or scene the record belongs to.
    - ``key``: the text channel for scene text embeddings, ``""`` otherwise.
    - ``vector``: float32; ``(d,)`` for one embedding, ``(n, 128)`` for scene faces; ``None``
      records an empty input (empty text channel, photo without a face) so it is not retried.
    - ``payload``: JSON-able extras (face boxes and matches, photo counts).
    - ``fingerprint``/``input_hash``: the record is current when both equal what the spec
      expects for its subject now.
    """

    owner_id: uuid.UUID
    subject_id: uuid.UUID
    key: str
    vector: np.ndarray | None
    model_id: str
    spec_version: str
    fingerprint: str
    input_hash: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    updated_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class RecordState:
    """The provenance of a stored record, enough to tell whether it is current."""

    fingerprint: str
    input_hash: str


@dataclass(frozen=True)
class SceneDocument:
    """What the search index holds for one scene.

    ``text_vectors`` maps channel to ``(384,)``-like float32 unit vectors (absent: empty channel
    or not computed); ``image_vector`` is the ``(d,)`` float32 CLIP embedding (unit length) or
    None; ``faces`` the matched scene faces. ``fingerprint``/``input_hash`` say which spec and
    inputs produced the document. ``appearances``: per matched person, the time ranges
    ``(start_s, end_s)`` (seconds from the video start, ascending, merged) in which the person's
    face is on screen in this scene (empty for a face record without them, an older layout).
    """

    scene_id: uuid.UUID
    video_id: uuid.UUID
    owner_id: uuid.UUID
    start_s: float
    end_s: float
    texts: Mapping[str, str]
    text_vectors: Mapping[str, np.ndarray]
    image_vector: np.ndarray | None
    faces: tuple[DetectedFace, ...]
    person_ids: tuple[uuid.UUID, ...]
    spec_version: str
    model_ids: Mapping[str, str]
    fingerprint: str
    input_hash: str
    appearances: Mapping[uuid.UUID, tuple[tuple[float, float], ...]] = field(default_factory=dict)


Appearances = Mapping[uuid.UUID, tuple[tuple[float, float], ...]]
"""Time ranges ``(start_s, end_s)`` in seconds from the video start, per person id."""


def appearances_from_json(data: Mapping[str, Any] | None) -> dict[uuid.UUID, tuple[tuple[float, float], ...]]:
    """``{person_id: [[start_s, end_s], ...]}`` (a face record's ``payload["appearances"]``, or a
    stored document's) as person id -> ranges in seconds; ``{}`` for None (an older layout).
    Raises ValueError for a key that is not a UUID or a range that is not two numbers."""
    return {
        uuid.UUID(person): tuple((float(start), float(end)) for start, end in ranges)
        for person, ranges in (data or {}).items()
    }


def appearances_to_json(appearances: Appearances) -> dict[str, list[list[float]]]:
    """The inverse of ``appearances_from_json``: ``{"<person_id>": [[start_s, end_s], ...]}``."""
    return {str(person): [[start, end] for start, end in ranges] for person, ranges in appearances.items()}


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows of ``vectors`` scaled to unit L2 norm, as float32; zero rows stay zero.

    Accepts ``(d,)`` or ``(n, d)``; returns the same shape.
    """
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    normalised: np.ndarray = np.divide(array, norms, out=np.zeros_like(array), where=norms > 0)
    return normalised


@dataclass(frozen=True)
class SearchQuery:
    """Query vectors for a scene search (any subset; all float32, L2-normalised).

    - ``text_vector``: ``(d_text,)`` text-model embedding, compared with each text channel.
    - ``clip_text_vector``: ``(d_clip,)`` CLIP text-tower embedding, compared with the image
      embedding (only when real CLIP weights are configured).
    - ``image_vector``: ``(d_clip,)`` CLIP image embedding, compared with the image embedding.
    - ``face_vector``: ``(128,)`` person query embedding, compared with each scene face.
    - ``text``: the query text itself, for indexes with lexical (BM25) matching.
    - ``person_id``: the person whose ``face_vector`` this is (person searches): only the
      scenes where that person is matched (the document's ``person_ids``, set by the faces
      step) are hits, ranked by face similarity as above, and the hits carry that person's
      time ranges in each scene (``SearchHit.appearances``). See ``matches_person``.
    """

    text_vector: np.ndarray | None = None
    clip_text_vector: np.ndarray | None = None
    image_vector: np.ndarray | None = None
    face_vector: np.ndarray | None = None
    text: str | None = None
    person_id: uuid.UUID | None = None


@dataclass(frozen=True)
class SearchHit:
    """One ranked scene: ``score`` is a cosine similarity in [-1, 1] (higher is nearer).

    ``appearances``: for a person search (``SearchQuery.person_id``), the ranges
    ``(start_s, end_s)`` in seconds from the video start in which that person is on screen in
    this scene, ascending; empty for other queries and for documents without appearances.
    """

    scene_id: uuid.UUID
    video_id: uuid.UUID
    score: float
    start_s: float
    end_s: float
    person_ids: tuple[uuid.UUID, ...]
    appearances: tuple[tuple[float, float], ...] = ()
    channel: str | None = None
    """For a text query, the text channel that matched best (one of ``SEARCH_CHANNELS``)."""
    ocr_snippet: str | None = None
    """The start of the scene's on-screen text (``ocr_snippet``), when it has any."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "scene_id": str(self.scene_id),
            "video_id": str(self.video_id),
            "score": round(self.score, 6),
            "start_s": self.start_s,
            "end_s": self.end_s,
            "persons": [str(p) for p in self.person_ids],
            "appearances": [{"start_s": start, "end_s": end} for start, end in self.appearances],
            "channel": self.channel,
            "ocr_snippet": self.ocr_snippet,
        }


SNIPPET_CHARS = 160
"""Longest OCR snippet in a hit, in characters (a cut snippet ends with an ellipsis)."""


def ocr_snippet(text: str | None) -> str | None:
    """The OCR text of a document as a one-line snippet of at most ``SNIPPET_CHARS``
    characters; None for no text."""
    line = " ".join((text or "").split())
    if not line:
        return None
    return line if len(line) <= SNIPPET_CHARS else line[: SNIPPET_CHARS - 1].rstrip() + "\u2026"


def best_text_channel(query: SearchQuery, text_vectors: Mapping[str, np.ndarray]) -> str | None:
    """The channel whose vector is nearest ``query.text_vector`` (ties: the first in
    ``text_vectors``' order); None without a text query or text vectors."""
    vector = query.text_vector
    if vector is None or not text_vectors:
        return None
    return max(text_vectors, key=lambda channel: float(np.dot(vector, text_vectors[channel])))


TEXT_WEIGHT = 0.7
"""Weight of the text-model score when fused with the CLIP text-to-image score (late fusion:
``0.7 * max channel cosine + 0.3 * CLIP cosine``); a plain, documented default."""


def score_document(
    query: SearchQuery,
    text_vectors: Mapping[str, np.ndarray],
    image_vector: np.ndarray | None,
    face_descriptors: np.ndarray | None,
) -> float | None:
    """Cosine score of one scene document for ``query``, or None when the document has nothing
    the query can be compared with (so it is left out of the ranking).

    Text: best channel; fused with CLIP text-to-image when both exist (``TEXT_WEIGHT``).
    Image: CLIP image cosine. Person: best cosine over the scene's unit-normalised faces.
    """
    parts: list[tuple[float, float]] = []
    if query.text_vector is not None and text_vectors:
        best = max(float(np.dot(query.text_vector, v)) for v in text_vectors.values())
        parts.append((best, TEXT_WEIGHT if query.clip_text_vector is not None else 1.0))
    if query.clip_text_vector is not None and image_vector is not None:
        parts.append((float(np.dot(query.clip_text_vector, image_vector)), 1 - TEXT_WEIGHT))
    if query.image_vector is not None and image_vector is not None:
        parts.append((float(np.dot(query.image_vector, image_vector)), 1.0))
    if query.face_vector is not None and face_descriptors is not None and len(face_descriptors):
        parts.append((float(np.max(l2_normalise(face_descriptors) @ query.face_vector)), 1.0))
    if not parts:
        return None
    return sum(score * weight for score, weight in parts) / sum(weight for _, weight in parts)


def matches_person(query: SearchQuery, person_ids: Collection[uuid.UUID]) -> bool:
    """Whether a document whose matched persons are ``person_ids`` can be a hit of ``query``: a
    person search (``query.person_id``) finds only the scenes where that person is matched (a
    face near the person but not matched to it, e.g. rejected, is no hit); any document can be
    a hit of other queries. Applied with ``score_document`` by every table-index path."""
    return query.person_id is None or query.person_id in person_ids


def largest_face(faces: Sequence[DetectedFace]) -> DetectedFace:
    """The face with the largest bounding box area (ties: the first)."""
    return max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))


def appearances_from_record(
    record: EmbeddingRecord | None,
) -> dict[uuid.UUID, tuple[tuple[float, float], ...]]:
    """The persons' time ranges stored in a scene face record (``payload["appearances"]``:
    ``{person_id: [[start_s, end_s], ...]}``, seconds from the video start); none for no record
    or a record written before appearances existed."""
    return appearances_from_json(record.payload.get("appearances") if record is not None else None)


def faces_from_record(record: EmbeddingRecord | None) -> tuple[DetectedFace, ...]:
    """The faces stored in a scene face record (``vector``: ``(n, 128)`` float32 descriptors,
    ``payload["faces"]``: bbox, person id and distance per face); none for no record."""
    if record is None or record.vector is None:
        return ()
    faces = []
    for entry, descriptor in zip(record.payload["faces"], record.vector, strict=True):
        person = entry.get("person_id")
        faces.append(
            DetectedFace(
                (*entry["bbox"],), descriptor, uuid.UUID(person) if person else None, entry.get("distance")
            )
        )
    return tuple(faces)
