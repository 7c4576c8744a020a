"""The table-backed SearchIndex: scene documents in the ``search_documents`` table.

The embedded default (and the reference the OpenSearch adapter must match): documents are
upserted by scene id, and every read and delete is owner-filtered.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from scenedex.adapters.db import tables as t
from scenedex.adapters.db.engine import upsert, vector_from_bytes, vector_to_bytes
from scenedex.adapters.db.search_cache import stored_hit
from scenedex.adapters.db.search_sync import DEFAULT_CACHE_MAX_BYTES, SearchCache, notify_written
from scenedex.domain.model import (
    SEARCH_CHANNELS,
    RecordState,
    SceneDocument,
    SearchHit,
    SearchQuery,
    appearances_to_json,
    matches_person,
    score_document,
    utcnow,
)


class TableSearchIndex:
    """SearchIndex on the same database as the repositories (one transaction per call).

    Searches run on a ``SearchCache`` of the owners' vectors (``cache_max_bytes``, 0: no cache,
    every query scans the owner in chunks); writes notify the other processes' caches on
    Postgres (see ``scenedex.adapters.db.search_cache``), so they must go through this class.
    """

    def __init__(self, engine: sa.Engine, cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES) -> None:
        self._engine = engine
        self.cache = SearchCache(engine, cache_max_bytes)

    def upsert(self, documents: Sequence[SceneDocument]) -> dict[uuid.UUID, str]:
        """Write every document in one transaction; a table rejects none (a failure raises)."""
        written: dict[uuid.UUID, list[uuid.UUID]] = {}
        for doc in documents:
            written.setdefault(doc.owner_id, []).append(doc.scene_id)
        with self._engine.begin() as connection:
            upsert(connection, t.search_documents, [_document_row(doc) for doc in documents])
            notify_written(connection, written)
        return {}

    def states(
        self, owner_id: uuid.UUID, scene_ids: Iterable[uuid.UUID] | None
    ) -> dict[uuid.UUID, RecordState]:
        docs = t.search_documents.c
        states: dict[uuid.UUID, RecordState] = {}
        with self._engine.connect() as connection:
            if scene_ids is None:
                rows = connection.execute(
                    sa.select(docs.scene_id, docs.fingerprint, docs.input_hash).where(
                        docs.owner_id == owner_id
                    )
                )
                return {row.scene_id: RecordState(row.fingerprint, row.input_hash) for row in rows}
            ids = list(scene_ids)
            for start in range(0, len(ids), 500):
                rows = connection.execute(
                    sa.select(docs.scene_id, docs.fingerprint, docs.input_hash).where(
                        docs.owner_id == owner_id, docs.scene_id.in_(ids[start : start + 500])
                    )
                )
                states.update({row.scene_id: RecordState(row.fingerprint, row.input_hash) for row in rows})
        return states

    def delete(self, owner_id: uuid.UUID, scene_ids: Iterable[uuid.UUID]) -> None:
        docs = t.search_documents.c
        ids = list(scene_ids)
        with self._engine.begin() as connection:
            connection.execute(
                sa.delete(t.search_documents).where(docs.owner_id == owner_id, docs.scene_id.in_(ids))
            )
            notify_written(connection, {owner_id: ids})

    def search(self, owner_id: uuid.UUID, query: SearchQuery, k: int) -> list[SearchHit]:
        """Exact kNN (cosine) over the owner's documents, scored by ``score_document``: the
        hits of ``exact_reference_search`` (ties in score ordered by scene id), from the cache.
        A person search (``query.person_id``) returns only the scenes where that person is
        matched (``matches_person``: the document's ``person_ids``), ranked by face similarity.

        Measured (``scenedex.tools.search_bench``, 100,000 documents of one owner on Postgres,
        AMD EPYC, 2 cores): see docs/ARCHITECTURE.md.
        """
        return self.cache.search(owner_id, query, k)


def exact_reference_search(
    engine: sa.Engine, owner_id: uuid.UUID, query: SearchQuery, k: int
) -> list[SearchHit]:
    """The row-by-row scoring the cache must match: every document of ``owner_id`` decoded
    and scored by ``score_document`` in Python (about 10-19 s per query at 100,000 documents),
    a person search's documents that do not list the person left out (``matches_person``);
    the reference of the tests, not used by the index."""
    docs = t.search_documents.c
    columns = [docs.scene_id, docs.video_id, docs.start_s, docs.end_s, docs.document, docs.image_vector]
    columns += [docs[f"{c}_vector"] for c in SEARCH_CHANNELS] + [docs.face_descriptors]
    hits: list[SearchHit] = []
    with engine.connect() as connection:
        rows = connection.execution_options(yield_per=1000).execute(
            sa.select(*columns).where(docs.owner_id == owner_id)
        )
        for row in rows:
            persons = [uuid.UUID(p) for p in row.document.get("person_ids", [])]
            if not matches_person(query, persons):
                continue
            text_vectors = {
                c: v
                for c in SEARCH_CHANNELS
                if (v := vector_from_bytes(row._mapping[f"{c}_vector"], None)) is not None
            }
            faces = vector_from_bytes(row.face_descriptors, None)
            score = score_document(
                query,
                text_vectors,
                vector_from_bytes(row.image_vector, None),
                faces.reshape(-1, 128) if faces is not None else None,
            )
            if score is not None:
                hits.append(stored_hit(row, score, query))
    return sorted(hits, key=lambda hit: hit.score, reverse=True)[:k]


def _document_row(doc: SceneDocument) -> dict[str, Any]:
    faces = [
        {
            "bbox": list(face.bbox),
            "person_id": str(face.person_id) if face.person_id else None,
            "distance": face.distance,
        }
        for face in doc.faces
    ]
    descriptors = None
    if doc.faces:
        descriptors, _ = vector_to_bytes(np.stack([face.descriptor for face in doc.faces]))
    return {
        "scene_id": doc.scene_id,
        "owner_id": doc.owner_id,
        "video_id": doc.video_id,
        "start_s": doc.start_s,
        "end_s": doc.end_s,
        "document": {
            "texts": dict(doc.texts),
            "person_ids": [str(p) for p in doc.person_ids],
            "faces": faces,
            "appearances": appearances_to_json(doc.appearances),
            "model_ids": dict(doc.model_ids),
        },
        "transcript_vector": vector_to_bytes(doc.text_vectors.get("transcript"))[0],
        "visual_vector": vector_to_bytes(doc.text_vectors.get("visual"))[0],
        "summary_vector": vector_to_bytes(doc.text_vectors.get("summary"))[0],
        "ocr_vector": vector_to_bytes(doc.text_vectors.get("ocr"))[0],
        "image_vector": vector_to_bytes(doc.image_vector)[0],
        "face_descriptors": descriptors,
        "spec_version": doc.spec_version,
        "fingerprint": doc.fingerprint,
        "input_hash": doc.input_hash,
        "updated_at": utcnow(),
    }
