"""The scene steps (text, CLIP; faces in ``scene_faces.py``) on one skeleton.

The runner brings a scope's scenes up to the spec in batches. Each batch has a ``SceneBatch``
context: its unit of work, the owner, the expected states, the owner's persons, why each item
must be computed (read by the planning pass, force included), the progress tracker and the
keyframe images (read once, shared by the image steps). ``run_scene_step`` is the skeleton
every step shares: take the items that are not current, count the rest as skipped, compute,
upsert, all timed as the step's. A step is one small class: its record keys per scene and its
``compute``; steps computed from the keyframe derive from ``KeyframeStep`` and give only the
model call and the record.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from scenedex.domain.errors import BadInputError
from scenedex.domain.freshness import ExpectedStates
from scenedex.domain.limits import DEFAULT_MAX_IMAGE_BYTES
from scenedex.domain.model import (
    OCR_CHANNEL,
    EmbeddingRecord,
    RecordState,
    Scene,
)
from scenedex.domain.ports import BlobStore, ImageEmbedder, RecordKey, TextEmbedder, UnitOfWork
from scenedex.domain.progress import ProgressTracker, StaleReason
from scenedex.domain.spec import EmbeddingStepType, ReprocessSpec

Step = EmbeddingStepType


def make_record(
    *,
    spec: ReprocessSpec,
    step: Step,
    owner_id: uuid.UUID,
    subject_id: uuid.UUID,
    key: str,
    vector: np.ndarray | None,
    model_id: str,
    input_hash: str,
    payload: Mapping[str, Any],
    fingerprint: str | None = None,
) -> EmbeddingRecord:
    """A derived record of ``step`` under ``spec`` (its version and the step's fingerprint, or
    ``fingerprint`` when given: a text channel's own, ``ReprocessSpec.channel_fingerprint``);
    ``vector`` is stored as float32 (``(d,)``, or ``(n, d)`` for several faces)."""
    return EmbeddingRecord(
        owner_id=owner_id,
        subject_id=subject_id,
        key=key,
        vector=None if vector is None else np.asarray(vector, dtype=np.float32),
        model_id=model_id,
        spec_version=spec.version,
        fingerprint=fingerprint or spec.fingerprint(step),
        input_hash=input_hash,
        payload=payload,
    )


def source_uris(uow: UnitOfWork, owner_id: uuid.UUID, scenes: Sequence[Scene]) -> dict[uuid.UUID, str]:
    """The source video blob URI by video id of ``scenes`` (the faces step samples frames from
    it); a video deleted since is left out (its scenes fall back to their keyframes)."""
    return {
        video.id: video.source_uri
        for video_id in {s.video_id for s in scenes}
        if (video := uow.videos.get(owner_id, video_id)) is not None
    }


def read_blobs(
    blobs: BlobStore, uris: Mapping[uuid.UUID, str], max_bytes: int
) -> dict[uuid.UUID, bytes | BadInputError]:
    """Blob bytes by item id, each at most ``max_bytes``; a missing, empty or larger blob
    becomes that item's ``BadInputError`` (other errors of the store, e.g. an outage,
    propagate)."""
    results: dict[uuid.UUID, bytes | BadInputError] = {}
    for item_id, uri in uris.items():
        try:
            data = blobs.read(uri, max_bytes)
            results[item_id] = data if data else BadInputError("empty file (0 bytes)")
        except BadInputError as error:
            results[item_id] = error
    return results


class People:
    """The owner's person query embeddings as loaded for scene matching: ``vectors`` (``(128,)``
    float32, L2-normalised, by person id) and ``set_hash``, the hash of the states they were
    loaded in (part of a scene face record's input hash); ``references``: per person, its
    confirmed faces (``(m, 128)`` float32 unit rows, ``FaceDecisions.references``), matched
    like more query embeddings of it."""

    def __init__(
        self,
        person_ids: Sequence[uuid.UUID],
        records: Mapping[RecordKey, EmbeddingRecord],
        references: Mapping[uuid.UUID, np.ndarray] | None = None,
    ):
        self.references = dict(references or {})
        states: dict[uuid.UUID, RecordState | None] = {}
        self.vectors: dict[uuid.UUID, np.ndarray] = {}
        for person_id in person_ids:
            record = records.get((person_id, ""))
            states[person_id] = RecordState(record.fingerprint, record.input_hash) if record else None
            if record is not None and record.vector is not None:
                self.vectors[person_id] = record.vector
        self.set_hash = ExpectedStates.person_set_hash(states)


class KeyframeImages:
    """Keyframe bytes of one batch, read on first use (or ahead, ``prefetch``) and shared by
    the image steps."""

    def __init__(self, blobs: BlobStore, scenes: Sequence[Scene], max_bytes: int = DEFAULT_MAX_IMAGE_BYTES):
        self._blobs = blobs
        self._max_bytes = max_bytes
        self._uris = {s.id: s.keyframe_uri for s in scenes}
        self._data: dict[uuid.UUID, bytes | BadInputError] = {}
        self._pending: Future[dict[uuid.UUID, bytes | BadInputError]] | None = None

    def prefetch(self, executor: Executor, scenes: Sequence[Scene]) -> None:
        """Start reading the keyframes of ``scenes`` in ``executor`` (the runner reads the next
        batch's while the current batch computes); ``embed`` waits for the reads, and an error
        of the store (an outage) is raised there, as if read then."""
        uris = {s.id: self._uris[s.id] for s in scenes if s.id in self._uris}
        if uris and self._pending is None:
            self._pending = executor.submit(read_blobs, self._blobs, uris, self._max_bytes)

    def embed(
        self, scenes: Sequence[Scene], embed: Callable[[list[bytes]], list[Any]]
    ) -> dict[uuid.UUID, Any]:
        """``embed`` over the readable keyframes of ``scenes`` (one call, in order); by scene id
        its result, or the ``BadInputError`` of a keyframe that could not be read."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._data.update(pending.result())
        missing = {s.id: self._uris[s.id] for s in scenes if s.id not in self._data}
        self._data.update(read_blobs(self._blobs, missing, self._max_bytes))
        readable = [s.id for s in scenes if not isinstance(self._data[s.id], BadInputError)]
        results: dict[uuid.UUID, Any] = {s.id: self._data[s.id] for s in scenes}
        if readable:
            results.update(zip(readable, embed([self._data[i] for i in readable]), strict=True))  # type: ignore[misc]
        return results


@dataclass(frozen=True, kw_only=True)
class SceneBatch:
    """What every scene step of one batch needs.

    ``reasons``: per step, why each item ``(scene_id, key)`` must be computed (None: current),
    as assessed by the planning pass with the run's ``force``. A batch reuses them rather than
    re-reading the states: a record written in between by a duplicate delivery is then computed
    again, which the idempotent upsert makes harmless, and the no-op path stays a few queries
    per owner.
    """

    uow: UnitOfWork
    owner_id: uuid.UUID
    scenes: Sequence[Scene]
    spec: ReprocessSpec
    expected: ExpectedStates
    people: People
    reasons: Mapping[Step, Mapping[RecordKey, StaleReason | None]]
    tracker: ProgressTracker
    images: KeyframeImages
    sources: Mapping[uuid.UUID, str] = field(default_factory=dict)
    """Source video blob URI by video id (for the faces step's sampled frames); a video
    missing here falls back to its keyframes."""

    def record(
        self,
        *,
        step: Step,
        scene: Scene,
        key: str,
        vector: np.ndarray | None,
        input_hash: str,
        payload: Mapping[str, Any],
        fingerprint: str | None = None,
    ) -> EmbeddingRecord:
        """A record of ``step`` for ``scene`` with the step's model id (and fingerprint, unless
        ``fingerprint`` is given)."""
        return make_record(
            spec=self.spec,
            step=step,
            owner_id=self.owner_id,
            subject_id=scene.id,
            key=key,
            vector=vector,
            model_id=self.spec.step(step).model_id,
            input_hash=input_hash,
            payload=payload,
            fingerprint=fingerprint,
        )


class SceneStep(ABC):
    """One scene step: the record keys it writes per scene and how it computes them."""

    step: ClassVar[Step]

    def keys(self, spec: ReprocessSpec) -> Sequence[str]:
        """The record keys of one scene (``""``: one record per scene)."""
        return ("",)

    @abstractmethod
    def compute(self, batch: SceneBatch, stale: Sequence[tuple[Scene, str]]) -> list[EmbeddingRecord]:
        """Records for the ``stale`` items; counts each item computed or failed on
        ``batch.tracker`` (bad input fails its item, it is not raised)."""


def run_scene_step(step: SceneStep, batch: SceneBatch) -> None:
    """The skeleton every scene step runs per batch: items that are not current are computed
    and upserted in the batch's unit of work, the rest counted as skipped; timed as the step's."""
    keys = step.keys(batch.spec)
    reasons = batch.reasons[step.step]
    with batch.tracker.timed(step.step):
        stale = [
            (scene, key) for scene in batch.scenes for key in keys if reasons[(scene.id, key)] is not None
        ]
        batch.tracker.skipped(step.step, len(batch.scenes) * len(keys) - len(stale))
        batch.uow.records.upsert(step.step, step.compute(batch, stale))


class SceneTextStep(SceneStep):
    """One text embedding per scene and channel; an empty text gets a record without a vector.
    The ``ocr`` channel's text is the scene's OCR record's (written earlier in the batch), its
    input hash that record's state (``ExpectedStates.ocr_channel``)."""

    step = Step.SCENE_TEXT_EMBEDDINGS

    def __init__(self, embedder: TextEmbedder) -> None:
        self._embedder = embedder

    def keys(self, spec: ReprocessSpec) -> Sequence[str]:
        return spec.channels

    def compute(self, batch: SceneBatch, stale: Sequence[tuple[Scene, str]]) -> list[EmbeddingRecord]:
        ocr_ids = [scene.id for scene, channel in stale if channel == OCR_CHANNEL]
        ocr = batch.uow.records.get(Step.SCENE_OCR, batch.owner_id, ocr_ids) if ocr_ids else {}
        texts = []
        for scene, channel in stale:
            if channel == OCR_CHANNEL:
                record = ocr.get((scene.id, ""))
                state = RecordState(record.fingerprint, record.input_hash) if record else None
                text = str(record.payload.get("text", "")) if record else ""
                texts.append((scene, channel, text.strip(), batch.expected.ocr_channel(state).input_hash))
            else:
                input_hash = batch.expected.text(scene, channel).input_hash
                texts.append((scene, channel, scene.text(channel).strip(), input_hash))
        non_empty = [text for _, _, text, _ in texts if text]
        vectors = iter(self._embedder.embed_texts(non_empty) if non_empty else [])
        records = [
            batch.record(
                step=self.step,
                scene=scene,
                key=channel,
                vector=next(vectors) if text else None,
                input_hash=input_hash,
                payload={"empty": not text},
                fingerprint=batch.spec.channel_fingerprint(channel),
            )
            for scene, channel, text, input_hash in texts
        ]
        batch.tracker.computed(self.step, len(records))
        return records


class KeyframeStep(SceneStep):
    """A step computed from each scene's keyframe, one record per scene: a keyframe that cannot
    be read or decoded fails its scene, the batch goes on."""

    @abstractmethod
    def embed(self, images: list[bytes]) -> list[Any]:
        """The model call over encoded images: one result (or ``BadInputError``) per image."""

    @abstractmethod
    def record(self, batch: SceneBatch, scene: Scene, outcome: Any) -> EmbeddingRecord:
        """The record of ``scene`` from its model result."""

    def compute(self, batch: SceneBatch, stale: Sequence[tuple[Scene, str]]) -> list[EmbeddingRecord]:
        scenes = [scene for scene, _ in stale]
        outcomes = batch.images.embed(scenes, self.embed)
        records = []
        for scene in scenes:
            outcome = outcomes[scene.id]
            if isinstance(outcome, BadInputError):
                message = f"keyframe {scene.keyframe_uri}: {outcome}"
                batch.tracker.failed(self.step, scene.id, message, batch.owner_id, scene.video_id)
                continue
            records.append(self.record(batch, scene, outcome))
            batch.tracker.computed(self.step)
        return records


class SceneClipStep(KeyframeStep):
    """The CLIP image embedding of the keyframe (``(d,)`` float32, L2-normalised)."""

    step = Step.SCENE_CLIP_EMBEDDINGS

    def __init__(self, embedder: ImageEmbedder) -> None:
        self._embedder = embedder

    def embed(self, images: list[bytes]) -> list[Any]:
        return list(self._embedder.embed_images(images))

    def record(self, batch: SceneBatch, scene: Scene, outcome: Any) -> EmbeddingRecord:
        return batch.record(
            step=self.step,
            scene=scene,
            key="",
            vector=outcome,
            input_hash=batch.expected.clip(scene).input_hash,
            payload={},
        )
