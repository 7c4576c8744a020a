"""What the OpenSearch adapter sends, as pure functions: index and alias names, the composable
index template, scene documents as bulk actions, alias swaps, deletes and search bodies.

Nothing here talks to a cluster, so the request bodies are pinned by golden tests
(``tests/unit/test_opensearch_bodies.py``), each next to the documentation page it follows.

Choices, on purpose:

- Engine ``faiss`` with ``hnsw``, set explicitly on every vector field (never nmslib, which is
  deprecated); it supports efficient filtering, nested fields and both spaces used here.
- Text-channel and CLIP vectors are unit length (the embedders L2-normalise them), so the space
  is ``innerproduct``: on unit vectors the inner product *is* the cosine, and Faiss computes it
  without the normalisation ``cosinesimil`` adds (Faiss supports ``cosinesimil`` only from 2.19).
  See https://docs.opensearch.org/latest/mappings/supported-field-types/knn-spaces/ (distance
  and score per space) and .../knn-methods-engines/ (spaces per engine).
- Face descriptors are stored L2-normalised in a ``nested`` field with space ``l2``: on unit
  vectors ``d^2 = 2 - 2 cos``, so a hit's score ``1 / (1 + d^2)`` converts back to the cosine the
  table-backed index reports (``cosine_from_score``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from scenedex.domain.model import (
    SEARCH_CHANNELS,
    TEXT_CHANNELS,
    SceneDocument,
    l2_normalise,
)
from scenedex.domain.spec import EmbeddingStepType, ReprocessSpec

FACE_DIM = 128
ENGINE = "faiss"
UNIT_SPACE = "innerproduct"
"""Unit-length vectors: inner product == cosine, no per-query normalisation (Faiss scores
``1 + ip`` for ``ip >= 0``); https://docs.opensearch.org/latest/mappings/supported-field-types/knn-spaces/"""
FACE_SPACE = "l2"
"""Unit-normalised face descriptors: ``d^2 = 2 - 2 cos`` keeps the table index's face cosine."""
TEMPLATE_PRIORITY = 200
HYBRID_DEPTH = 100
"""Documents each hybrid sub-query returns before fusion: the normalization processor only
re-scores what the sub-queries return, and its page recommends a size of 100-200."""
BM25_WEIGHT = 0.25
"""Share of BM25 in a text query with a query string; the rest is split between the text-model
channels and CLIP text-to-image as ``TEXT_WEIGHT`` does in the table-backed index."""
SOURCE_FIELDS = ("scene_id", "video_id", "start_s", "end_s", "person_ids")
"""What a search hit needs from ``_source`` (vectors are never sent back)."""
PERSON_SOURCE_FIELDS = (*SOURCE_FIELDS, "appearances")
"""A person search's hits also carry the persons' time ranges (``search_hit`` keeps the queried
person's)."""
META_KEY = "scenedex"


@dataclass(frozen=True)
class IndexNames:
    """Names of everything the adapter creates, all under one prefix (``SCENEDEX_SEARCH__INDEX_PREFIX``).

    - concrete indexes ``{prefix}scenes_v{fingerprint}`` (the SEARCH_REINDEX step fingerprint),
      covered by the template pattern ``{prefix}scenes_v*``;
    - the read alias ``{prefix}scenes`` (searches) and the write alias ``{prefix}scenes_write``;
    - hybrid search pipelines ``{prefix}scenes-hybrid-...``.
    """

    prefix: str = ""

    @property
    def read_alias(self) -> str:
        return f"{self.prefix}scenes"

    @property
    def write_alias(self) -> str:
        return f"{self.prefix}scenes_write"

    @property
    def template(self) -> str:
        return f"{self.prefix}scenes"

    @property
    def pattern(self) -> str:
        return f"{self.prefix}scenes_v*"

    def index(self, fingerprint: str) -> str:
        return f"{self.prefix}scenes_v{fingerprint}"

    def is_scene_index(self, name: str) -> bool:
        return name.startswith(f"{self.prefix}scenes_v")

    def pipeline(self, weights: Sequence[float]) -> str:
        """Pipeline id for these sub-query weights, e.g. ``scenes-hybrid-2500-1750-...``."""
        return f"{self.prefix}scenes-hybrid-" + "-".join(str(round(w * 10_000)) for w in weights)


