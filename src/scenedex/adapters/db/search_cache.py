"""The in-process vector cache behind ``TableSearchIndex.search``: one matrix product per query
channel over an owner's documents, with exactly the scores of ``score_document``.

Per owner, ``OwnerVectors`` holds float32 matrices (text channels ``(4, n, d_text)``, image
``(n, d_image)``, faces flattened to ``(m, 128)`` unit rows with their document slot) and
presence masks. A query scores every document with BLAS products (float32), keeps the
documents within a proven rounding bound of the k-th score and re-scores those exactly with
``score_document`` on the same float32 vectors, so hits, order and scores are those of the
row-by-row scoring. A person search (``SearchQuery.person_id``) only scores the documents
whose ``person_ids`` (kept per document, with an index person -> documents) contain that
person (``matches_person``), so its top k is the top k among the person's matched scenes.

Memory: 4 bytes per float (float32 is kept: numpy float16 products are not BLAS-accelerated,
0.75 s against 0.05 s for 100k x 3 x 384 on the reference machine, and an int8 scan with a
float32 upcast took 0.27 s). 100,000 documents with 3 x 384 text and 512 image dims take
``100_000 * (3 * 384 + 512) * 4`` = 665 MB, plus 1 KB per face (raw and unit descriptors) and
about 0.3 KB per document of bookkeeping. Owners are kept LRU under ``max_bytes``; an owner
larger than that is scanned in chunks of ``search_sync.STREAM_CHUNK_ROWS`` (same exact result, no
cache). How the cache follows other processes' writes: ``search_sync``.
"""

from __future__ import annotations

import heapq
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from scenedex.adapters.db.engine import vector_from_bytes
from scenedex.domain.model import (
    OCR_CHANNEL,
    SEARCH_CHANNELS,
    TEXT_WEIGHT,
    SearchHit,
    SearchQuery,
    best_text_channel,
    l2_normalise,
    matches_person,
    ocr_snippet,
    score_document,
)

log = logging.getLogger(__name__)


def stored_hit(row: Any, score: float, query: SearchQuery) -> SearchHit:
    """The hit of a ``search_documents`` row (``scene_id, video_id, start_s, end_s, document``
    and, for a text query, the ``{channel}_vector`` columns) scored ``score``: for a person
    search (``query.person_id``) with that person's time ranges in the scene from
    ``document["appearances"]`` (``{"<person_id>": [[start_s, end_s], ...]}``, seconds; absent
    in documents written before scene-doc-v2: no ranges); for a text query with the channel that
    matched best; with the snippet of the document's OCR text, if any."""
    document = row.document
    person_id = query.person_id
    persons = tuple(uuid.UUID(p) for p in document.get("person_ids", []))
    ranges = (document.get("appearances") or {}).get(str(person_id), []) if person_id else []
    spans = tuple((float(start), float(end)) for start, end in ranges)
    texts = {}
    if query.text_vector is not None:
        mapping = row._mapping
        texts = {
            c: v
            for c in SEARCH_CHANNELS
            if (v := vector_from_bytes(mapping.get(f"{c}_vector"), None)) is not None
        }
    snippet = ocr_snippet((document.get("texts") or {}).get(OCR_CHANNEL))
    channel = best_text_channel(query, texts)
    return SearchHit(
        row.scene_id, row.video_id, score, row.start_s, row.end_s, persons, spans, channel, snippet
    )


FACE_DIM = 128
_ROW_OVERHEAD_BYTES = 300  # dict entries, uuid and datetime objects per document (estimate)
_UNIT = float(np.finfo(np.float32).eps) / 2  # float32 unit roundoff, 2**-24


@dataclass(frozen=True)
class DocumentVectors:
    """One document's vectors as ``score_document`` takes them: ``texts`` channel -> ``(d,)``
    float32, ``image`` ``(d,)`` float32 or None, ``faces`` ``(m, 128)`` float32 raw descriptors
    or None; ``updated_at`` is the row's ``updated_at``."""

    scene_id: uuid.UUID
    updated_at: datetime
    texts: Mapping[str, np.ndarray]
    image: np.ndarray | None
    faces: np.ndarray | None


