"""Freshness: when a derived record is current.

For every item the spec gives an expected ``(fingerprint, input_hash)`` that is computable from
source rows alone (texts, keyframe and photo content hashes, person photo sets), so a dry run is
exact. A record is current when its stored state equals the expected one; otherwise it is
missing, or stale because its fingerprint (the method) or its input hash (the data) changed.
A record stores the input hash of what it was actually computed from: when an upstream record
was missing (a failed keyframe, say), the stored hash differs from the expected one and the item
is retried on the next run instead of being taken for current.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from scenedex.domain.face_decisions import FaceDecisions
from scenedex.domain.model import OCR_CHANNEL, PersonPhoto, RecordState, Scene, content_hash
from scenedex.domain.progress import StaleReason
from scenedex.domain.spec import EmbeddingStepType, ReprocessSpec

Step = EmbeddingStepType


def staleness(stored: RecordState | None, expected: RecordState, force: bool = False) -> StaleReason | None:
    """Why a record must be (re)computed, or None when it is current."""
    if stored is None:
        return StaleReason.MISSING
    if stored.fingerprint != expected.fingerprint:
        return StaleReason.FINGERPRINT
    if stored.input_hash != expected.input_hash:
        return StaleReason.INPUT
    return StaleReason.FORCED if force else None


@dataclass(frozen=True)
class SceneStates:
    """Expected states of one scene's records: text per channel (``ocr`` included when on),
    CLIP (None when the spec has no CLIP step: ``SCENEDEX_EMBEDDER__CLIP=off``), faces, search
    document, and the OCR record (None: no SCENE_OCR in the spec)."""

    texts: Mapping[str, RecordState]
    clip: RecordState | None
    faces: RecordState | None  # None: no faces step (SCENEDEX_EMBEDDER__FACES=off)
    document: RecordState
    ocr: RecordState | None = None


class ExpectedStates:
    """The expected ``(fingerprint, input_hash)`` of every item of one owner under a spec."""

    def __init__(
        self,
        spec: ReprocessSpec,
        photos: Sequence[PersonPhoto],
        person_ids: Sequence[uuid.UUID],
        decisions: FaceDecisions | None = None,
    ):
        self.spec = spec
        self.decisions = decisions or FaceDecisions()
        """The owner's face decisions (``domain.face_decisions``): confirmations are inputs of
        their person's query embedding, rejections of their scene's face record."""
        if not spec.has(Step.PERSON_PHOTO_EMBEDDINGS):  # (SCENEDEX_EMBEDDER__FACES=off: no person steps)
            photos, person_ids = (), ()
        self.photo_rows = tuple(photos)
        self.photos = {
            p.id: RecordState(spec.fingerprint(Step.PERSON_PHOTO_EMBEDDINGS), content_hash(p.image_sha256))
            for p in photos
        }
        by_person: dict[uuid.UUID, list[tuple[uuid.UUID, RecordState]]] = {pid: [] for pid in person_ids}
        for photo in photos:
            by_person.setdefault(photo.person_id, []).append((photo.id, self.photos[photo.id]))
        self.persons = {
            pid: RecordState(
                spec.fingerprint(Step.PERSON_QUERY_EMBEDDINGS),
                self.person_input(entries, self.decisions.reference_hash(pid)),
            )
            for pid, entries in by_person.items()
        }
        self.person_set = self.person_set_hash(self.persons)

    @staticmethod
    def person_input(
        photo_states: Iterable[tuple[uuid.UUID, RecordState | None]], references: str | None = None
    ) -> str:
        """Input hash of a person query embedding: its photos' record states (None: missing)
        and the hash of its confirmed faces (``FaceDecisions.reference_hash``; None: none)."""
        photos = sorted(
            (str(i), s.fingerprint, s.input_hash) if s else (str(i), "missing") for i, s in photo_states
        )
        return content_hash(photos) if references is None else content_hash(photos, references)

    @staticmethod
    def person_set_hash(person_states: Mapping[uuid.UUID, RecordState | None]) -> str:
        """Hash of the owner's person query states (None: missing), part of a scene face
        record's input hash: any person change makes the owner's face matches stale."""
        return content_hash(
            sorted(
                (str(i), s.fingerprint, s.input_hash) if s else (str(i), "missing")
                for i, s in person_states.items()
            )
        )

    def text(self, scene: Scene, channel: str) -> RecordState:
        """State of a text channel's record: its channel's fingerprint and text (for ``ocr``,
        the expected OCR record's state: ``ocr_channel``)."""
        if channel == OCR_CHANNEL:
            return self.ocr_channel(self.ocr(scene))
        return RecordState(self.spec.channel_fingerprint(channel), content_hash(channel, scene.text(channel)))

    def ocr(self, scene: Scene) -> RecordState:
        """State of the scene's OCR record: SCENE_OCR's fingerprint and the keyframe's hash."""
        fingerprint = self.spec.fingerprint(Step.SCENE_OCR)
        return RecordState(fingerprint, content_hash(OCR_CHANNEL, scene.keyframe_sha256))

    def ocr_channel(self, ocr: RecordState | None) -> RecordState:
        """State of an ``ocr`` channel record embedded from an OCR record in state ``ocr``
        (None: missing, so the channel is computed again once the OCR record exists)."""
        source = (ocr.fingerprint, ocr.input_hash) if ocr is not None else ("missing", "")
        return RecordState(self.spec.channel_fingerprint(OCR_CHANNEL), content_hash(OCR_CHANNEL, *source))

    def clip(self, scene: Scene) -> RecordState:
        return RecordState(
            self.spec.fingerprint(Step.SCENE_CLIP_EMBEDDINGS), content_hash(scene.keyframe_sha256)
        )

    def faces(self, scene: Scene, person_set: str | None = None) -> RecordState:
        """State of the scene's face record: its keyframe, ``person_set`` (the persons as
        matched; None: as expected now) and the faces rejected in the scene, if any."""
        rejections = self.decisions.scene_hash(scene.id)
        parts = (scene.keyframe_sha256, person_set or self.person_set)
        return RecordState(
            self.spec.fingerprint(Step.SCENE_PERSON_EMBEDDINGS),
            content_hash(*parts) if rejections is None else content_hash(*parts, rejections),
        )

    def scene(self, scene: Scene) -> SceneStates:
        """Every expected state of one scene (each hash computed once)."""
        ocr = self.ocr(scene) if self.spec.has(Step.SCENE_OCR) else None
        with_text = self.spec.has(Step.SCENE_TEXT_EMBEDDINGS)  # (SCENEDEX_EMBEDDER__TEXT=off: without)
        texts = {c: self.text(scene, c) for c in self.spec.inputs.text_channels} if with_text else {}
        if ocr is not None and with_text:
            texts[OCR_CHANNEL] = self.ocr_channel(ocr)
        clip = self.clip(scene) if self.spec.has(Step.SCENE_CLIP_EMBEDDINGS) else None
        faces = self.faces(scene) if self.spec.has(Step.SCENE_PERSON_EMBEDDINGS) else None
        upstream: dict[tuple[Step, str], RecordState | None] = {
            (Step.SCENE_TEXT_EMBEDDINGS, c): state for c, state in texts.items()
        }
        if clip is not None:  # a spec without CLIP builds documents of the other records
            upstream[(Step.SCENE_CLIP_EMBEDDINGS, "")] = clip
        if faces is not None:
            upstream[(Step.SCENE_PERSON_EMBEDDINGS, "")] = faces
        return SceneStates(texts, clip, faces, self.document(scene, upstream), ocr)

    def document(
        self, scene: Scene, upstream: Mapping[tuple[Step, str], RecordState | None] | None = None
    ) -> RecordState:
        """Expected document state; with ``upstream`` given, the state of a document built
        from those upstream records (None = missing)."""
        if upstream is None:
            return self.scene(scene).document
        parts = sorted(
            (step.value, key, s.fingerprint if s else "missing", s.input_hash if s else "")
            for (step, key), s in upstream.items()
        )
        texts = {c: scene.text(c) for c in self.spec.inputs.text_channels}
        source = (str(scene.video_id), scene.start_s, scene.end_s, texts)
        return RecordState(self.spec.fingerprint(Step.SEARCH_REINDEX), content_hash(source, parts))


Assessment = dict[Step, dict[tuple[uuid.UUID, str], StaleReason | None]]
"""Per scene step, why each item ``(scene_id, key)`` must be computed (None: current); the
search document's and the OCR record's key is ``""``."""


def assess(
    expected: ExpectedStates,
    scenes: Sequence[Scene],
    stored: Mapping[Step, Mapping[tuple[uuid.UUID, str], RecordState]],
    documents: Mapping[uuid.UUID, RecordState],
    force: bool,
) -> Assessment:
    """Why every item of ``scenes`` must be computed, per scene step of the spec, from the
    ``stored`` record states (per record step) and the index's document states."""
    spec = expected.spec
    assessed: Assessment = {step: {} for step in spec.scene_steps}
    single = [
        s for s in (Step.SCENE_OCR, Step.SCENE_CLIP_EMBEDDINGS, Step.SCENE_PERSON_EMBEDDINGS) if spec.has(s)
    ]
    texts = stored.get(Step.SCENE_TEXT_EMBEDDINGS, {})  # (none: SCENEDEX_EMBEDDER__TEXT=off)
    for scene in scenes:
        states = expected.scene(scene)
        for channel, state in states.texts.items():
            key = (scene.id, channel)
            assessed[Step.SCENE_TEXT_EMBEDDINGS][key] = staleness(texts.get(key), state, force)
        wanted: dict[Step, RecordState | None] = {
            Step.SCENE_OCR: states.ocr,
            Step.SCENE_CLIP_EMBEDDINGS: states.clip,
        }
        wanted[Step.SCENE_PERSON_EMBEDDINGS] = states.faces
        for step in single:
            one = wanted[step]
            assert one is not None
            assessed[step][(scene.id, "")] = staleness(stored[step].get((scene.id, "")), one, force)
        document = staleness(documents.get(scene.id), states.document, force)
        assessed[Step.SEARCH_REINDEX][(scene.id, "")] = document
    return assessed
