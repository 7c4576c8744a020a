"""Fakes of the ports for unit tests: in-memory repositories, blob store and search index, and
deterministic embedders that hash their input into unit vectors.

Fake image bytes: ``b"CORRUPT..."`` fails to decode; ``b"FACES:alice,bob|..."`` holds the
faces named before ``|`` (each name maps to a fixed descriptor), anywhere in the bytes (so a real
PNG carrying the marker in a text chunk, ``face_png``, has them too); anything else has no face.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from scenedex.domain.blobs import is_canonical_key, key_in_store
from scenedex.domain.errors import BadInputError, BlobNotFoundError, BlobTooLargeError
from scenedex.domain.face_clusters import ClusteringState, SuggestedPerson
from scenedex.domain.face_decisions import FaceDecision
from scenedex.domain.model import (
    DetectedFace,
    EmbeddingRecord,
    Person,
    PersonPhoto,
    PhotoStatus,
    RecordState,
    Scene,
    SceneDocument,
    SearchHit,
    SearchQuery,
    Video,
    best_text_channel,
    l2_normalise,
    matches_person,
    ocr_snippet,
    score_document,
    utcnow,
)
from scenedex.domain.ports import OcrLine, RecordKey
from scenedex.domain.spec import EmbeddingStepType


def hashed_vector(seed: str | bytes, dim: int) -> np.ndarray:
    """A deterministic ``(dim,)`` float32 unit vector derived from ``seed``."""
    data = seed.encode() if isinstance(seed, str) else seed
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(data).digest()[:8], "little"))
    return l2_normalise(rng.standard_normal(dim).astype(np.float32))


def face_image(*names: str, salt: str = "") -> bytes:
    return b"FACES:" + ",".join(names).encode() + b"|" + salt.encode()


def face_png(*names: str, salt: str = "", size: int = 32) -> bytes:
    """A real, decodable PNG (``size`` x ``size`` pixels) in which the fake face embedder finds
    the faces ``names`` (the ``face_image`` marker in a text chunk): photos for the upload
    endpoints, which decode what they store."""
    import io

    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("scenedex-test", face_image(*names, salt=salt).decode())
    out = io.BytesIO()
    Image.new("RGB", (size, size), (len(salt) * 40 % 256, 120, 200)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


class FakeImageEmbedder:
    def __init__(self, model_id: str = "fake-clip:v1", dim: int = 16) -> None:
        self.model_id = model_id
        self.preprocessing_id = "fake-preprocess"
        self.dim = dim
        self.calls: list[int] = []

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([hashed_vector("clip-text:" + t, self.dim) for t in texts])

    def embed_images(self, images: Sequence[bytes]) -> list[np.ndarray | BadInputError]:
        self.calls.append(len(images))
        return [
            BadInputError("cannot identify image file")
            if data.startswith(b"CORRUPT")
            else hashed_vector(data, self.dim)
            for data in images
        ]


class FakeTextEmbedder:
    def __init__(self, model_id: str = "fake-text:v1", dim: int = 8) -> None:
        self.model_id = model_id
        self.dim = dim
        self.texts: list[str] = []

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        assert all(texts), "the runner must not embed empty texts"
        self.texts.extend(texts)
        return np.stack([hashed_vector(t, self.dim) for t in texts])


class FakeFaceEmbedder:
    def __init__(self, model_id: str = "fake-face:v1") -> None:
        self.model_id = model_id
        self.detection_id = "fake-detection"
        self.calls: list[int] = []
        self.images: list[bytes] = []
        """Every image faces were detected in, in order (counts what was detected, and where)."""

    def detect_faces(self, images: Sequence[bytes]) -> list[list[DetectedFace] | BadInputError]:
        self.calls.append(len(images))
        self.images.extend(images)
        results: list[list[DetectedFace] | BadInputError] = []
        for data in images:
            if data.startswith(b"CORRUPT"):
                results.append(BadInputError("cannot identify image file"))
            elif (start := data.find(b"FACES:")) >= 0:
                names = data[start + 6 :].split(b"|")[0].decode().split(",")
                results.append(
                    [
                        DetectedFace((10 * i, 0, 10 * i + 8 + i, 8), hashed_vector(name, 128) * 1.45)
                        for i, name in enumerate(n for n in names if n)
                    ]
                )
            else:
                results.append([])
        return results


def text_image(*lines: str, salt: str = "") -> bytes:
    """Keyframe bytes in which the fake OCR reader reads ``lines`` (top to bottom)."""
    return b"TEXT:" + "/".join(lines).encode() + b"|" + salt.encode()


class FakeOcrReader:
    """Reads the lines of a ``text_image`` marker (confidence 0.9, stacked 20 px apart), none
    from other images; ``CORRUPT`` images fail."""

    def __init__(self, model_id: str = "fake-ocr:v1") -> None:
        self.model_id = model_id
        self.images: list[bytes] = []

    def read_lines(self, images: Sequence[bytes]) -> list[list[OcrLine] | BadInputError]:
        self.images.extend(images)
        results: list[list[OcrLine] | BadInputError] = []
        for data in images:
            if data.startswith(b"CORRUPT"):
                results.append(BadInputError("cannot identify image file"))
            elif (start := data.find(b"TEXT:")) >= 0:
                lines = data[start + 5 :].split(b"|")[0].decode().split("/")
                results.append([OcrLine(t, (10, 20 * i, 200, 20 * i + 16), 0.9) for i, t in enumerate(lines)])
            else:
                results.append([])
        return results


class InMemoryBlobStore:
    """The BlobStore port in a dict; URIs are confined by the shared policy
    (``domain.blobs.key_in_store``), not by a copy of it."""

    root_uri = "memory://blobs"

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.reads: list[str] = []

    def write(self, key: str, data: bytes) -> str:
        if not is_canonical_key(key):
            raise BadInputError(f"blob key {key!r} is not a canonical key of the store")
        uri = f"memory://blobs/{key}"
        self.blobs[uri] = data
        return uri

    def write_file(self, key: str, local_path: str | os.PathLike[str]) -> str:
        return self.write(key, Path(local_path).read_bytes())

    def size(self, uri: str) -> int:
        if key_in_store(self.root_uri, uri) is None:
            raise BadInputError(f"{uri} is outside the storage root {self.root_uri} or not canonical")
        if uri not in self.blobs:
            raise BlobNotFoundError(f"file not found: {uri}")
        return len(self.blobs[uri])

    def read(self, uri: str, max_bytes: int) -> bytes:
        self.reads.append(uri)
        if self.size(uri) > max_bytes:
            raise BlobTooLargeError(f"{uri} is larger than the limit of {max_bytes} bytes")
        return self.blobs[uri]

    def read_to_file(self, uri: str, dest: str | os.PathLike[str], max_bytes: int) -> int:
        data = self.read(uri, max_bytes)
        Path(dest).write_bytes(data)
        return len(data)

    def delete(self, uri: str) -> None:
        if key_in_store(self.root_uri, uri) is None:
            raise BadInputError(f"{uri} is outside the storage root {self.root_uri} or not canonical")
        self.blobs.pop(uri, None)

    def key_of(self, uri: str) -> str | None:
        return key_in_store(self.root_uri, uri)

    def delete_prefix(self, prefix: str) -> int:
        if not is_canonical_key(prefix.strip("/")):
            raise BadInputError(f"blob key {prefix!r} is not a canonical key of the store")
        start = f"{self.root_uri}/{prefix.strip('/')}/"
        gone = [uri for uri in self.blobs if uri.startswith(start)]
        for uri in gone:
            del self.blobs[uri]
        return len(gone)


class InMemorySearchIndex:
    def __init__(self) -> None:
        self.documents: dict[uuid.UUID, SceneDocument] = {}

    def upsert(self, documents: Sequence[SceneDocument]) -> dict[uuid.UUID, str]:
        self.documents.update({d.scene_id: d for d in documents})
        return {}

    def states(
        self, owner_id: uuid.UUID, scene_ids: Iterable[uuid.UUID] | None
    ) -> dict[uuid.UUID, RecordState]:
        ids = self.documents if scene_ids is None else scene_ids
        return {
            i: RecordState(d.fingerprint, d.input_hash)
            for i in ids
            if (d := self.documents.get(i)) is not None and d.owner_id == owner_id
        }

    def search(self, owner_id: uuid.UUID, query: SearchQuery, k: int) -> list[SearchHit]:
        hits = []
        for d in self.documents.values():
            if d.owner_id != owner_id or not matches_person(query, d.person_ids):
                continue
            faces = np.stack([f.descriptor for f in d.faces]) if d.faces else None
            score = score_document(query, d.text_vectors, d.image_vector, faces)
            if score is not None:
                spans = tuple(d.appearances.get(query.person_id, ())) if query.person_id else ()
                hit = SearchHit(d.scene_id, d.video_id, score, d.start_s, d.end_s, d.person_ids, spans)
                channel = best_text_channel(query, d.text_vectors)
                hits.append(
                    dataclasses.replace(hit, channel=channel, ocr_snippet=ocr_snippet(d.texts.get("ocr")))
                )
        return sorted(hits, key=lambda h: h.score, reverse=True)[:k]

    def delete(self, owner_id: uuid.UUID, scene_ids: Iterable[uuid.UUID]) -> None:
        for i in list(scene_ids):
            if (d := self.documents.get(i)) is not None and d.owner_id == owner_id:
                del self.documents[i]


class _Data:
    def __init__(self) -> None:
        self.videos: dict[uuid.UUID, Video] = {}
        self.scenes: dict[uuid.UUID, Scene] = {}
        self.current: dict[uuid.UUID, str] = {}
        """Scene id -> its digest (``current_under``), as the scenes table holds it."""
        self.persons: dict[uuid.UUID, Person] = {}
        self.photos: dict[uuid.UUID, PersonPhoto] = {}
        self.records: dict[EmbeddingStepType, dict[RecordKey, EmbeddingRecord]] = {
            s: {} for s in EmbeddingStepType
        }
        self.decisions: dict[uuid.UUID, FaceDecision] = {}
        self.clusterings: dict[uuid.UUID, ClusteringState] = {}
        self.clusters: dict[uuid.UUID, list[SuggestedPerson]] = {}
        self.events: list[Any] = []
        """Events recorded (``uow.events.add``), in order: the outbox."""


class InMemoryUnitOfWork:
    """Works on a copy of the data; ``commit()`` publishes it (so a failed batch leaves nothing)."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store

    def __enter__(self) -> InMemoryUnitOfWork:
        self.data = copy.copy(self._store.data)
        for name in (
            "videos",
            "scenes",
            "current",
            "persons",
            "photos",
            "decisions",
            "clusterings",
            "clusters",
        ):
            setattr(self.data, name, dict(getattr(self._store.data, name)))
        self.data.records = {s: dict(r) for s, r in self._store.data.records.items()}
        self.data.events = list(self._store.data.events)
        self.videos = _Videos(self.data)
        self.scenes = _Scenes(self.data)
        self.persons = _Persons(self.data)
        self.records = _Records(self.data)
        self.face_decisions = _FaceDecisions(self.data)
        self.face_clusters = _FaceClusters(self.data)
        self.events = _Events(self.data)
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def commit(self) -> None:
        self._store.data = self.data
        self._store.commits += 1

    def rollback(self) -> None:
        self.__enter__()

    def list_owner_ids(self) -> list[uuid.UUID]:
        return sorted(
            {v.owner_id for v in self.data.videos.values()} | {p.owner_id for p in self.data.persons.values()}
        )