VECTOR_COLUMNS = (
    "scene_id",
    "updated_at",
    *(f"{c}_vector" for c in SEARCH_CHANNELS),
    "image_vector",
    "face_descriptors",
)
"""The columns the cache reads, in this order, followed by the document's ``person_ids`` (a
JSON list of UUID strings, or None): ``PERSON_IDS_SQL`` on the raw psycopg path,
``document["person_ids"]`` through SQLAlchemy."""

PERSON_IDS_SQL = "document -> 'person_ids'"
_PERSONS = len(VECTOR_COLUMNS)  # index of person_ids in a row


def row_persons(row: Sequence[Any]) -> tuple[uuid.UUID, ...]:
    """The ``person_ids`` of a row read by the cache (after ``VECTOR_COLUMNS``); none when the
    row has no such column or the document no list."""
    ids = row[_PERSONS] if len(row) > _PERSONS else None
    return tuple(uuid.UUID(p) for p in ids) if isinstance(ids, list) else ()


def decode_row(row: Sequence[Any]) -> DocumentVectors:
    """``DocumentVectors`` of a ``search_documents`` row in ``VECTOR_COLUMNS`` order, decoded
    exactly as the row-by-row scoring does (``vector_from_bytes``); raises ValueError for face
    bytes that are not a multiple of 128 float32."""
    channels = len(SEARCH_CHANNELS)
    texts = {
        c: v for i, c in enumerate(SEARCH_CHANNELS) if (v := vector_from_bytes(row[2 + i], None)) is not None
    }
    faces = vector_from_bytes(row[3 + channels], None)
    return DocumentVectors(
        row[0],
        row[1],
        texts,
        vector_from_bytes(row[2 + channels], None),
        faces.reshape(-1, FACE_DIM) if faces is not None else None,
    )


def _max_norm(rows: np.ndarray) -> float:
    """Largest L2 norm of the ``(n, d)`` rows, in float64."""
    return float(np.sqrt(np.max(np.einsum("ij,ij->i", rows, rows, dtype=np.float64))))


def _dot_bound(dim: int, query_norm: float, row_norm: float) -> float:
    """Bound on the difference of two float32 evaluations of a dot product of length ``dim``
    (any summation order): each is within ``gamma_dim * |q| * |r|`` of the exact value
    (Higham, Accuracy and Stability, 3.1), with ``gamma_n = n u / (1 - n u)``."""
    gamma = dim * _UNIT / (1 - dim * _UNIT)
    return 2 * gamma * query_norm * row_norm