@dataclass(frozen=True)
class IndexLayout:
    """The concrete index one configuration writes: its name (from the SEARCH_REINDEX step
    fingerprint, which hashes the document schema and every upstream model), the spec and models
    behind it, the vector sizes and the shard layout."""

    names: IndexNames
    fingerprint: str
    spec_version: str
    document_schema: str
    model_ids: Mapping[str, str]
    text_dim: int
    clip_dim: int
    shards: int = 1
    replicas: int = 0
    channels: tuple[str, ...] = TEXT_CHANNELS
    """The text channels of the documents (``ReprocessSpec.channels``: ``ocr`` when OCR is on);
    the mapping has a text field and a vector field per channel."""

    @classmethod
    def from_spec(
        cls,
        spec: ReprocessSpec,
        names: IndexNames,
        *,
        text_dim: int,
        clip_dim: int,
        shards: int = 1,
        replicas: int = 0,
    ) -> IndexLayout:
        return cls(
            names=names,
            fingerprint=spec.fingerprint(EmbeddingStepType.SEARCH_REINDEX),
            spec_version=spec.version,
            document_schema=spec.inputs.document_schema,
            model_ids=dict(spec.model_ids),
            text_dim=text_dim,
            clip_dim=clip_dim,
            shards=shards,
            replicas=replicas,
            channels=spec.channels,
        )

    @property
    def index(self) -> str:
        return self.names.index(self.fingerprint)

    def meta(self) -> dict[str, Any]:
        """The mapping ``_meta`` of the index: spec, fingerprint, models and vector sizes."""
        return {
            "fingerprint": self.fingerprint,
            "spec_version": self.spec_version,
            "document_schema": self.document_schema,
            "model_ids": dict(self.model_ids),
            "dimensions": {"text": self.text_dim, "clip": self.clip_dim, "face": FACE_DIM},
            "spaces": {"text": UNIT_SPACE, "clip": UNIT_SPACE, "face": FACE_SPACE},
            "engine": ENGINE,
        }

    def template_body(self) -> dict[str, Any]:
        """Composable index template for ``{prefix}scenes_v*`` (``PUT _index_template/{name}``).

        https://docs.opensearch.org/latest/im-plugin/index-templates/ (composable templates);
        vector fields per https://docs.opensearch.org/latest/mappings/supported-field-types/knn-methods-engines/
        and nested per https://docs.opensearch.org/latest/vector-search/specialized-operations/nested-search-knn/.
        ``dynamic: strict`` rejects any field not listed (a document of another layout fails
        its scene instead of growing the mapping).
        """
        properties: dict[str, Any] = {
            "scene_id": {"type": "keyword"},
            "video_id": {"type": "keyword"},
            "owner_id": {"type": "keyword"},
            "start_s": {"type": "float"},
            "end_s": {"type": "float"},
            **{channel: {"type": "text"} for channel in self.channels},
            **{f"{channel}_vector": knn_field(self.text_dim, UNIT_SPACE) for channel in self.channels},
            "image_vector": knn_field(self.clip_dim, UNIT_SPACE),
            "faces": {
                "type": "nested",
                "properties": {
                    "descriptor": knn_field(FACE_DIM, FACE_SPACE),
                    "person_id": {"type": "keyword"},
                    "distance": {"type": "float"},
                    "bbox": {"type": "integer", "index": False},
                },
            },
            "person_ids": {"type": "keyword"},
            "appearances": {
                "type": "nested",
                "properties": {
                    "person_id": {"type": "keyword"},
                    "start_s": {"type": "float"},
                    "end_s": {"type": "float"},
                },
            },
            "spec_version": {"type": "keyword"},
            "fingerprint": {"type": "keyword"},
            "input_hash": {"type": "keyword"},
            "model_ids": {
                "type": "object",
                "dynamic": False,
                "properties": {role: {"type": "keyword"} for role in ("clip", "text", "face")},
            },
            "indexed_at": {"type": "date"},
        }
        return {
            "index_patterns": [self.names.pattern],
            "priority": TEMPLATE_PRIORITY,
            "template": {
                "settings": {
                    "index": {
                        "knn": True,
                        "number_of_shards": self.shards,
                        "number_of_replicas": self.replicas,
                    }
                },
                "mappings": {"dynamic": "strict", "_meta": {META_KEY: self.meta()}, "properties": properties},
            },
        }


