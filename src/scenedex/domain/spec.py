"""The versioned reprocess spec: what "latest embeddings" means.

A spec is an ordered list of steps. Each step's fingerprint hashes everything that changes its
output (step type, model and weights identity, preprocessing, channels, thresholds) together
with the fingerprints of the steps it reads from. A derived record is current when its
fingerprint and input hash match the spec's; so changing one model or threshold marks exactly
that step and the steps downstream of it stale, whether or not the human label is bumped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from scenedex.domain.errors import InvalidRequestError
from scenedex.domain.model import OCR_CHANNEL, TEXT_CHANNELS, content_hash

LATEST_EMBEDDING_SPEC_VERSION = "2026-11-21"
"""Human label of the latest spec (a date). The full version appends a digest of fingerprints."""

DEFAULT_FACE_MATCH_THRESHOLD = 0.4
"""Largest Euclidean distance between L2-normalised dlib face descriptors that still counts as
the same person. dlib's operating point for ``dlib_face_recognition_resnet_model_v1`` is 0.6 on
raw descriptors (99.38% on LFW; http://dlib.net/face_recognition.py.html, face_recognition's
``compare_faces(tolerance=0.6)``); raw descriptors have norms of about 1.45 (measured on
astronaut.png and its flip: 1.457, 1.446), so 0.6 / 1.45 = 0.41 on unit vectors, rounded to 0.4.
Person query embeddings are normalised means, hence the comparison on unit vectors."""

DEFAULT_OCR_MIN_CONFIDENCE = 0.5
"""Lowest recognition confidence of an OCR line the ``scene_ocr`` record keeps: PaddleOCR's own
``drop_score`` default (0.5) for its PP-OCR recognisers. On the labelled OCR check (docs/OCR.md)
every painted word the chosen reader found was read at 0.5 or more."""

OCR_RECORD = "ocr-lines-v1"
"""Version of the OCR record's layout and normalisation (``domain.scene_ocr``), in its step's
fingerprint: a change of either marks every OCR record stale."""

DOCUMENT_SCHEMA = "scene-doc-v2"
"""Version of the scene search document layout (fields and their meaning). v2: the persons'
time ranges in the scene (``SceneDocument.appearances``)."""

FINGERPRINT_LENGTH = 16
OFF = "off"
"""The model id a switched-off role reports (``ReprocessSpec.model_ids``)."""
SWITCHABLE_ROLES = frozenset({"clip", "text", "faces"})
"""Roles a deployment may switch off; the step each removes: ``ROLE_STEPS``."""


class EmbeddingStepType(StrEnum):
    """The steps of a reprocess, in dependency order."""

    PERSON_PHOTO_EMBEDDINGS = "person_photo_embeddings"
    PERSON_QUERY_EMBEDDINGS = "person_query_embeddings"
    SCENE_OCR = "scene_ocr"
    SCENE_TEXT_EMBEDDINGS = "scene_text_embeddings"
    SCENE_CLIP_EMBEDDINGS = "scene_clip_embeddings"
    SCENE_PERSON_EMBEDDINGS = "scene_person_embeddings"
    SEARCH_REINDEX = "search_reindex"
    FACE_CLUSTERS = "face_clusters"


PERSON_STEPS = (EmbeddingStepType.PERSON_PHOTO_EMBEDDINGS, EmbeddingStepType.PERSON_QUERY_EMBEDDINGS)
SCENE_STEPS = (
    EmbeddingStepType.SCENE_OCR,
    EmbeddingStepType.SCENE_TEXT_EMBEDDINGS,
    EmbeddingStepType.SCENE_CLIP_EMBEDDINGS,
    EmbeddingStepType.SCENE_PERSON_EMBEDDINGS,
    EmbeddingStepType.SEARCH_REINDEX,
)


ROLE_STEPS = {
    "clip": (EmbeddingStepType.SCENE_CLIP_EMBEDDINGS,),
    "text": (EmbeddingStepType.SCENE_TEXT_EMBEDDINGS,),
    "faces": (
        EmbeddingStepType.PERSON_PHOTO_EMBEDDINGS,
        EmbeddingStepType.PERSON_QUERY_EMBEDDINGS,
        EmbeddingStepType.SCENE_PERSON_EMBEDDINGS,
        EmbeddingStepType.FACE_CLUSTERS,
    ),
}
"""The steps a switched-off role removes from the spec."""


def removed_steps(off: frozenset[str]) -> frozenset[EmbeddingStepType]:
    """The steps the roles ``off`` remove (``ROLE_STEPS``)."""
    return frozenset(step for role in off for step in ROLE_STEPS[role])


@dataclass(frozen=True)
class EmbeddingStep:
    """One step of the spec: its type, the parameters that shape its output and its upstream.

    ``fingerprint`` is a 16-hex-digit SHA-256 prefix of (type, params, upstream fingerprints).
    """

    type: EmbeddingStepType
    params: Mapping[str, Any]
    depends_on: tuple[EmbeddingStepType, ...]
    fingerprint: str

    @property
    def model_id(self) -> str:
        """The model this step runs (``""`` for steps without a model)."""
        return str(self.params.get("model_id", ""))


@dataclass(frozen=True)
class SpecInputs:
    """Everything the latest spec is made of. Model ids come from the embedder adapters
    (``ImageEmbedder.model_id`` etc.), so a different checkpoint yields a different spec."""

    clip_model_id: str
    clip_preprocessing: str
    text_model_id: str
    face_model_id: str
    face_detection: str
    face_match_threshold: float = DEFAULT_FACE_MATCH_THRESHOLD
    face_sampling: str = "keyframe"
    """Which frames of a scene the faces step reads (``FaceSampling.id``)."""
    face_clusters: str = "dbscan-eps0.4-min3"
    """How unmatched faces are clustered into suggested persons (``ClusterSettings.id``)."""
    text_channels: tuple[str, ...] = TEXT_CHANNELS
    document_schema: str = DOCUMENT_SCHEMA
    off: frozenset[str] = frozenset()
    """Model roles switched off (``SCENEDEX_EMBEDDER__CLIP=off``, ``__TEXT=off``): ``"clip"``
    removes SCENE_CLIP_EMBEDDINGS from the spec, ``"text"`` SCENE_TEXT_EMBEDDINGS (and each from
    what the search documents are built of)."""
    ocr_model_id: str = ""
    """The OCR reader (``OcrReader.model_id``); ``""``: no ``scene_ocr`` step, no ``ocr`` channel."""
    ocr_min_confidence: float = DEFAULT_OCR_MIN_CONFIDENCE

    def __post_init__(self) -> None:
        if not self.off <= SWITCHABLE_ROLES:
            raise InvalidRequestError(f"only {sorted(SWITCHABLE_ROLES)} can be off, got {sorted(self.off)}")
        unknown = set(self.text_channels) - set(TEXT_CHANNELS)
        if unknown or not self.text_channels:
            raise InvalidRequestError(
                f"text channels must be a non-empty subset of {TEXT_CHANNELS}, got {self.text_channels}"
            )
        if not 0 <= self.ocr_min_confidence <= 1:
            raise InvalidRequestError(
                f"OCR confidence cut-off must be in [0, 1], got {self.ocr_min_confidence}"
            )
        if not 0 < self.face_match_threshold < 2:
            raise InvalidRequestError(
                f"face match threshold must be in (0, 2), got {self.face_match_threshold}"
            )


@dataclass(frozen=True)
class ReprocessSpec:
    """A label plus ordered steps; ``version`` is ``"{label}+{digest of all fingerprints}"``."""

    label: str
    steps: tuple[EmbeddingStep, ...]
    inputs: SpecInputs = field(compare=False)

    @property
    def version(self) -> str:
        digest = content_hash([s.fingerprint for s in self.steps])[:8]
        return f"{self.label}+{digest}"

    def step(self, step_type: EmbeddingStepType) -> EmbeddingStep:
        """The step of that type; raises KeyError if the spec lacks it."""
        for step in self.steps:
            if step.type is step_type:
                return step
        raise KeyError(step_type)

    def fingerprint(self, step_type: EmbeddingStepType) -> str:
        return self.step(step_type).fingerprint

    def has(self, step_type: EmbeddingStepType) -> bool:
        """Whether the spec computes ``step_type`` (a switched-off role's step is absent;
        ``scene_ocr`` only when OCR is on)."""
        return any(step.type is step_type for step in self.steps)

    @property
    def scene_steps(self) -> tuple[EmbeddingStepType, ...]:
        """``SCENE_STEPS`` this spec computes, in order."""
        return tuple(step for step in SCENE_STEPS if self.has(step))

    @property
    def record_steps(self) -> tuple[EmbeddingStepType, ...]:
        """The scene steps that store records (all but SEARCH_REINDEX), in order."""
        return tuple(step for step in self.scene_steps if step is not EmbeddingStepType.SEARCH_REINDEX)

    @property
    def channels(self) -> tuple[str, ...]:
        """The text channels embedded per scene: the scene's texts, then ``ocr`` when on (none
        without a text step: ``SCENEDEX_EMBEDDER__TEXT=off``)."""
        if not self.has(EmbeddingStepType.SCENE_TEXT_EMBEDDINGS):
            return ()
        ocr = (OCR_CHANNEL,) if self.has(EmbeddingStepType.SCENE_OCR) else ()
        return (*self.inputs.text_channels, *ocr)

    def channel_fingerprint(self, channel: str) -> str:
        """The fingerprint of one text channel's records: SCENE_TEXT_EMBEDDINGS's for the
        scene's texts; for ``ocr`` a hash of it and SCENE_OCR's, so turning OCR on (or changing
        its model) leaves the other channels' records current."""
        text = self.fingerprint(EmbeddingStepType.SCENE_TEXT_EMBEDDINGS)
        if channel != OCR_CHANNEL:
            return text
        return content_hash(text, self.fingerprint(EmbeddingStepType.SCENE_OCR))[:FINGERPRINT_LENGTH]

    @property
    def model_ids(self) -> dict[str, str]:
        """Model ids by role: ``{"clip": ..., "text": ..., "face": ...}`` and ``"ocr"`` when on."""
        ids = {
            "clip": OFF if "clip" in self.inputs.off else self.inputs.clip_model_id,
            "text": OFF if "text" in self.inputs.off else self.inputs.text_model_id,
            "face": OFF if "faces" in self.inputs.off else self.inputs.face_model_id,
        }
        if self.inputs.ocr_model_id:
            ids["ocr"] = self.inputs.ocr_model_id
        return ids

    @classmethod
    def latest(cls, inputs: SpecInputs, *, label: str = LATEST_EMBEDDING_SPEC_VERSION) -> ReprocessSpec:
        """The latest spec: seven steps in dependency order (eight with SCENE_OCR, when
        ``inputs.ocr_model_id`` is set), fingerprinted from ``inputs``. Without OCR every
        fingerprint is what it was before the step existed."""
        face = {"model_id": inputs.face_model_id, "detection": inputs.face_detection}
        ocr: tuple[EmbeddingStepType, ...] = (EmbeddingStepType.SCENE_OCR,) if inputs.ocr_model_id else ()
        ocr_params = {
            "model_id": inputs.ocr_model_id,
            "min_confidence": inputs.ocr_min_confidence,
            "frames": "keyframe",
            "record": OCR_RECORD,
        }
        definitions: list[tuple[EmbeddingStepType, dict[str, Any], tuple[EmbeddingStepType, ...]]] = [
            (
                EmbeddingStepType.PERSON_PHOTO_EMBEDDINGS,
                {**face, "face_selection": "largest"},
                (),
            ),
            (
                EmbeddingStepType.PERSON_QUERY_EMBEDDINGS,
                {"aggregation": "l2-normalised-mean"},
                (EmbeddingStepType.PERSON_PHOTO_EMBEDDINGS,),
            ),
            *([(EmbeddingStepType.SCENE_OCR, ocr_params, ())] if ocr else []),
            (
                EmbeddingStepType.SCENE_TEXT_EMBEDDINGS,
                {"model_id": inputs.text_model_id, "channels": list(inputs.text_channels)},
                (),
            ),
            (
                EmbeddingStepType.SCENE_CLIP_EMBEDDINGS,
                {"model_id": inputs.clip_model_id, "preprocessing": inputs.clip_preprocessing},
                (),
            ),
            (
                EmbeddingStepType.SCENE_PERSON_EMBEDDINGS,
                {
                    **face,
                    "match_threshold": inputs.face_match_threshold,
                    "match": "nearest-l2",
                    "sampling": inputs.face_sampling,
                    "record": "face-tracks-v1",
                },
                (EmbeddingStepType.PERSON_QUERY_EMBEDDINGS,),
            ),
            (
                EmbeddingStepType.SEARCH_REINDEX,
                {"document_schema": inputs.document_schema},
                tuple(
                    step
                    for step in (
                        EmbeddingStepType.SCENE_TEXT_EMBEDDINGS,
                        EmbeddingStepType.SCENE_CLIP_EMBEDDINGS,
                        EmbeddingStepType.SCENE_PERSON_EMBEDDINGS,
                        *ocr,
                    )
                    if step not in removed_steps(inputs.off)
                ),
            ),
            (
                EmbeddingStepType.FACE_CLUSTERS,
                {"clusters": inputs.face_clusters, "faces": "unmatched-tracks"},
                (EmbeddingStepType.SCENE_PERSON_EMBEDDINGS,),
            ),
        ]
        removed = removed_steps(inputs.off)
        fingerprints: dict[EmbeddingStepType, str] = {}
        steps = []
        for step_type, params, depends_on in definitions:
            if step_type in removed:
                continue
            upstream = [fingerprints[d] for d in depends_on]
            fingerprint = content_hash(step_type.value, params, upstream)[:FINGERPRINT_LENGTH]
            fingerprints[step_type] = fingerprint
            steps.append(EmbeddingStep(step_type, params, depends_on, fingerprint))
        return cls(label=label, steps=tuple(steps), inputs=inputs)
