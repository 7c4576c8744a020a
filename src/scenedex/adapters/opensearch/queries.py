"""What the OpenSearch adapter sends to search, as pure functions: the search plan of a query
(k-NN per channel, BM25, the hybrid pipeline's weights, a person's nested face query), the
bodies, and hits read back with their cosine (``cosine_from_score``). Pinned by the golden tests
(``tests/unit/test_opensearch_bodies.py``); the index side is ``layout``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scenedex.adapters.opensearch.layout import (
    BM25_WEIGHT,
    HYBRID_DEPTH,
    PERSON_SOURCE_FIELDS,
    SOURCE_FIELDS,
    floats,
    owner_filter,
)
from scenedex.domain.model import (
    OCR_CHANNEL,
    TEXT_CHANNELS,
    TEXT_WEIGHT,
    SearchHit,
    SearchQuery,
    best_text_channel,
    l2_normalise,
    ocr_snippet,
)

MAX_HYBRID_QUERIES = 5
"""Sub-queries a hybrid query may have (OpenSearch's limit): BM25, three text channels and CLIP
fill it; a fourth channel (``ocr``) folds the channels' kNN clauses into one ``dis_max``."""


@dataclass(frozen=True)
class SearchPlan:
    """One search request: its body, the pipeline weights when it is a hybrid query, and how a
    hit's ``_score`` becomes ``SearchHit.score`` (``kind``: ``hybrid`` (normalised and fused,
    in [0, 1]), ``bm25`` (raw), ``unit`` (inner product -> cosine), ``face`` (l2 -> cosine))."""

    body: dict[str, Any]
    kind: str
    weights: tuple[float, ...] = ()
    size: int = 10


def search_plan(
    owner_id: uuid.UUID,
    query: SearchQuery,
    k: int,
    *,
    text: str | None = None,
    comparable: Mapping[str, bool] | None = None,
    channels: Sequence[str] = TEXT_CHANNELS,
) -> SearchPlan | None:
    """The request answering ``query`` for the owner's ``k`` best scenes, or None when nothing in
    the query can be compared with the index (``comparable``: per model role, whether the read
    index was built with the model that embedded the query; missing roles count as comparable).

    Text (``text_vector``, optionally ``clip_text_vector`` and the query string ``text``): a
    hybrid query of BM25 over the text fields, kNN over each text channel and CLIP kNN over the
    image vector, fused by the normalization processor
    (https://docs.opensearch.org/latest/query-dsl/compound/hybrid/, at most 5 sub-queries).
    Image: kNN over the image vector. Person: kNN over the nested face descriptors, a scene
    scored by its nearest face; with ``query.person_id`` (a person search) only the scenes
    whose ``person_ids`` hold that person (the faces step matched it there) are candidates.
    Every kNN clause carries the owner filter itself (efficient
    filtering, so k of the owner's documents come back:
    https://docs.opensearch.org/latest/vector-search/filter-search-knn/efficient-knn-filtering/).
    ``channels``: the text channels of the read index (``ocr`` when it was built with OCR):
    BM25 runs over their text, kNN over their vectors; a text query's hits come back with the
    channels' vectors, from which ``search_hit`` names the best channel.
    """
    ok = {"clip": True, "text": True, "face": True, **(comparable or {})}
    if query.text_vector is not None or text:
        return _text_plan(owner_id, query, k, text, ok, tuple(channels))
    if query.image_vector is not None:
        if not ok["clip"]:
            return None
        body = _body(k, knn_clause("image_vector", query.image_vector, k, owner_id))
        return SearchPlan(body, "unit", size=k)
    if query.face_vector is not None:
        if not ok["face"]:
            return None
        clause = face_clause(query.face_vector, k, owner_id, query.person_id)
        body = _body(k, clause, PERSON_SOURCE_FIELDS)
        return SearchPlan(body, "face", size=k)
    return None


def _text_plan(
    owner_id: uuid.UUID,
    query: SearchQuery,
    k: int,
    text: str | None,
    ok: Mapping[str, bool],
    channels: tuple[str, ...] = TEXT_CHANNELS,
) -> SearchPlan | None:
    depth = max(k, HYBRID_DEPTH)
    parts: list[tuple[dict[str, Any], float]] = []
    semantic = 1.0 - BM25_WEIGHT if text else 1.0
    use_text = query.text_vector is not None and ok["text"]
    use_clip = query.clip_text_vector is not None and ok["clip"]
    text_share = semantic * (TEXT_WEIGHT if use_clip else 1.0) if use_text else 0.0
    clip_share = semantic - text_share if use_clip else 0.0
    if text:
        parts.append((bm25_clause(owner_id, text, channels), BM25_WEIGHT if (use_text or use_clip) else 1.0))
    if use_text:
        assert query.text_vector is not None
        clauses = [knn_clause(f"{c}_vector", query.text_vector, depth, owner_id) for c in channels]
        if len(parts) + len(clauses) + int(use_clip) > MAX_HYBRID_QUERIES:
            parts.append(({"dis_max": {"queries": clauses}}, text_share))
        else:
            parts += [(clause, text_share / len(clauses)) for clause in clauses]
    if use_clip:
        assert query.clip_text_vector is not None
        parts.append((knn_clause("image_vector", query.clip_text_vector, depth, owner_id), clip_share))
    if not parts:
        return None
    source = _text_source(channels, use_text)
    if len(parts) == 1:
        kind = "bm25" if text else "unit"
        return SearchPlan(_body(k, parts[0][0], source), kind, size=k)
    weights = hybrid_weights([weight for _, weight in parts])
    body = _body(depth, {"hybrid": {"queries": [clause for clause, _ in parts]}}, source)
    return SearchPlan(body, "hybrid", weights, size=k)


def _text_source(channels: Sequence[str], with_vectors: bool) -> tuple[str, ...]:
    """A text search's ``_source``: the hit fields, the OCR text when the index has it and, for
    a query with a text vector, the channels' vectors (k documents' worth)."""
    fields = [*SOURCE_FIELDS, *([OCR_CHANNEL] if OCR_CHANNEL in channels else [])]
    return (*fields, *([f"{c}_vector" for c in channels] if with_vectors else []))


def hybrid_weights(raw: Sequence[float]) -> tuple[float, ...]:
    """``raw`` scaled to sum to 1 and rounded to 4 decimals, the rounding error put on the
    largest weight: the normalization processor requires the weights to sum to 1.0."""
    total = sum(raw)
    weights = [round(w / total, 4) for w in raw]
    largest = max(range(len(weights)), key=lambda i: weights[i])
    weights[largest] = round(weights[largest] + 1.0 - sum(weights), 4)
    return tuple(weights)


def pipeline_body(weights: Sequence[float]) -> dict[str, Any]:
    """Search pipeline with a ``normalization-processor`` for a hybrid query whose sub-queries
    have these weights (in order): min-max normalisation, weighted arithmetic mean.
    https://docs.opensearch.org/latest/search-plugins/search-pipelines/normalization-processor/"""
    return {
        "description": "scenedex hybrid scene search: min-max normalised, weighted mean",
        "phase_results_processors": [
            {
                "normalization-processor": {
                    "normalization": {"technique": "min_max"},
                    "combination": {
                        "technique": "arithmetic_mean",
                        "parameters": {"weights": list(weights)},
                    },
                }
            }
        ],
    }


def knn_clause(field_name: str, vector: np.ndarray, k: int, owner_id: uuid.UUID) -> dict[str, Any]:
    return {"knn": {field_name: {"vector": floats(vector), "k": k, "filter": owner_filter(owner_id)}}}


def face_clause(
    vector: np.ndarray, k: int, owner_id: uuid.UUID, person_id: uuid.UUID | None = None
) -> dict[str, Any]:
    """Nested kNN over face descriptors; the owner filter on the top-level field is allowed
    inside a nested kNN clause (".../nested-search-knn/", "filtering on nested fields"). With
    ``person_id`` (a person search) the filter also requires the top-level keyword
    ``person_ids`` to hold the person (a ``bool`` of two ``term`` filters; efficient filtering
    then gives the k nearest of the person's matched scenes, not k nearest then filtered)."""
    knn_filter = owner_filter(owner_id)
    if person_id is not None:
        knn_filter = {"bool": {"filter": [knn_filter, {"term": {"person_ids": str(person_id)}}]}}
    return {
        "nested": {
            "path": "faces",
            "score_mode": "max",
            "query": {
                "knn": {
                    "faces.descriptor": {
                        "vector": floats(l2_normalise(vector)),
                        "k": k,
                        "filter": knn_filter,
                    }
                }
            },
        }
    }


def bm25_clause(owner_id: uuid.UUID, text: str, channels: Sequence[str] = TEXT_CHANNELS) -> dict[str, Any]:
    return {
        "bool": {
            "must": {"multi_match": {"query": text, "fields": list(channels)}},
            "filter": [owner_filter(owner_id)],
        }
    }


def _body(size: int, query: dict[str, Any], source: Sequence[str] = SOURCE_FIELDS) -> dict[str, Any]:
    return {"size": size, "_source": list(source), "query": query}


def search_hit(
    hit: Mapping[str, Any], kind: str, person_id: uuid.UUID | None = None, query: SearchQuery | None = None
) -> SearchHit:
    """``SearchHit`` of one response hit (``_source`` with ``SOURCE_FIELDS``; ``_score``
    converted by ``cosine_from_score(kind)``). For a person search (``person_id``) the hit
    carries that person's ranges from ``_source["appearances"]`` (``[{person_id, start_s,
    end_s}]``, seconds, ascending per person as written); none when the document has none. For
    a text ``query`` whose hits carry the channels' vectors, the best channel; the snippet of
    ``_source["ocr"]`` when there is one."""
    source = hit["_source"]
    vectors = {
        c: np.asarray(v, np.float32)
        for c in (*TEXT_CHANNELS, OCR_CHANNEL)
        if (v := source.get(f"{c}_vector"))
    }
    spans: tuple[tuple[float, float], ...] = ()
    if person_id is not None:
        wanted = str(person_id)
        spans = tuple(
            (float(a["start_s"]), float(a["end_s"]))
            for a in source.get("appearances") or ()
            if a.get("person_id") == wanted
        )
    return SearchHit(
        scene_id=uuid.UUID(source["scene_id"]),
        video_id=uuid.UUID(source["video_id"]),
        score=cosine_from_score(kind, float(hit["_score"])),
        start_s=float(source["start_s"]),
        end_s=float(source["end_s"]),
        person_ids=tuple(uuid.UUID(p) for p in source.get("person_ids", [])),
        appearances=spans,
        channel=best_text_channel(query, vectors) if query is not None else None,
        ocr_snippet=ocr_snippet(source.get(OCR_CHANNEL)),
    )


def cosine_from_score(kind: str, score: float) -> float:
    """``SearchHit.score`` from a hit's ``_score`` (see ``SearchPlan``). Faiss inner product
    scores ``1 + ip`` for ``ip >= 0`` and ``1 / (1 - ip)`` below; l2 scores ``1 / (1 + d^2)``
    and unit vectors have ``cos = 1 - d^2 / 2`` (knn-spaces page)."""
    if kind == "unit":
        return score - 1.0 if score >= 1.0 else 1.0 - 1.0 / score
    if kind == "face":
        return 1.0 - (1.0 / score - 1.0) / 2.0
    return score