class _Events:
    def __init__(self, data: _Data) -> None:
        self.d = data

    def add(self, *events: Any) -> None:
        self.d.events.extend(events)


class _FaceDecisions:
    def __init__(self, data: _Data) -> None:
        self.d = data

    def list(self, owner_id: uuid.UUID) -> list[FaceDecision]:
        return sorted(
            (x for x in self.d.decisions.values() if x.owner_id == owner_id),
            key=lambda x: (x.created_at, str(x.id)),
        )

    def add_many(self, decisions: Sequence[FaceDecision]) -> None:
        for decision in decisions:
            scene = self.d.scenes.get(decision.scene_id)
            if scene is None or scene.owner_id != decision.owner_id:
                raise ValueError("a decision's scene must be its owner's")
            self.d.decisions.setdefault(decision.id, decision)

    def delete(self, owner_id: uuid.UUID, decision_ids: Iterable[uuid.UUID]) -> int:
        gone = [
            i for i in decision_ids if (x := self.d.decisions.get(i)) is not None and x.owner_id == owner_id
        ]
        for i in gone:
            del self.d.decisions[i]
        return len(gone)


class _FaceClusters:
    def __init__(self, data: _Data) -> None:
        self.d = data

    def state(self, owner_id: uuid.UUID) -> ClusteringState | None:
        return self.d.clusterings.get(owner_id)

    def replace(
        self, state: ClusteringState, suggestions: Sequence[SuggestedPerson], unchanged: Iterable[str] = ()
    ) -> None:
        self.d.clusterings[state.owner_id] = state
        self.d.clusters[state.owner_id] = sorted(suggestions, key=lambda s: (-s.size, s.cluster_id))

    def page(
        self, owner_id: uuid.UUID, limit: int, offset: int, after: tuple[int, str] | None = None
    ) -> tuple[list[SuggestedPerson], int]:
        every = self.d.clusters.get(owner_id, [])
        rest = [s for s in every if after is None or (-s.size, s.cluster_id) > (-after[0], after[1])]
        return rest[offset : offset + limit], len(every)

    def get(self, owner_id: uuid.UUID, cluster_id: str) -> SuggestedPerson | None:
        return next((s for s in self.d.clusters.get(owner_id, []) if s.cluster_id == cluster_id), None)

    def list(self, owner_id: uuid.UUID) -> list[SuggestedPerson]:
        return list(self.d.clusters.get(owner_id, []))

    def delete(self, owner_id: uuid.UUID, cluster_id: str) -> bool:
        before = self.d.clusters.get(owner_id, [])
        self.d.clusters[owner_id] = [s for s in before if s.cluster_id != cluster_id]
        return len(before) != len(self.d.clusters[owner_id])