class OwnerVectors:
    """The float32 matrices of one owner's documents (slots reused after a removal).

    ``text``: ``(3, capacity, d_text)`` with ``text_mask`` ``(3, capacity)``; ``image``:
    ``(capacity, d_image)`` with ``image_mask``; faces: ``(face_capacity, 128)`` unit rows with
    ``face_slot`` (document slot, -1 free) and the raw descriptors per slot for the exact
    re-score. Documents whose dims differ from the matrices' are kept aside and scored one by
    one. Not thread-safe: ``SearchCache`` guards it with a readers-writer lock.
    """

    def __init__(self, capacity: int = 0) -> None:
        self._capacity = max(capacity, 16)
        self._n = 0  # high-water slot
        self._slot: dict[uuid.UUID, int] = {}
        self._ids: list[uuid.UUID | None] = []
        self._free: list[int] = []
        self.updated: dict[uuid.UUID, datetime] = {}
        self._live = np.zeros(self._capacity, bool)
        self._text: np.ndarray | None = None
        self._text_mask = np.zeros((len(SEARCH_CHANNELS), self._capacity), bool)
        self._image: np.ndarray | None = None
        self._image_mask = np.zeros(self._capacity, bool)
        self._text_norm = 0.0
        self._image_norm = 0.0
        self._faces = np.zeros((0, FACE_DIM), np.float32)
        self._face_slot = np.zeros(0, np.int32)
        self._face_n = 0
        self._face_free: list[int] = []
        self._face_rows: dict[int, list[int]] = {}
        self._face_raw: dict[int, np.ndarray] = {}
        self._face_norm = 0.0
        self._odd: dict[uuid.UUID, DocumentVectors] = {}
        self._persons: dict[uuid.UUID, tuple[uuid.UUID, ...]] = {}  # document -> matched persons
        self._by_person: dict[uuid.UUID, set[uuid.UUID]] = {}  # person -> its documents

    def __len__(self) -> int:
        return len(self.updated)

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays plus an estimate of the per-document bookkeeping."""
        arrays = [self._live, self._text_mask, self._image_mask, self._faces, self._face_slot]
        arrays += [a for a in (self._text, self._image) if a is not None]
        raw = sum(a.nbytes for a in self._face_raw.values())
        return sum(a.nbytes for a in arrays) + raw + _ROW_OVERHEAD_BYTES * len(self.updated)

    def add_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """Insert or replace documents from rows in ``VECTOR_COLUMNS`` order (bytes as stored
        by ``vector_to_bytes``) followed by ``person_ids`` (``row_persons``), in bulk. Rows
        whose vectors do not fit the matrices (another dim, empty bytes) are kept aside as
        ``DocumentVectors`` and scored one by one."""
        self.remove([row[0] for row in rows if row[0] in self.updated])
        for row in rows:
            persons = row_persons(row)
            if persons:
                self._persons[row[0]] = persons
                for person in persons:
                    self._by_person.setdefault(person, set()).add(row[0])
        channels = len(SEARCH_CHANNELS)
        text_bytes = 4 * self._text.shape[2] if self._text is not None else None
        image_bytes = 4 * self._image.shape[1] if self._image is not None else None
        regular: list[Sequence[Any]] = []
        for row in rows:
            texts = [len(v) for v in row[2 : 2 + channels] if v is not None]
            image, faces = row[2 + channels], row[3 + channels]
            if text_bytes is None and texts:
                text_bytes = texts[0]
            if image_bytes is None and image is not None:
                image_bytes = len(image)
            if (
                any(size != text_bytes or size == 0 for size in texts)
                or (image is not None and (len(image) != image_bytes or not image))
                or (faces is not None and (not faces or len(faces) % (4 * FACE_DIM)))
            ):
                doc = decode_row(row)
                self.updated[doc.scene_id] = doc.updated_at
                self._odd[doc.scene_id] = doc
            else:
                regular.append(row)
        if not regular:
            return
        reused = self._free[-len(regular) :] if self._free else []
        del self._free[len(self._free) - len(reused) :]
        fresh = len(regular) - len(reused)
        self._grow(self._n + fresh)
        slots = np.array(reused + list(range(self._n, self._n + fresh)), np.int64)
        self._ids.extend([None] * fresh)
        self._n += fresh
        for slot, row in zip(slots.tolist(), regular, strict=True):
            self._slot[row[0]] = slot
            self._ids[slot] = row[0]
            self.updated[row[0]] = row[1]
        self._live[slots] = True
        for c in range(channels):
            present = [i for i, row in enumerate(regular) if row[2 + c] is not None]
            if present:
                block = np.frombuffer(b"".join(regular[i][2 + c] for i in present), "<f4").reshape(
                    len(present), -1
                )
                if self._text is None:
                    self._text = np.zeros((channels, self._capacity, block.shape[1]), np.float32)
                self._text[c, slots[present]] = block
                self._text_mask[c, slots[present]] = True
                self._text_norm = max(self._text_norm, _max_norm(block))
        present = [i for i, row in enumerate(regular) if row[2 + channels] is not None]
        if present:
            block = np.frombuffer(b"".join(regular[i][2 + channels] for i in present), "<f4").reshape(
                len(present), -1
            )
            if self._image is None:
                self._image = np.zeros((self._capacity, block.shape[1]), np.float32)
            self._image[slots[present]] = block
            self._image_mask[slots[present]] = True
            self._image_norm = max(self._image_norm, _max_norm(block))
        with_faces = [(slots[i], row[3 + channels]) for i, row in enumerate(regular) if row[3 + channels]]
        if with_faces:
            self._add_faces(with_faces)

    def _add_faces(self, documents: Sequence[tuple[int, bytes]]) -> None:
        raw = np.frombuffer(b"".join(data for _, data in documents), "<f4").reshape(-1, FACE_DIM)
        units = l2_normalise(raw)
        free = self._face_free[-len(raw) :] if self._face_free else []
        del self._face_free[len(self._face_free) - len(free) :]
        fresh = len(raw) - len(free)
        if self._face_n + fresh > len(self._faces):
            size = max(64, 2 * len(self._faces), self._face_n + fresh)
            faces = np.zeros((size, FACE_DIM), np.float32)
            faces[: len(self._faces)] = self._faces
            face_slot = np.full(size, -1, np.int32)
            face_slot[: len(self._face_slot)] = self._face_slot
            self._faces, self._face_slot = faces, face_slot
        rows = np.array(free + list(range(self._face_n, self._face_n + fresh)), np.int64)
        self._face_n += fresh
        self._faces[rows] = units
        offset = 0
        for slot, data in documents:
            count = len(data) // (4 * FACE_DIM)
            self._face_slot[rows[offset : offset + count]] = slot
            self._face_rows[slot] = rows[offset : offset + count].tolist()
            self._face_raw[slot] = raw[offset : offset + count]
            offset += count
        self._face_norm = max(self._face_norm, _max_norm(units))

    def remove(self, scene_ids: Iterable[uuid.UUID]) -> None:
        """Forget these documents (unknown ids are ignored)."""
        for scene_id in scene_ids:
            self.updated.pop(scene_id, None)
            self._odd.pop(scene_id, None)
            for person in self._persons.pop(scene_id, ()):
                documents = self._by_person[person]
                documents.discard(scene_id)
                if not documents:
                    del self._by_person[person]
            slot = self._slot.pop(scene_id, None)
            if slot is not None:
                self._text_mask[:, slot] = False
                self._image_mask[slot] = False
                for face_row in self._face_rows.pop(slot, []):
                    self._face_slot[face_row] = -1
                    self._face_free.append(face_row)
                self._face_raw.pop(slot, None)
                self._live[slot] = False
                self._ids[slot] = None
                self._free.append(slot)

    def _grow(self, needed: int) -> None:
        if needed <= self._capacity:
            return
        capacity = max(needed, self._capacity + self._capacity // 8 + 1024)  # +12.5%: copies stay rare

        def grown(array: np.ndarray, axis: int) -> np.ndarray:
            shape = list(array.shape)
            shape[axis] = capacity
            new = np.zeros(shape, array.dtype)
            new[(slice(None),) * axis + (slice(0, array.shape[axis]),)] = array
            return new

        self._live = grown(self._live, 0)
        self._text_mask = grown(self._text_mask, 1)
        self._image_mask = grown(self._image_mask, 0)
        if self._text is not None:
            self._text = grown(self._text, 1)
        if self._image is not None:
            self._image = grown(self._image, 0)
        self._capacity = capacity

    def _document(self, slot: int) -> DocumentVectors:
        scene_id = self._ids[slot]
        assert scene_id is not None
        texts = {
            channel: np.array(self._text[c, slot])  # a fresh array, as the row decoding gives
            for c, channel in enumerate(SEARCH_CHANNELS)
            if self._text is not None and self._text_mask[c, slot]
        }
        image = np.array(self._image[slot]) if self._image is not None and self._image_mask[slot] else None
        return DocumentVectors(scene_id, self.updated[scene_id], texts, image, self._face_raw.get(slot))

    def top(self, query: SearchQuery, k: int) -> list[tuple[float, uuid.UUID]]:
        """The ``k`` best ``(score, scene_id)`` by ``score_document`` (exact), best first; ties
        by scene id. Documents with nothing comparable to ``query`` are left out, and for a
        person search those that do not list the person (``matches_person``), before the top
        k is taken.

        Every document is scored with float32 matrix products; those within ``2 * bound`` of
        the k-th such score (``bound``: ``_dot_bound`` of each part, the fusion being a convex
        combination) are re-scored with ``score_document``, which contains the exact top k.
        Raises ValueError when a query vector's dim differs from the documents' (as
        ``np.dot`` does in the row-by-row scoring).
        """
        if k <= 0:
            return []
        matched: set[uuid.UUID] | None = None  # None: every document may be a hit
        if query.person_id is not None:
            matched = self._by_person.get(query.person_id, set())
            if not matched:
                return []
        n = self._n
        num = np.zeros(n)
        den = np.zeros(n)
        bound = 0.0
        if query.text_vector is not None and self._text is not None:
            q = np.asarray(query.text_vector, np.float32)
            best = np.full(n, -np.inf, np.float32)
            for c in range(len(SEARCH_CHANNELS)):
                if self._text_mask[c, :n].any():  # (no ocr vectors while OCR is off: no product)
                    np.maximum(
                        best, np.where(self._text_mask[c, :n], self._text[c, :n] @ q, -np.inf), out=best
                    )
            has = self._text_mask[:, :n].any(axis=0)
            weight = TEXT_WEIGHT if query.clip_text_vector is not None else 1.0
            num[has] += weight * best[has]
            den[has] += weight
            bound = max(bound, _dot_bound(q.shape[0], float(np.linalg.norm(q)), self._text_norm))
        for vector, weight in ((query.clip_text_vector, 1 - TEXT_WEIGHT), (query.image_vector, 1.0)):
            if vector is not None and self._image is not None:
                q = np.asarray(vector, np.float32)
                has = self._image_mask[:n]
                num[has] += weight * (self._image[:n] @ q)[has]
                den[has] += weight
                bound = max(bound, _dot_bound(q.shape[0], float(np.linalg.norm(q)), self._image_norm))
        if query.face_vector is not None and self._face_n:
            q = np.asarray(query.face_vector, np.float32)
            alive = self._face_slot[: self._face_n] >= 0
            scores = self._faces[: self._face_n][alive] @ q
            best = np.full(n, -np.inf)
            np.maximum.at(best, self._face_slot[: self._face_n][alive], scores)
            has = best > -np.inf
            num[has] += best[has]
            den[has] += 1.0
            bound = max(bound, _dot_bound(q.shape[0], float(np.linalg.norm(q)), self._face_norm))
        if matched is not None:
            allowed = np.zeros(n, bool)
            allowed[[slot for i in matched if (slot := self._slot.get(i)) is not None]] = True
            den[~allowed] = 0.0
        scored = np.flatnonzero(den > 0)
        approx = num[scored] / den[scored]
        if len(scored) > k:
            kth = np.partition(approx, len(approx) - k)[len(approx) - k]
            scored = scored[approx >= kth - 2 * bound - 1e-12]
        exact: list[tuple[float | None, uuid.UUID]] = []
        by_vectors: dict[bytes, float | None] = {}  # identical vectors score identically
        for slot in scored.tolist():
            key = self._vector_key(slot, query)
            if key not in by_vectors:
                document = self._document(slot)
                by_vectors[key] = score_document(query, document.texts, document.image, document.faces)
            scene_id = self._ids[slot]
            assert scene_id is not None
            exact.append((by_vectors[key], scene_id))
        exact += [
            (score_document(query, d.texts, d.image, d.faces), d.scene_id)
            for d in self._odd.values()
            if matches_person(query, self._persons.get(d.scene_id, ()))
        ]
        return best_k([(s, i) for s, i in exact if s is not None], k)

    def _vector_key(self, slot: int, query: SearchQuery) -> bytes:
        """The bytes of what ``query`` compares in document ``slot`` (masks and vectors): two
        documents with the same key get the same ``score_document`` result, so a tie of many
        identical documents (black frames, a repeated slate) is re-scored once."""
        parts: list[bytes] = []
        if query.text_vector is not None and self._text is not None:
            parts += [self._text_mask[:, slot].tobytes(), self._text[:, slot].tobytes()]
        if (query.clip_text_vector is not None or query.image_vector is not None) and self._image is not None:
            parts += [self._image_mask[slot].tobytes(), self._image[slot].tobytes()]
        if query.face_vector is not None:
            raw = self._face_raw.get(slot)
            parts.append(b"none" if raw is None else raw.tobytes())
        return b"|".join(parts)


def best_k(scored: list[tuple[float, uuid.UUID]], k: int) -> list[tuple[float, uuid.UUID]]:
    """The ``k`` best ``(score, scene_id)``: higher score first, ties by scene id. Partitions
    first, so a tie of many documents at the k-th score (a repeated frame) costs one pass, not
    a sort of them all."""
    if len(scored) <= 4 * k:
        return sorted(scored, key=lambda hit: (-hit[0], hit[1].int))[:k]
    scores = np.fromiter((s for s, _ in scored), np.float64, len(scored))
    kth = float(-np.partition(-scores, k - 1)[k - 1])
    above = sorted(((s, i) for s, i in scored if s > kth), key=lambda hit: (-hit[0], hit[1].int))
    ties = heapq.nsmallest(k - len(above), (i for s, i in scored if s == kth), key=lambda i: i.int)
    return above + [(kth, i) for i in ties]