def knn_field(dimension: int, space: str) -> dict[str, Any]:
    """A ``knn_vector`` field on Faiss HNSW with the engine and space set explicitly."""
    return {
        "type": "knn_vector",
        "dimension": dimension,
        "method": {
            "name": "hnsw",
            "engine": ENGINE,
            "space_type": space,
            "parameters": {"m": 16, "ef_construction": 128},
        },
    }


# -- writes ------------------------------------------------------------------------------


def document_source(doc: SceneDocument, indexed_at: datetime) -> dict[str, Any]:
    """The ``_source`` of one scene document (vector fields absent when the vector is)."""
    source: dict[str, Any] = {
        "scene_id": str(doc.scene_id),
        "video_id": str(doc.video_id),
        "owner_id": str(doc.owner_id),
        "start_s": doc.start_s,
        "end_s": doc.end_s,
        **{channel: doc.texts.get(channel, "") for channel in TEXT_CHANNELS},
    }
    if "ocr" in doc.texts:  # OCR on: the index has the ocr fields (IndexLayout.channels)
        source["ocr"] = doc.texts["ocr"]
    for channel in SEARCH_CHANNELS:
        vector = doc.text_vectors.get(channel)
        if vector is not None:
            source[f"{channel}_vector"] = floats(vector)
    if doc.image_vector is not None:
        source["image_vector"] = floats(doc.image_vector)
    source["faces"] = [
        {
            "descriptor": floats(l2_normalise(face.descriptor)),
            "person_id": str(face.person_id) if face.person_id else None,
            "distance": face.distance,
            "bbox": list(face.bbox),
        }
        for face in doc.faces
    ]
    source["person_ids"] = [str(p) for p in doc.person_ids]
    source["appearances"] = [
        {"person_id": str(person), "start_s": start, "end_s": end}
        for person, ranges in doc.appearances.items()
        for start, end in ranges
    ]
    source["spec_version"] = doc.spec_version
    source["fingerprint"] = doc.fingerprint
    source["input_hash"] = doc.input_hash
    source["model_ids"] = dict(doc.model_ids)
    source["indexed_at"] = indexed_at.isoformat()
    return source


def bulk_action(write_alias: str, doc: SceneDocument, version: int) -> dict[str, Any]:
    """One ``index`` action for ``opensearchpy.helpers.streaming_bulk``: ``_id`` = scene id,
    through the write alias (sent with ``require_alias=true``), externally versioned so an older
    write arriving late is rejected (409) instead of overwriting a newer document.

    https://docs.opensearch.org/latest/api-reference/document-apis/bulk/ ("require_alias",
    "External versioning": indexed only if the version is greater than the stored one).
    ``version`` is the write's build time in microseconds since the epoch.
    """
    return {
        "_op_type": "index",
        "_index": write_alias,
        "_id": str(doc.scene_id),
        "version": version,
        "version_type": "external",
        "_source": document_source(doc, datetime.fromtimestamp(version / 1_000_000, UTC)),
    }


def delete_body(owner_id: uuid.UUID, scene_ids: Iterable[uuid.UUID]) -> dict[str, Any]:
    """``_delete_by_query`` body: the owner's documents among ``scene_ids`` only.
    https://docs.opensearch.org/latest/api-reference/document-apis/delete-by-query/"""
    return {
        "query": {
            "bool": {
                "filter": [
                    owner_filter(owner_id),
                    {"ids": {"values": [str(i) for i in scene_ids]}},
                ]
            }
        }
    }


def move_alias_actions(alias: str, old: str | None, new: str, *, write: bool = False) -> list[dict[str, Any]]:
    """``_aliases`` actions moving ``alias`` from ``old`` to ``new`` atomically. ``must_exist``
    makes the call fail if another process moved the alias first (it then re-reads the state).
    https://docs.opensearch.org/latest/api-reference/alias/aliases-api/"""
    add: dict[str, Any] = {"index": new, "alias": alias}
    if write:
        add["is_write_index"] = True
    actions: list[dict[str, Any]] = []
    if old is not None and old != new:
        actions.append({"remove": {"index": old, "alias": alias, "must_exist": True}})
    actions.append({"add": add})
    return actions


# -- search ------------------------------------------------------------------------------


def owner_filter(owner_id: uuid.UUID) -> dict[str, Any]:
    return {"term": {"owner_id": str(owner_id)}}


def floats(vector: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(vector, dtype=np.float32).ravel()]
