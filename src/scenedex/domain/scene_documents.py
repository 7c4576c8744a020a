"""The search document of a scene, built from its committed records (SEARCH_REINDEX)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from scenedex.domain.freshness import ExpectedStates
from scenedex.domain.model import (
    OCR_CHANNEL,
    EmbeddingRecord,
    RecordState,
    Scene,
    SceneDocument,
    appearances_from_record,
    faces_from_record,
)
from scenedex.domain.ports import RecordKey, UnitOfWork
from scenedex.domain.scene_ocr import ocr_text
from scenedex.domain.spec import EmbeddingStepType

Step = EmbeddingStepType


def _texts(
    scene: Scene, expected: ExpectedStates, ocr: Mapping[RecordKey, EmbeddingRecord]
) -> dict[str, str]:
    """The document's texts: the scene's channels and, when the spec has OCR, its OCR text."""
    texts = {c: scene.text(c) for c in expected.spec.inputs.text_channels}
    if expected.spec.has(Step.SCENE_OCR):  # the OCR text, for lexical search, with or without its channel
        texts[OCR_CHANNEL] = ocr_text(ocr.get((scene.id, "")))
    return texts


def scene_documents(
    uow: UnitOfWork, owner_id: uuid.UUID, scenes: Sequence[Scene], expected: ExpectedStates
) -> list[SceneDocument]:
    """The search documents of ``scenes`` from their committed text, CLIP and face records
    (three queries; four with the OCR records, the ``ocr`` channel's text), stamped with the
    spec's version, model ids, SEARCH_REINDEX fingerprint and the input hash of the records
    they were built from (``ExpectedStates.document``)."""
    ids = [s.id for s in scenes]
    with_text = expected.spec.has(Step.SCENE_TEXT_EMBEDDINGS)  # (SCENEDEX_EMBEDDER__TEXT=off: without)
    texts = uow.records.get(Step.SCENE_TEXT_EMBEDDINGS, owner_id, ids) if with_text else {}
    with_clip = expected.spec.has(Step.SCENE_CLIP_EMBEDDINGS)  # (SCENEDEX_EMBEDDER__CLIP=off: without)
    clips = uow.records.get(Step.SCENE_CLIP_EMBEDDINGS, owner_id, ids) if with_clip else {}
    with_faces = expected.spec.has(Step.SCENE_PERSON_EMBEDDINGS)  # (SCENEDEX_EMBEDDER__FACES=off: without)
    faces = uow.records.get(Step.SCENE_PERSON_EMBEDDINGS, owner_id, ids) if with_faces else {}
    ocr = uow.records.get(Step.SCENE_OCR, owner_id, ids) if expected.spec.has(Step.SCENE_OCR) else {}
    channels = expected.spec.channels
    documents = []
    for scene in scenes:
        upstream: dict[tuple[Step, str], EmbeddingRecord | None] = {
            (Step.SCENE_TEXT_EMBEDDINGS, c): texts.get((scene.id, c)) for c in channels if with_text
        }
        if with_clip:
            upstream[(Step.SCENE_CLIP_EMBEDDINGS, "")] = clips.get((scene.id, ""))
        if with_faces:
            upstream[(Step.SCENE_PERSON_EMBEDDINGS, "")] = faces.get((scene.id, ""))
        states = {key: RecordState(r.fingerprint, r.input_hash) if r else None for key, r in upstream.items()}
        face_record = upstream.get((Step.SCENE_PERSON_EMBEDDINGS, ""))
        scene_faces = faces_from_record(face_record)
        clip_record = upstream.get((Step.SCENE_CLIP_EMBEDDINGS, ""))
        documents.append(
            SceneDocument(
                scene_id=scene.id,
                video_id=scene.video_id,
                owner_id=owner_id,
                start_s=scene.start_s,
                end_s=scene.end_s,
                texts=_texts(scene, expected, ocr),
                text_vectors={
                    c: r.vector
                    for c in channels
                    if (r := upstream.get((Step.SCENE_TEXT_EMBEDDINGS, c))) and r.vector is not None
                },
                image_vector=clip_record.vector if clip_record else None,
                faces=scene_faces,
                person_ids=tuple(dict.fromkeys(f.person_id for f in scene_faces if f.person_id)),
                appearances=appearances_from_record(face_record),
                spec_version=expected.spec.version,
                model_ids=expected.spec.model_ids,
                fingerprint=expected.spec.fingerprint(Step.SEARCH_REINDEX),
                input_hash=expected.document(scene, states).input_hash,
            )
        )
    return documents