class InMemoryStore:
    """The ``UnitOfWorkFactory``: call it for a fresh unit of work."""

    def __init__(self) -> None:
        self.data = _Data()
        self.commits = 0

    def __call__(self) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self)


class _Videos:
    def __init__(self, data: _Data) -> None:
        self.d = data

    def add(self, video: Video) -> None:
        self.d.videos[video.id] = video

    def get(self, owner_id: uuid.UUID, video_id: uuid.UUID) -> Video | None:
        v = self.d.videos.get(video_id)
        return v if v and v.owner_id == owner_id else None

    def list(self, owner_id: uuid.UUID, *, since: datetime | None = None) -> list[Video]:
        return sorted(
            (
                v
                for v in self.d.videos.values()
                if v.owner_id == owner_id and (since is None or v.updated_at >= since)
            ),
            key=lambda v: v.created_at,
        )

    def owner_of(self, video_id: uuid.UUID) -> uuid.UUID | None:
        v = self.d.videos.get(video_id)
        return v.owner_id if v else None

    def external_ids(
        self, owner_id: uuid.UUID, video_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, str | None]:
        return {v: video.external_id for v in video_ids if (video := self.get(owner_id, v)) is not None}


class _Scenes:
    def __init__(self, data: _Data) -> None:
        self.d = data

    def add_many(self, scenes: Sequence[Scene]) -> None:
        for s in scenes:
            assert self.d.videos[s.video_id].owner_id == s.owner_id
            self.d.scenes[s.id] = s
            self.d.current.pop(s.id, None)

    def get(self, owner_id: uuid.UUID, scene_id: uuid.UUID) -> Scene | None:
        s = self.d.scenes.get(scene_id)
        return s if s and s.owner_id == owner_id else None

    def set_texts(
        self, owner_id: uuid.UUID, video_id: uuid.UUID, ordinal: int, texts: dict[str, str]
    ) -> Scene | None:
        """As the SQL repository: new texts, a new ``updated_at``, the digest cleared."""
        for scene in self.list_for_video(owner_id, video_id):
            if scene.ordinal == ordinal:
                if texts:
                    scene = dataclasses.replace(scene, updated_at=utcnow(), **texts)
                    self.d.scenes[scene.id] = scene
                    self.d.current.pop(scene.id, None)
                return scene
        return None

    def list_for_video(self, owner_id: uuid.UUID, video_id: uuid.UUID) -> list[Scene]:
        return sorted(
            (s for s in self.d.scenes.values() if s.owner_id == owner_id and s.video_id == video_id),
            key=lambda s: s.ordinal,
        )

    def list_for_videos(self, owner_id: uuid.UUID, video_ids: Iterable[uuid.UUID] | None) -> list[Scene]:
        wanted = None if video_ids is None else set(video_ids)
        return sorted(
            (
                s
                for s in self.d.scenes.values()
                if s.owner_id == owner_id and (wanted is None or s.video_id in wanted)
            ),
            key=lambda s: (str(s.video_id), s.ordinal),
        )

    def existing(self, owner_id: uuid.UUID, scene_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        return {i for i in scene_ids if (s := self.d.scenes.get(i)) is not None and s.owner_id == owner_id}

    def not_current_under(
        self, owner_id: uuid.UUID, video_ids: Iterable[uuid.UUID] | None, context: str
    ) -> tuple[list[Scene], int]:
        scenes = self.list_for_videos(owner_id, video_ids)
        stale = [s for s in scenes if self.d.current.get(s.id) != context]
        return stale, len(scenes) - len(stale)

    def mark_current(self, owner_id: uuid.UUID, scenes: Sequence[Scene], context: str) -> set[uuid.UUID]:
        stamped = set()
        for scene in scenes:
            stored = self.get(owner_id, scene.id)
            if stored is not None and stored.updated_at == scene.updated_at:
                self.d.current[scene.id] = context
                stamped.add(scene.id)
        return stamped

    def clear_current(self, owner_id: uuid.UUID, scene_ids: Iterable[uuid.UUID]) -> None:
        for scene_id in scene_ids:
            if self.get(owner_id, scene_id) is not None:
                self.d.current.pop(scene_id, None)


class _Persons:
    def __init__(self, data: _Data) -> None:
        self.d = data

    def add(self, person: Person) -> None:
        self.d.persons[person.id] = person

    def add_photo(self, photo: PersonPhoto) -> None:
        assert self.d.persons[photo.person_id].owner_id == photo.owner_id
        self.d.photos[photo.id] = photo

    def get(self, owner_id: uuid.UUID, person_id: uuid.UUID) -> Person | None:
        p = self.d.persons.get(person_id)
        return p if p and p.owner_id == owner_id else None

    def list(self, owner_id: uuid.UUID) -> list[Person]:
        return [p for p in self.d.persons.values() if p.owner_id == owner_id]

    def page(
        self,
        owner_id: uuid.UUID,
        *,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None = None,
        updated_since: datetime | None = None,
    ) -> tuple[list[Person], int]:
        mine = [
            p
            for p in self.list(owner_id)
            if updated_since is None or (p.updated_at or p.created_at) >= updated_since
        ]
        newest = sorted(mine, key=lambda p: (p.created_at, p.id), reverse=True)
        return [p for p in newest if before is None or (p.created_at, p.id) < before][:limit], len(mine)

    def list_photos(
        self, owner_id: uuid.UUID, person_ids: Iterable[uuid.UUID] | None = None
    ) -> list[PersonPhoto]:
        wanted = None if person_ids is None else set(person_ids)
        return [
            p
            for p in self.d.photos.values()
            if p.owner_id == owner_id and (wanted is None or p.person_id in wanted)
        ]

    def set_photo_status(
        self, owner_id: uuid.UUID, photo_id: uuid.UUID, status: PhotoStatus, error: str | None
    ) -> None:
        p = self.d.photos.get(photo_id)
        if p and p.owner_id == owner_id:
            self.d.photos[photo_id] = PersonPhoto(**{**vars(p), "status": status, "error": error})

    def rename(self, owner_id: uuid.UUID, person_id: uuid.UUID, name: str) -> bool:
        if (p := self.get(owner_id, person_id)) is None:
            return False
        self.d.persons[person_id] = Person(**{**vars(p), "name": name})
        return True

    def delete(self, owner_id: uuid.UUID, person_id: uuid.UUID) -> bool:
        """As the database's cascades: the photos, the person's derived records and the face
        decisions about it go too."""
        if self.get(owner_id, person_id) is None:
            return False
        del self.d.persons[person_id]
        self.d.decisions = {i: x for i, x in self.d.decisions.items() if x.person_id != person_id}
        for photo in [p for p in self.d.photos.values() if p.person_id == person_id]:
            self.delete_photo(owner_id, person_id, photo.id)
        self.d.records[EmbeddingStepType.PERSON_QUERY_EMBEDDINGS].pop((person_id, ""), None)
        return True

    def delete_photo(self, owner_id: uuid.UUID, person_id: uuid.UUID, photo_id: uuid.UUID) -> bool:
        p = self.d.photos.get(photo_id)
        if p is None or p.owner_id != owner_id or p.person_id != person_id:
            return False
        del self.d.photos[photo_id]
        self.d.records[EmbeddingStepType.PERSON_PHOTO_EMBEDDINGS].pop((photo_id, ""), None)
        return True


class _Records:
    def __init__(self, data: _Data) -> None:
        self.d = data

    def states(
        self, step: EmbeddingStepType, owner_id: uuid.UUID, subject_ids: Iterable[uuid.UUID] | None
    ) -> dict[RecordKey, RecordState]:
        if subject_ids is None:
            subject_ids = {k[0] for k, r in self.d.records[step].items() if r.owner_id == owner_id}
        return {
            k: RecordState(r.fingerprint, r.input_hash)
            for k, r in self.get(step, owner_id, subject_ids).items()
        }

    def get(
        self, step: EmbeddingStepType, owner_id: uuid.UUID, subject_ids: Iterable[uuid.UUID]
    ) -> dict[RecordKey, EmbeddingRecord]:
        ids = set(subject_ids)
        return {k: r for k, r in self.d.records[step].items() if k[0] in ids and r.owner_id == owner_id}

    def upsert(self, step: EmbeddingStepType, records: Sequence[EmbeddingRecord]) -> None:
        for r in records:
            existing = self.d.records[step].get((r.subject_id, r.key))
            if existing is None or existing.owner_id == r.owner_id:
                self.d.records[step][(r.subject_id, r.key)] = r
