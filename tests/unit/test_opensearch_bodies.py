"""Golden tests: the request bodies the OpenSearch adapter builds, pinned literally and each
checked against the documentation page cited beside it (docs.opensearch.org/latest/...)."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from opensearchpy.helpers import expand_action

from scenedex.adapters.opensearch.layout import (
    IndexLayout,
    IndexNames,
    bulk_action,
    delete_body,
    move_alias_actions,
)
from scenedex.adapters.opensearch.queries import (
    cosine_from_score,
    hybrid_weights,
    pipeline_body,
    search_hit,
    search_plan,
)
from scenedex.domain.model import DetectedFace, SceneDocument, SearchQuery
from tests import opensearch_spec

OWNER = uuid.UUID(int=1)
OWNER_FILTER = {"term": {"owner_id": "00000000-0000-0000-0000-000000000001"}}
SOURCE = ["scene_id", "video_id", "start_s", "end_s", "person_ids"]
LAYOUT = IndexLayout(
    names=IndexNames("t-"),
    fingerprint="0123456789abcdef",
    spec_version="2026-11-21+abcd1234",
    document_schema="scene-doc-v2",
    model_ids={"clip": "clip-m", "text": "text-m", "face": "face-m"},
    text_dim=4,
    clip_dim=3,
    shards=2,
    replicas=1,
)
META = {
    "fingerprint": "0123456789abcdef",
    "spec_version": "2026-11-21+abcd1234",
    "document_schema": "scene-doc-v2",
    "model_ids": {"clip": "clip-m", "text": "text-m", "face": "face-m"},
    "dimensions": {"text": 4, "clip": 3, "face": 128},
    "spaces": {"text": "innerproduct", "clip": "innerproduct", "face": "l2"},
    "engine": "faiss",
}


def _knn(dimension: int, space: str) -> dict[str, Any]:
    # https://docs.opensearch.org/latest/mappings/supported-field-types/knn-methods-engines/
    # (method name/engine/space_type/parameters; Faiss HNSW supports l2 and innerproduct) and
    # https://docs.opensearch.org/latest/mappings/supported-field-types/knn-spaces/
    return {
        "type": "knn_vector",
        "dimension": dimension,
        "method": {
            "name": "hnsw",
            "engine": "faiss",
            "space_type": space,
            "parameters": {"m": 16, "ef_construction": 128},
        },
    }


def test_names() -> None:
    names = IndexNames("t-")
    assert (names.read_alias, names.write_alias, names.pattern) == (
        "t-scenes",
        "t-scenes_write",
        "t-scenes_v*",
    )
    assert LAYOUT.index == "t-scenes_v0123456789abcdef"
    assert names.is_scene_index(LAYOUT.index) and not names.is_scene_index("t-scenes")


def test_index_template() -> None:
    # Composable index template: https://docs.opensearch.org/latest/im-plugin/index-templates/
    # (index_patterns, priority, template.settings/mappings); index.knn per
    # https://docs.opensearch.org/latest/vector-search/creating-vector-index/; nested vectors per
    # https://docs.opensearch.org/latest/vector-search/specialized-operations/nested-search-knn/
    assert LAYOUT.template_body() == {
        "index_patterns": ["t-scenes_v*"],
        "priority": 200,
        "template": {
            "settings": {"index": {"knn": True, "number_of_shards": 2, "number_of_replicas": 1}},
            "mappings": {
                "dynamic": "strict",
                "_meta": {"scenedex": META},
                "properties": {
                    "scene_id": {"type": "keyword"},
                    "video_id": {"type": "keyword"},
                    "owner_id": {"type": "keyword"},
                    "start_s": {"type": "float"},
                    "end_s": {"type": "float"},
                    "transcript": {"type": "text"},
                    "visual": {"type": "text"},
                    "summary": {"type": "text"},
                    "transcript_vector": _knn(4, "innerproduct"),
                    "visual_vector": _knn(4, "innerproduct"),
                    "summary_vector": _knn(4, "innerproduct"),
                    "image_vector": _knn(3, "innerproduct"),
                    "faces": {
                        "type": "nested",
                        "properties": {
                            "descriptor": _knn(128, "l2"),
                            "person_id": {"type": "keyword"},
                            "distance": {"type": "float"},
                            "bbox": {"type": "integer", "index": False},
                        },
                    },
                    "person_ids": {"type": "keyword"},
                    # nested: each range keeps its person (a flat object array would mix them)
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
                        "properties": {
                            "clip": {"type": "keyword"},
                            "text": {"type": "keyword"},
                            "face": {"type": "keyword"},
                        },
                    },
                    "indexed_at": {"type": "date"},
                },
            },
        },
    }


def test_bulk_action() -> None:
    # https://docs.opensearch.org/latest/api-reference/document-apis/bulk/: _index/_id in the
    # action line, "version" + "version_type": "external" (indexed only when greater than the
    # stored version); the helper sends the chunk with require_alias=true.
    scene, video, person = uuid.UUID(int=2), uuid.UUID(int=3), uuid.UUID(int=4)
    descriptor = np.zeros(128, np.float32)
    descriptor[0] = 1.45  # raw dlib descriptors are not unit length; the index gets unit ones
    doc = SceneDocument(
        scene_id=scene,
        video_id=video,
        owner_id=OWNER,
        start_s=1.5,
        end_s=3.0,
        texts={"transcript": "a red bike", "visual": "street", "summary": ""},
        text_vectors={"transcript": np.array([1, 0, 0, 0], np.float32), "visual": np.array([0, 1, 0, 0])},
        image_vector=np.array([0, 0, 1], np.float32),
        faces=(DetectedFace((1, 2, 30, 40), descriptor, person, 0.125),),
        person_ids=(person,),
        spec_version="2026-11-21+abcd1234",
        model_ids={"clip": "clip-m", "text": "text-m", "face": "face-m"},
        fingerprint="0123456789abcdef",
        input_hash="abc",
        appearances={person: ((1.5, 2.0), (2.5, 3.0))},
    )
    version = int(datetime(2026, 11, 21, 12, 0, tzinfo=UTC).timestamp() * 1_000_000)

    assert bulk_action("t-scenes_write", doc, version) == {
        "_op_type": "index",
        "_index": "t-scenes_write",
        "_id": "00000000-0000-0000-0000-000000000002",
        "version": 1795262400000000,
        "version_type": "external",
        "_source": {
            "scene_id": "00000000-0000-0000-0000-000000000002",
            "video_id": "00000000-0000-0000-0000-000000000003",
            "owner_id": "00000000-0000-0000-0000-000000000001",
            "start_s": 1.5,
            "end_s": 3.0,
            "transcript": "a red bike",
            "visual": "street",
            "summary": "",
            "transcript_vector": [1.0, 0.0, 0.0, 0.0],
            "visual_vector": [0.0, 1.0, 0.0, 0.0],
            "image_vector": [0.0, 0.0, 1.0],
            "faces": [
                {
                    "descriptor": [1.0] + [0.0] * 127,
                    "person_id": "00000000-0000-0000-0000-000000000004",
                    "distance": 0.125,
                    "bbox": [1, 2, 30, 40],
                }
            ],
            "person_ids": ["00000000-0000-0000-0000-000000000004"],
            "appearances": [
                {"person_id": "00000000-0000-0000-0000-000000000004", "start_s": 1.5, "end_s": 2.0},
                {"person_id": "00000000-0000-0000-0000-000000000004", "start_s": 2.5, "end_s": 3.0},
            ],
            "spec_version": "2026-11-21+abcd1234",
            "fingerprint": "0123456789abcdef",
            "input_hash": "abc",
            "model_ids": {"clip": "clip-m", "text": "text-m", "face": "face-m"},
            "indexed_at": "2026-11-21T12:00:00+00:00",
        },
    }


def test_owner_filtered_delete() -> None:
    # https://docs.opensearch.org/latest/api-reference/document-apis/delete-by-query/ (query body)
    assert delete_body(OWNER, [uuid.UUID(int=2)]) == {
        "query": {
            "bool": {
                "filter": [
                    OWNER_FILTER,
                    {"ids": {"values": ["00000000-0000-0000-0000-000000000002"]}},
                ]
            }
        }
    }


def test_alias_moves() -> None:
    # https://docs.opensearch.org/latest/api-reference/alias/aliases-api/: actions are atomic;
    # "must_exist": true fails the call if the alias was moved meanwhile; is_write_index.
    assert move_alias_actions("t-scenes", "t-scenes_vold", "t-scenes_vnew") == [
        {"remove": {"index": "t-scenes_vold", "alias": "t-scenes", "must_exist": True}},
        {"add": {"index": "t-scenes_vnew", "alias": "t-scenes"}},
    ]
    assert move_alias_actions("t-scenes_write", None, "t-scenes_vnew", write=True) == [
        {"add": {"index": "t-scenes_vnew", "alias": "t-scenes_write", "is_write_index": True}}
    ]


def test_hybrid_text_query_and_its_pipeline() -> None:
    # Hybrid query (at most 5 sub-queries, fused by a search pipeline):
    # https://docs.opensearch.org/latest/query-dsl/compound/hybrid/; kNN with the filter inside
    # the clause (efficient filtering, k results after filtering):
    # https://docs.opensearch.org/latest/vector-search/filter-search-knn/efficient-knn-filtering/
    query = SearchQuery(
        text_vector=np.array([1, 0, 0, 0], np.float32), clip_text_vector=np.array([0, 1, 0], np.float32)
    )
    plan = search_plan(OWNER, query, 5, text="red bike")

    assert plan is not None and (plan.kind, plan.size) == ("hybrid", 5)
    assert plan.weights == (0.25, 0.175, 0.175, 0.175, 0.225)

    def knn(field: str, vector: list[float]) -> dict[str, Any]:
        return {"knn": {field: {"vector": vector, "k": 100, "filter": OWNER_FILTER}}}

    assert plan.body == {
        "size": 100,
        "_source": [*SOURCE, "transcript_vector", "visual_vector", "summary_vector"],  # the best channel
        "query": {
            "hybrid": {
                "queries": [
                    {
                        "bool": {
                            "must": {
                                "multi_match": {
                                    "query": "red bike",
                                    "fields": ["transcript", "visual", "summary"],
                                }
                            },
                            "filter": [OWNER_FILTER],
                        }
                    },
                    knn("transcript_vector", [1.0, 0.0, 0.0, 0.0]),
                    knn("visual_vector", [1.0, 0.0, 0.0, 0.0]),
                    knn("summary_vector", [1.0, 0.0, 0.0, 0.0]),
                    knn("image_vector", [0.0, 1.0, 0.0]),
                ]
            }
        },
    }
    # https://docs.opensearch.org/latest/search-plugins/search-pipelines/normalization-processor/
    # (weights: one per sub-query, in order, summing to 1.0)
    assert IndexNames("t-").pipeline(plan.weights) == "t-scenes-hybrid-2500-1750-1750-1750-2250"
    assert pipeline_body(plan.weights) == {
        "description": "scenedex hybrid scene search: min-max normalised, weighted mean",
        "phase_results_processors": [
            {
                "normalization-processor": {
                    "normalization": {"technique": "min_max"},
                    "combination": {
                        "technique": "arithmetic_mean",
                        "parameters": {"weights": [0.25, 0.175, 0.175, 0.175, 0.225]},
                    },
                }
            }
        ],
    }


def test_with_ocr_the_text_channels_fold_into_one_dis_max_and_hits_name_their_channel() -> None:
    """Four channels (OCR on) and CLIP exceed the hybrid query's 5 sub-queries: the channels'
    kNN clauses become one ``dis_max`` (a scene scored by its best channel, as the table index
    does: https://docs.opensearch.org/latest/query-dsl/compound/disjunction-max/); BM25 also
    searches the ``ocr`` text; the hits carry the OCR text and the channels' vectors."""
    query = SearchQuery(
        text_vector=np.array([1, 0, 0, 0], np.float32), clip_text_vector=np.array([0, 1, 0], np.float32)
    )
    channels = ("transcript", "visual", "summary", "ocr")
    plan = search_plan(OWNER, query, 5, text="exit 42", channels=channels)
    assert plan is not None and plan.kind == "hybrid"
    assert plan.weights == (0.25, 0.525, 0.225)
    bm25, dis_max, clip = plan.body["query"]["hybrid"]["queries"]
    assert bm25["bool"]["must"]["multi_match"]["fields"] == list(channels)
    assert [next(iter(c["knn"])) for c in dis_max["dis_max"]["queries"]] == [f"{c}_vector" for c in channels]
    assert next(iter(clip["knn"])) == "image_vector"
    assert plan.body["_source"] == [*SOURCE, "ocr", *(f"{c}_vector" for c in channels)]

    hit = {
        "_score": 0.8,
        "_source": {
            "scene_id": str(OWNER),
            "video_id": str(OWNER),
            "start_s": 0.0,
            "end_s": 1.0,
            "person_ids": [],
            "ocr": "EXIT 42\nHarbour Street",
            "transcript_vector": [0.0, 1.0, 0.0, 0.0],
            "ocr_vector": [1.0, 0.0, 0.0, 0.0],
        },
    }
    found = search_hit(hit, "hybrid", None, query)
    assert (found.channel, found.ocr_snippet) == ("ocr", "EXIT 42 Harbour Street")


def test_image_query() -> None:
    plan = search_plan(OWNER, SearchQuery(image_vector=np.array([0, 0, 1], np.float32)), 7)

    assert plan is not None and (plan.kind, plan.weights) == ("unit", ())
    assert plan.body == {
        "size": 7,
        "_source": SOURCE,
        "query": {"knn": {"image_vector": {"vector": [0.0, 0.0, 1.0], "k": 7, "filter": OWNER_FILTER}}},
    }


def test_person_query_through_the_nested_faces() -> None:
    # https://docs.opensearch.org/latest/vector-search/specialized-operations/nested-search-knn/
    # (nested kNN; a document scores by its nearest vector; a filter on top-level fields: the
    # owner, and the person among the scene's matched persons)
    face = np.zeros(128, np.float32)
    face[1] = 2.0
    plan = search_plan(OWNER, SearchQuery(face_vector=face, person_id=uuid.UUID(int=4)), 3)

    assert plan is not None and plan.kind == "face"
    assert plan.body == {
        "size": 3,
        "_source": [*SOURCE, "appearances"],  # the hits carry the person's time ranges
        "query": {
            "nested": {
                "path": "faces",
                "score_mode": "max",
                "query": {
                    "knn": {
                        "faces.descriptor": {
                            "vector": [0.0, 1.0] + [0.0] * 126,
                            "k": 3,
                            "filter": {
                                "bool": {
                                    "filter": [
                                        OWNER_FILTER,
                                        {"term": {"person_ids": "00000000-0000-0000-0000-000000000004"}},
                                    ]
                                }
                            },
                        }
                    }
                },
            }
        },
    }


def test_a_face_query_without_a_person_keeps_the_owner_filter_only() -> None:
    # Not a person search (no caller does this today): every owner's scene with a face ranks.
    face = np.zeros(128, np.float32)
    face[1] = 2.0
    plan = search_plan(OWNER, SearchQuery(face_vector=face), 3)

    assert plan is not None and plan.kind == "face"
    knn = plan.body["query"]["nested"]["query"]["knn"]["faces.descriptor"]
    assert knn["filter"] == OWNER_FILTER


def test_queries_leave_out_what_the_read_index_cannot_compare() -> None:
    text = SearchQuery(
        text_vector=np.ones(4, np.float32) / 2, clip_text_vector=np.array([0, 1, 0], np.float32)
    )

    new_clip = search_plan(OWNER, text, 5, text="bike", comparable={"clip": False})
    assert new_clip is not None and new_clip.weights == (0.25, 0.25, 0.25, 0.25)
    new_models = search_plan(OWNER, text, 5, text="bike", comparable={"clip": False, "text": False})
    assert new_models is not None and new_models.kind == "bm25" and "bool" in new_models.body["query"]
    assert search_plan(OWNER, text, 5, comparable={"clip": False, "text": False}) is None
    image = SearchQuery(image_vector=np.array([0, 0, 1], np.float32))
    assert search_plan(OWNER, image, 5, comparable={"clip": False}) is None


def test_hybrid_weights_sum_to_one() -> None:
    assert hybrid_weights([1, 1, 1]) == (0.3334, 0.3333, 0.3333)
    assert sum(hybrid_weights([0.7 / 3] * 3 + [0.3])) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("cosine", [0.9, 0.2, 0.0, -0.4, -1.0])
def test_scores_convert_back_to_the_cosine(cosine: float) -> None:
    # knn-spaces page: Faiss innerproduct scores 1 + ip (ip >= 0) or 1 / (1 - ip); l2 scores
    # 1 / (1 + d^2), and unit vectors have d^2 = 2 - 2 cos.
    unit_score = 1 + cosine if cosine >= 0 else 1 / (1 - cosine)
    face_score = 1 / (1 + (2 - 2 * cosine))
    assert cosine_from_score("unit", unit_score) == pytest.approx(cosine)
    assert cosine_from_score("face", face_score) == pytest.approx(cosine)
    assert cosine_from_score("hybrid", 0.42) == 0.42


def test_person_hits_carry_the_queried_persons_ranges_from_the_source() -> None:
    alice, bob = uuid.UUID(int=4), uuid.UUID(int=5)
    hit = {
        "_score": 1 / (1 + 0.5),  # l2: d^2 = 0.5, cosine 0.75
        "_source": {
            "scene_id": str(uuid.UUID(int=2)),
            "video_id": str(uuid.UUID(int=3)),
            "start_s": 1.5,
            "end_s": 9.0,
            "person_ids": [str(alice), str(bob)],
            "appearances": [
                {"person_id": str(alice), "start_s": 1.5, "end_s": 2.0},
                {"person_id": str(bob), "start_s": 3.0, "end_s": 4.0},
                {"person_id": str(alice), "start_s": 6.5, "end_s": 9.0},
            ],
        },
    }

    found = search_hit(hit, "face", alice)
    assert found.appearances == ((1.5, 2.0), (6.5, 9.0)) and found.score == pytest.approx(0.75)
    assert found.to_dict()["appearances"] == [{"start_s": 1.5, "end_s": 2.0}, {"start_s": 6.5, "end_s": 9.0}]
    assert search_hit(hit, "face", bob).appearances == ((3.0, 4.0),)
    assert search_hit(hit, "face", None).appearances == ()  # not a person search
    assert search_hit(hit, "face", uuid.UUID(int=6)).appearances == ()
    del hit["_source"]["appearances"]  # a scene-doc-v1 document
    assert search_hit(hit, "face", alice).appearances == ()


# -- the bodies against the OpenSearch API specification (../shared/schemas) -----------------------


def test_person_search_body_follows_the_api_specification() -> None:
    face = np.ones(128, np.float32)
    plan = search_plan(OWNER, SearchQuery(face_vector=face, person_id=uuid.UUID(int=4)), 3)
    assert plan is not None
    validator = opensearch_spec.request_body("search")

    assert opensearch_spec.errors(validator, plan.body) == []
    assert opensearch_spec.errors(validator, {**plan.body, "_sources": ["appearances"]})  # can fail
    knn = plan.body["query"]["nested"]["query"]["knn"]["faces.descriptor"]
    assert "person_ids" in str(knn["filter"])  # the person filter is part of what validated
    broken = {"bool": {"filter": [OWNER_FILTER, {"term": {"person_ids": {"values": "x"}}}]}}
    bad_body = {
        **plan.body,
        "query": {
            "nested": {
                **plan.body["query"]["nested"],
                "query": {"knn": {"faces.descriptor": {**knn, "filter": broken}}},
            }
        },
    }
    assert opensearch_spec.errors(validator, bad_body)  # can fail inside the filter


def test_the_whole_index_template_follows_the_api_specification() -> None:
    """The template as ``indices.put_index_template`` takes it from a client, every field of its
    mapping included (about 20 ms in jsonschema-rs; a minute in Python jsonschema, which is why
    this once validated cut-down templates in the integration tier)."""
    body = LAYOUT.template_body()
    validator = opensearch_spec.request_body("indices.put_index_template")

    assert opensearch_spec.errors(validator, body) == []
    assert opensearch_spec.errors(validator, {**body, "template": {"mappings": {"dynamic": "strict_"}}})
    properties = body["template"]["mappings"]["properties"]
    assert {"appearances", "faces", "image_vector", "person_ids"} <= set(properties)
    for name, mapping in properties.items():  # each field is checked, none passed through unread
        broken = copy.deepcopy(body)
        broken["template"]["mappings"]["properties"][name] = {**mapping, "undeclared": 1}
        assert opensearch_spec.errors(validator, broken), name


def test_appearances_mapping_follows_the_api_specification() -> None:
    # The nested field and each of its properties against their own property schemas.
    mapping = LAYOUT.template_body()["template"]["mappings"]["properties"]["appearances"]
    nested = opensearch_spec.schema("_common.mapping___NestedProperty")
    children = mapping["properties"]
    assert opensearch_spec.errors(nested, {**mapping, "properties": {}}) == []
    assert opensearch_spec.errors(nested, {**mapping, "type": "object", "properties": {}})  # can fail
    keyword = opensearch_spec.schema("_common.mapping___KeywordProperty")
    number = opensearch_spec.schema("_common.mapping___FloatNumberProperty")
    assert opensearch_spec.errors(keyword, children["person_id"]) == []
    assert opensearch_spec.errors(number, children["start_s"]) == []
    assert opensearch_spec.errors(number, children["end_s"]) == []
    assert opensearch_spec.errors(number, {"type": "double"})  # can fail


def test_bulk_lines_with_appearances_follow_the_api_specification() -> None:
    person = uuid.UUID(int=4)
    doc = SceneDocument(
        scene_id=uuid.UUID(int=2),
        video_id=uuid.UUID(int=3),
        owner_id=OWNER,
        start_s=0.0,
        end_s=8.0,
        texts={},
        text_vectors={},
        image_vector=None,
        faces=(),
        person_ids=(person,),
        spec_version="v",
        model_ids={},
        fingerprint="f",
        input_hash="h",
        appearances={person: ((4.0, 7.5),)},
    )
    action, source = expand_action(bulk_action("t-scenes_write", doc, 1))
    assert source["appearances"] == [{"person_id": str(person), "start_s": 4.0, "end_s": 7.5}]
    assert (
        opensearch_spec.errors(opensearch_spec.request_body("bulk", "application/x-ndjson"), [action, source])
        == []
    )
    # the request body takes any object as a line (a source), so the action line on its own:
    validator = opensearch_spec.schema("_core.bulk___OperationContainer")
    assert opensearch_spec.errors(validator, action) == []
    assert opensearch_spec.errors(validator, {"index": {**action["index"], "version_type": "newer"}})
