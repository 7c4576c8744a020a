"""Reprocessing: bring every derived record in a scope up to the spec, idempotently.

``ReprocessRunner`` is given its adapters; it plans (what is missing, stale or current), then
computes only what is not current (everything with ``force``), writing idempotent upserts per
batch. Bad input fails its own item (recorded on the progress) and the run goes on.

Expected state. For every item the spec gives an expected ``(fingerprint, input_hash)`` that is
computable from source rows alone (texts, keyframe and photo content hashes, person photo sets),
so a dry run is exact. A record stores the input hash of what it was actually computed from:
when an upstream record was missing (a failed keyframe, say), the stored hash differs from the
expected one and the item is retried on the next run instead of being taken for current.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

import numpy as np

from scenedex.domain.errors import BadInputError, InvalidRequestError, NotFoundError
from scenedex.domain.model import (
    DetectedFace,
    EmbeddingRecord,
    PersonPhoto,
    PhotoStatus,
    RecordState,
    Scene,
    SceneDocument,
    Video,
    content_hash,
    l2_normalise,
    utcnow,
)
from scenedex.domain.ports import (
    BlobStore,
    FaceEmbedder,
    ImageEmbedder,
    RecordKey,
    SearchIndex,
    TextEmbedder,
    UnitOfWork,
    UnitOfWorkFactory,
)
from scenedex.domain.spec import EmbeddingStepType, ReprocessSpec
from scenedex.domain.logcontext import log_context

Step = EmbeddingStepType
log = logging.getLogger("scenedex.reprocess")


class SpecLogger(logging.LoggerAdapter[logging.Logger]):
    """Logger whose every record carries ``spec_version`` (and any other context) as extras,
    for the formatter set up by ``scenedex.worker.logs``."""

    def __init__(self, spec_version: str, **context: Any) -> None:
        super().__init__(log, {"spec_version": spec_version, **context})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


class ReprocessScope(StrEnum):
    VIDEO = "video"
    OWNER = "owner"
    ALL = "all"


@dataclass(frozen=True)
class ReprocessRequest:
    """What to reprocess. Video scope needs ``video_id`` (``owner_id`` optional, checked when
    given); owner scope needs ``owner_id``; all takes neither. ``since`` (timezone-aware) keeps
    only videos updated at or after it. Raises ``InvalidRequestError`` otherwise."""

    scope: ReprocessScope
    video_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = None
    force: bool = False
    since: datetime | None = None

    def __post_init__(self) -> None:
        if self.scope is ReprocessScope.VIDEO and self.video_id is None:
            raise InvalidRequestError("scope 'video' needs a video id")
        if self.scope is ReprocessScope.OWNER and self.owner_id is None:
            raise InvalidRequestError("scope 'owner' needs an owner id")
        if self.scope is ReprocessScope.OWNER and self.video_id is not None:
            raise InvalidRequestError("scope 'owner' takes no video id (use scope 'video')")
        if self.scope is ReprocessScope.ALL and (self.video_id or self.owner_id):
            raise InvalidRequestError("scope 'all' takes no video or owner id")
        if self.since is not None and self.since.tzinfo is None:
            raise InvalidRequestError("since must carry a timezone (e.g. 2026-11-01T00:00:00Z)")

    @classmethod
    def parse(
        cls,
        scope: str,
        *,
        video_id: str | None = None,
        owner_id: str | None = None,
        force: bool = False,
        since: str | None = None,
    ) -> ReprocessRequest:
        """Build a request from strings (CLI, HTTP); raises ``InvalidRequestError`` with a
        one-line message for a bad scope, uuid or timestamp. A naive ``since`` is taken as UTC."""
        try:
            parsed_scope = ReprocessScope(scope)
        except ValueError:
            choices = ", ".join(s.value for s in ReprocessScope)
            raise InvalidRequestError(f"unknown scope {scope!r} (choose one of: {choices})") from None
        parsed_since = None
        if since:
            try:
                parsed_since = datetime.fromisoformat(since.replace("Z", "+00:00"))
            except ValueError:
                raise InvalidRequestError(f"since: {since!r} is not an ISO 8601 timestamp") from None
            if parsed_since.tzinfo is None:
                parsed_since = parsed_since.replace(tzinfo=utcnow().tzinfo)
        return cls(
            scope=parsed_scope,
            video_id=parse_uuid(video_id, "video id"),
            owner_id=parse_uuid(owner_id, "owner id"),
            force=force,
            since=parsed_since,
        )


def parse_uuid(value: str | None, what: str) -> uuid.UUID | None:
    """``uuid.UUID`` of ``value`` (None stays None); raises ``InvalidRequestError``."""
    if value is None or value == "":
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidRequestError(f"{what}: {value!r} is not a UUID") from None


@dataclass
class StepCounts:
    """Items of one step: planned = computed + skipped + failed once the run is over."""

    planned: int = 0
    computed: int = 0
    skipped: int = 0
    failed: int = 0


@dataclass(frozen=True)
class ItemError:
    """One failed item: which step, which item (photo, person or scene id) and why."""

    step: EmbeddingStepType
    item_id: uuid.UUID
    message: str
    owner_id: uuid.UUID | None = None
    video_id: uuid.UUID | None = None


@dataclass
class ReprocessProgress:
    """Counters per step and the errors of a run (or of one video within a job)."""

    spec_version: str
    steps: dict[EmbeddingStepType, StepCounts] = field(
        default_factory=lambda: {step: StepCounts() for step in EmbeddingStepType}
    )
    errors: list[ItemError] = field(default_factory=list)
    seconds: dict[EmbeddingStepType, float] = field(default_factory=lambda: defaultdict(float))

    @property
    def failed(self) -> int:
        return sum(counts.failed for counts in self.steps.values())

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: ``{"spec_version", "steps": [{"step", "planned", "computed",
        "skipped", "failed", "seconds"}], "errors": [{"step", "item_id", "message", ...}]}``."""
        return {
            "spec_version": self.spec_version,
            "steps": [
                {
                    "step": step.value,
                    "planned": c.planned,
                    "computed": c.computed,
                    "skipped": c.skipped,
                    "failed": c.failed,
                    "seconds": round(self.seconds.get(step, 0.0), 3),
                }
                for step, c in self.steps.items()
            ],
            "errors": [
                {
                    "step": e.step.value,
                    "item_id": str(e.item_id),
                    "owner_id": str(e.owner_id) if e.owner_id else None,
                    "video_id": str(e.video_id) if e.video_id else None,
                    "message": e.message,
                }
                for e in self.errors
            ],
        }


class StaleReason(StrEnum):
    MISSING = "missing"
    FINGERPRINT = "fingerprint_changed"
    INPUT = "input_changed"
    FORCED = "forced"


@dataclass
class StepPlan:
    """Dry-run counts of one step: missing, stale by reason, current."""

    missing: int = 0
    stale: Counter[str] = field(default_factory=Counter)
    current: int = 0

    def count(self, reason: StaleReason | None) -> None:
        """Count one item: current (None), missing, or stale for ``reason``."""
        if reason is None:
            self.current += 1
        elif reason is StaleReason.MISSING:
            self.missing += 1
        else:
            self.stale[reason.value] += 1


@dataclass
class ReprocessPlan:
    spec_version: str
    owners: int = 0
    videos: int = 0
    scenes: int = 0
    steps: dict[EmbeddingStepType, StepPlan] = field(
        default_factory=lambda: {step: StepPlan() for step in EmbeddingStepType}
    )

    def to_dict(self) -> dict[str, Any]:
        """``{"spec_version", "owners", "videos", "scenes", "steps": [{"step", "missing",
        "stale", "stale_by_reason", "current"}]}``."""
        return {
            "spec_version": self.spec_version,
            "owners": self.owners,
            "videos": self.videos,
            "scenes": self.scenes,
            "steps": [
                {
                    "step": step.value,
                    "missing": plan.missing,
                    "stale": sum(plan.stale.values()),
                    "stale_by_reason": dict(plan.stale),
                    "current": plan.current,
                }
                for step, plan in self.steps.items()
            ],
        }


class ProgressListener(Protocol):
    """Told how many items each step plans and as items finish (for progress bars)."""

    def planned(self, step: EmbeddingStepType, total: int) -> None: ...

    def advanced(self, step: EmbeddingStepType, count: int) -> None: ...


@dataclass(frozen=True)
class OwnerScope:
    """The part of a request that falls to one owner; ``whole_owner``: all of its videos (no
    ``since`` filter), so its scenes are listed with one owner-wide query."""

    owner_id: uuid.UUID
    videos: tuple[Video, ...]
    whole_owner: bool = False


def staleness(stored: RecordState | None, expected: RecordState, force: bool = False) -> StaleReason | None:
    """Why a record must be (re)computed, or None when it is current."""
    if stored is None:
        return StaleReason.MISSING
    if stored.fingerprint != expected.fingerprint:
        return StaleReason.FINGERPRINT
    if stored.input_hash != expected.input_hash:
        return StaleReason.INPUT
    return StaleReason.FORCED if force else None


def match_faces(
    faces: Iterable[DetectedFace], person_vectors: Mapping[uuid.UUID, np.ndarray], threshold: float
) -> tuple[DetectedFace, ...]:
    """Each face matched to its nearest person query embedding when the Euclidean distance
    between unit vectors is at most ``threshold`` (see ``DEFAULT_FACE_MATCH_THRESHOLD``).

    ``person_vectors``: ``(128,)`` float32 L2-normalised vectors by person id.
    """
    ids = list(person_vectors)
    matrix = np.stack([person_vectors[i] for i in ids]) if ids else np.zeros((0, 128), np.float32)
    matched = []
    for face in faces:
        if not ids:
            matched.append(face)
            continue
        distances = np.linalg.norm(matrix - l2_normalise(face.descriptor), axis=1)
        best = int(np.argmin(distances))
        distance = float(distances[best])
        person = ids[best] if distance <= threshold else None
        matched.append(DetectedFace(face.bbox, face.descriptor, person, round(distance, 6)))
    return tuple(matched)


def _largest(faces: Sequence[DetectedFace]) -> DetectedFace:
    return max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))


@dataclass(frozen=True)
class SceneStates:
    """Expected states of one scene's records: text per channel, CLIP, faces, search document."""

    texts: Mapping[str, RecordState]
    clip: RecordState
    faces: RecordState
    document: RecordState


SCENE_STEPS = (
    Step.SCENE_TEXT_EMBEDDINGS,
    Step.SCENE_CLIP_EMBEDDINGS,
    Step.SCENE_PERSON_EMBEDDINGS,
    Step.SEARCH_REINDEX,
)
OWNER_WIDE_READ = 2000
"""Above this many scenes, stored states are read with one owner-wide query per step (and
filtered in memory) instead of chunked ``IN`` lists: a no-op over 100k scenes is a handful of
queries, not thousands."""


class ExpectedStates:
    """The expected ``(fingerprint, input_hash)`` of every item of one owner under a spec."""

    def __init__(self, spec: ReprocessSpec, photos: Sequence[PersonPhoto], person_ids: Sequence[uuid.UUID]):
        self.spec = spec
        self.photo_rows = tuple(photos)
        self.photos = {
            p.id: RecordState(spec.fingerprint(Step.PERSON_PHOTO_EMBEDDINGS), content_hash(p.image_sha256))
            for p in photos
        }
        by_person: dict[uuid.UUID, list[tuple[uuid.UUID, RecordState]]] = {pid: [] for pid in person_ids}
        for photo in photos:
            by_person.setdefault(photo.person_id, []).append((photo.id, self.photos[photo.id]))
        self.persons = {
            pid: RecordState(spec.fingerprint(Step.PERSON_QUERY_EMBEDDINGS), self.person_input(entries))
            for pid, entries in by_person.items()
        }
        self.person_set = self.person_set_hash(self.persons)

    @staticmethod
    def person_input(photo_states: Iterable[tuple[uuid.UUID, RecordState | None]]) -> str:
        return content_hash(
            sorted(
                (str(i), s.fingerprint, s.input_hash) if s else (str(i), "missing") for i, s in photo_states
            )
        )

    @staticmethod
    def person_set_hash(person_states: Mapping[uuid.UUID, RecordState | None]) -> str:
        return content_hash(
            sorted(
                (str(i), s.fingerprint, s.input_hash) if s else (str(i), "missing")
                for i, s in person_states.items()
            )
        )

    def text(self, scene: Scene, channel: str) -> RecordState:
        return RecordState(
            self.spec.fingerprint(Step.SCENE_TEXT_EMBEDDINGS), content_hash(channel, scene.text(channel))
        )

    def clip(self, scene: Scene) -> RecordState:
        return RecordState(
            self.spec.fingerprint(Step.SCENE_CLIP_EMBEDDINGS), content_hash(scene.keyframe_sha256)
        )

    def faces(self, scene: Scene, person_set: str | None = None) -> RecordState:
        return RecordState(
            self.spec.fingerprint(Step.SCENE_PERSON_EMBEDDINGS),
            content_hash(scene.keyframe_sha256, person_set or self.person_set),
        )

    def scene(self, scene: Scene) -> SceneStates:
        """Every expected state of one scene (each hash computed once)."""
        texts = {c: self.text(scene, c) for c in self.spec.inputs.text_channels}
        clip = self.clip(scene)
        faces = self.faces(scene)
        upstream: dict[tuple[Step, str], RecordState | None] = {
            (Step.SCENE_TEXT_EMBEDDINGS, c): state for c, state in texts.items()
        }
        upstream[(Step.SCENE_CLIP_EMBEDDINGS, "")] = clip
        upstream[(Step.SCENE_PERSON_EMBEDDINGS, "")] = faces
        return SceneStates(texts, clip, faces, self.document(scene, upstream))

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


class ReprocessRunner:
    """Runs a ReprocessSpec over a scope through the adapters it is given.

    Steps run in the spec's dependency order: per owner, person photo descriptors and person
    query embeddings; then the owner's scenes that are not current, in batches of
    ``batch_size`` taken across videos: text, CLIP, faces, search document. Each batch is one
    unit of work (its records are committed together) so an interrupted run keeps what it
    finished and a rerun skips it.
    """

    def __init__(
        self,
        *,
        uow_factory: UnitOfWorkFactory,
        blobs: BlobStore,
        image_embedder: ImageEmbedder,
        text_embedder: TextEmbedder,
        face_embedder: FaceEmbedder,
        search_index: SearchIndex,
        spec: ReprocessSpec,
        batch_size: int = 32,
    ) -> None:
        if batch_size < 1:
            raise InvalidRequestError(f"batch size must be >= 1, got {batch_size}")
        self._uow_factory = uow_factory
        self._blobs = blobs
        self._image_embedder = image_embedder
        self._text_embedder = text_embedder
        self._face_embedder = face_embedder
        self._index = search_index
        self.spec = spec
        self.batch_size = batch_size
        self.log = SpecLogger(spec.version)

    # -- scope ---------------------------------------------------------------------------

    def resolve(self, request: ReprocessRequest) -> list[OwnerScope]:
        """The owners and videos a request covers; raises ``NotFoundError`` for a video or
        owner that does not exist (or, for a video, is not the given owner's)."""
        with self._uow_factory() as uow:
            if request.scope is ReprocessScope.VIDEO:
                assert request.video_id is not None
                owner_id = request.owner_id or uow.videos.owner_of(request.video_id)
                video = uow.videos.get(owner_id, request.video_id) if owner_id else None
                if video is None:
                    suffix = f" for owner {request.owner_id}" if request.owner_id else ""
                    raise NotFoundError(f"video {request.video_id} not found{suffix}")
                return [OwnerScope(video.owner_id, (video,))]
            if request.scope is ReprocessScope.OWNER:
                assert request.owner_id is not None
                scope = self._owner_scope(uow, request.owner_id, request.since)
                if not scope.videos and not uow.persons.list(request.owner_id):
                    raise NotFoundError(f"owner {request.owner_id} has no videos or persons")
                return [scope]
            return [self._owner_scope(uow, owner, request.since) for owner in uow.list_owner_ids()]

    @staticmethod
    def _owner_scope(uow: UnitOfWork, owner_id: uuid.UUID, since: datetime | None) -> OwnerScope:
        return OwnerScope(owner_id, tuple(uow.videos.list(owner_id, since=since)), whole_owner=since is None)

    @staticmethod
    def _scene_video_ids(scope: OwnerScope) -> list[uuid.UUID] | None:
        return None if scope.whole_owner else [v.id for v in scope.videos]

    # -- dry run -------------------------------------------------------------------------

    def plan(self, request: ReprocessRequest) -> ReprocessPlan:
        """Per step, how many items are missing, stale (by reason) or current; computes nothing.
        Set-based: per owner a few queries (photos, persons, scenes, one per step table),
        whatever the number of videos."""
        plan = ReprocessPlan(self.spec.version)
        for scope in self.resolve(request):
            plan.owners += 1
            plan.videos += len(scope.videos)
            with self._uow_factory() as uow:
                expected = self._expected(uow, scope.owner_id)
                self._plan_items(
                    plan,
                    Step.PERSON_PHOTO_EMBEDDINGS,
                    uow.records.states(Step.PERSON_PHOTO_EMBEDDINGS, scope.owner_id, expected.photos),
                    {(k, ""): v for k, v in expected.photos.items()},
                    request.force,
                )
                self._plan_items(
                    plan,
                    Step.PERSON_QUERY_EMBEDDINGS,
                    uow.records.states(Step.PERSON_QUERY_EMBEDDINGS, scope.owner_id, expected.persons),
                    {(k, ""): v for k, v in expected.persons.items()},
                    request.force,
                )
                scenes = uow.scenes.list_for_videos(scope.owner_id, self._scene_video_ids(scope))
                plan.scenes += len(scenes)
                assessed = self._assess_scenes(uow, scope.owner_id, scenes, expected, request.force)
            for step, items in assessed.items():
                for _, reason in items:
                    plan.steps[step].count(reason)
        return plan

    def _assess_scenes(
        self,
        uow: UnitOfWork,
        owner_id: uuid.UUID,
        scenes: Sequence[Scene],
        expected: ExpectedStates,
        force: bool,
    ) -> dict[Step, list[tuple[Scene, StaleReason | None]]]:
        """Per scene step, every item of ``scenes`` with why it must be computed (None:
        current). One query per step table (owner-wide above ``OWNER_WIDE_READ`` scenes)."""
        ids = None if len(scenes) > OWNER_WIDE_READ else [s.id for s in scenes]
        record_steps = (Step.SCENE_TEXT_EMBEDDINGS, Step.SCENE_CLIP_EMBEDDINGS, Step.SCENE_PERSON_EMBEDDINGS)
        stored = {step: uow.records.states(step, owner_id, ids) for step in record_steps}
        documents = self._index.states(owner_id, ids) if scenes else {}
        texts, clips, faces = (stored[step] for step in record_steps)
        assessed: dict[Step, list[tuple[Scene, StaleReason | None]]] = {step: [] for step in SCENE_STEPS}
        text_items, clip_items, face_items, document_items = (assessed[step] for step in SCENE_STEPS)
        for scene in scenes:
            states = expected.scene(scene)
            for channel, state in states.texts.items():
                text_items.append((scene, staleness(texts.get((scene.id, channel)), state, force)))
            clip_items.append((scene, staleness(clips.get((scene.id, "")), states.clip, force)))
            face_items.append((scene, staleness(faces.get((scene.id, "")), states.faces, force)))
            document_items.append((scene, staleness(documents.get(scene.id), states.document, force)))
        return assessed

    @staticmethod
    def _plan_items(
        plan: ReprocessPlan,
        step: Step,
        stored: Mapping[RecordKey, RecordState],
        expected: Mapping[RecordKey, RecordState],
        force: bool,
    ) -> None:
        for key, state in expected.items():
            plan.steps[step].count(staleness(stored.get(key), state, force))

    # -- run -----------------------------------------------------------------------------

    def run(self, request: ReprocessRequest, listener: ProgressListener | None = None) -> ReprocessProgress:
        """Reprocess the request's scope; returns counts and per-item errors. Item failures
        (bad input) are recorded, not raised; infrastructure errors propagate."""
        scopes = self.resolve(request)
        progress = ReprocessProgress(self.spec.version)
        self.log.info("reprocess %s: %d owner(s), force=%s", request.scope.value, len(scopes), request.force)
        for scope in scopes:
            self.run_persons(scope.owner_id, progress, force=request.force, listener=listener)
            with log_context(video_id=request.video_id):
                self.run_scenes(
                    scope.owner_id,
                    self._scene_video_ids(scope),
                    progress,
                    force=request.force,
                    listener=listener,
                )
        self.log.info("reprocess done: %d failed item(s)", progress.failed)
        return progress

    def run_persons(
        self,
        owner_id: uuid.UUID,
        progress: ReprocessProgress,
        *,
        force: bool = False,
        listener: ProgressListener | None = None,
    ) -> None:
        """Steps 1 and 2 for every person of the owner."""
        with log_context(owner_id=owner_id, spec_version=self.spec.version):
            tracker = _Tracker(progress, listener, self.log)
            with self._uow_factory() as uow:
                expected = self._expected(uow, owner_id)
            photos = expected.photo_rows
            tracker.plan(Step.PERSON_PHOTO_EMBEDDINGS, len(photos))
            tracker.plan(Step.PERSON_QUERY_EMBEDDINGS, len(expected.persons))
            for batch in _batches(photos, self.batch_size):
                with tracker.timed(Step.PERSON_PHOTO_EMBEDDINGS), self._uow_factory() as uow:
                    stored = uow.records.states(Step.PERSON_PHOTO_EMBEDDINGS, owner_id, [p.id for p in batch])
                    stale = [
                        p for p in batch if staleness(stored.get((p.id, "")), expected.photos[p.id], force)
                    ]
                    tracker.skipped(Step.PERSON_PHOTO_EMBEDDINGS, len(batch) - len(stale))
                    self._compute_photos(uow, stale, expected, tracker)
                    uow.commit()
            with tracker.timed(Step.PERSON_QUERY_EMBEDDINGS), self._uow_factory() as uow:
                self._compute_person_queries(uow, owner_id, photos, expected, force, tracker)
                uow.commit()

    def _compute_photos(
        self, uow: UnitOfWork, photos: Sequence[PersonPhoto], expected: ExpectedStates, tracker: _Tracker
    ) -> None:
        step = Step.PERSON_PHOTO_EMBEDDINGS
        images = self._read_blobs({p.id: p.image_uri for p in photos})
        readable = {p.id: data for p in photos if isinstance(data := images[p.id], bytes)}
        detected = dict(
            zip(
                list(readable),
                self._face_embedder.detect_faces(list(readable.values())),
                strict=True,
            )
        )
        records = []
        for photo in photos:
            outcome = detected.get(photo.id, images[photo.id])
            if isinstance(outcome, BadInputError):
                uow.persons.set_photo_status(photo.owner_id, photo.id, PhotoStatus.FAILED, str(outcome))
                tracker.failed(step, photo.id, f"photo {photo.image_uri}: {outcome}", photo.owner_id)
                continue
            assert isinstance(outcome, list)
            face = _largest(outcome) if outcome else None
            status, error = (
                (PhotoStatus.OK, None) if face else (PhotoStatus.NO_FACE, "no face found in the photo")
            )
            uow.persons.set_photo_status(photo.owner_id, photo.id, status, error)
            records.append(
                self._record(
                    step,
                    photo.owner_id,
                    photo.id,
                    "",
                    None if face is None else face.descriptor,
                    self.spec.step(step).model_id,
                    expected.photos[photo.id].input_hash,
                    {
                        "faces": len(outcome),
                        "person_id": str(photo.person_id),
                        "bbox": list(face.bbox) if face else None,
                    },
                )
            )
            tracker.computed(step)
        uow.records.upsert(step, records)

    def _compute_person_queries(
        self,
        uow: UnitOfWork,
        owner_id: uuid.UUID,
        photos: Sequence[PersonPhoto],
        expected: ExpectedStates,
        force: bool,
        tracker: _Tracker,
    ) -> None:
        step = Step.PERSON_QUERY_EMBEDDINGS
        photo_records = uow.records.get(Step.PERSON_PHOTO_EMBEDDINGS, owner_id, [p.id for p in photos])
        stored = uow.records.states(step, owner_id, expected.persons)
        photos_of: dict[uuid.UUID, list[PersonPhoto]] = defaultdict(list)
        for photo in photos:
            photos_of[photo.person_id].append(photo)
        records = []
        for person_id, state in expected.persons.items():
            if not staleness(stored.get((person_id, "")), state, force):
                tracker.skipped(step)
                continue
            used = [photo_records.get((p.id, "")) for p in photos_of[person_id]]
            actual = ExpectedStates.person_input(
                (p.id, RecordState(r.fingerprint, r.input_hash) if r else None)
                for p, r in zip(photos_of[person_id], used, strict=True)
            )
            vectors = [r.vector for r in used if r is not None and r.vector is not None]
            vector = l2_normalise(np.mean(np.stack(vectors), axis=0)) if vectors else None
            records.append(
                self._record(
                    step,
                    owner_id,
                    person_id,
                    "",
                    vector,
                    self.spec.inputs.face_model_id,
                    actual,
                    {"photos": len(vectors)},
                )
            )
            tracker.computed(step)
        uow.records.upsert(step, records)

    def run_video(
        self,
        owner_id: uuid.UUID,
        video_id: uuid.UUID,
        progress: ReprocessProgress,
        *,
        force: bool = False,
        listener: ProgressListener | None = None,
    ) -> None:
        """Scene steps (text, CLIP, faces, search document) for one video of the owner.
        Raises ``NotFoundError`` if the owner has no such video."""
        with self._uow_factory() as uow:
            if uow.videos.get(owner_id, video_id) is None:
                raise NotFoundError(f"video {video_id} not found for owner {owner_id}")
        with log_context(video_id=video_id):
            self.run_scenes(owner_id, [video_id], progress, force=force, listener=listener, video_id=video_id)

    def run_scenes(
        self,
        owner_id: uuid.UUID,
        video_ids: Sequence[uuid.UUID] | None,
        progress: ReprocessProgress,
        *,
        force: bool = False,
        listener: ProgressListener | None = None,
        video_id: uuid.UUID | None = None,
    ) -> None:
        """Scene steps for the owner's scenes of ``video_ids`` (None: all its videos).

        Planned set-wise first (``_assess_scenes``): scenes whose every record is current are
        counted as skipped without further queries, so a no-op costs a few queries per owner.
        The rest run in batches of ``batch_size`` scenes taken across videos (full model
        batches even for short videos), one unit of work per batch. ``video_id`` labels item
        errors when the run is one video's.
        """
        with log_context(owner_id=owner_id, spec_version=self.spec.version):
            tracker = _Tracker(progress, listener, self.log, video_id)
            with self._uow_factory() as uow:
                scenes = uow.scenes.list_for_videos(owner_id, video_ids)
                expected = self._expected(uow, owner_id)
                person_records = uow.records.get(Step.PERSON_QUERY_EMBEDDINGS, owner_id, expected.persons)
                assessed = self._assess_scenes(uow, owner_id, scenes, expected, force)
            people = _People(list(expected.persons), person_records)
            pending = {
                scene.id for items in assessed.values() for scene, reason in items if reason is not None
            }
            for step, items in assessed.items():
                tracker.plan(step, len(items))
                tracker.skipped(step, sum(1 for scene, _ in items if scene.id not in pending))
            work = [scene for scene in scenes if scene.id in pending]
            for batch in _batches(work, self.batch_size):
                self._run_scene_batch(owner_id, batch, expected, people, force, tracker)

    def _run_scene_batch(
        self,
        owner_id: uuid.UUID,
        scenes: Sequence[Scene],
        expected: ExpectedStates,
        people: _People,
        force: bool,
        tracker: _Tracker,
    ) -> None:
        ids = [s.id for s in scenes]
        images = _LazyImages(self, scenes)
        with self._uow_factory() as uow:
            with tracker.timed(Step.SCENE_TEXT_EMBEDDINGS):
                self._compute_texts(uow, owner_id, scenes, expected, force, tracker)
            with tracker.timed(Step.SCENE_CLIP_EMBEDDINGS):
                self._compute_clip(uow, owner_id, scenes, expected, force, tracker, images)
            with tracker.timed(Step.SCENE_PERSON_EMBEDDINGS):
                self._compute_faces(uow, owner_id, scenes, expected, people, force, tracker, images)
            uow.commit()
            with tracker.timed(Step.SEARCH_REINDEX):
                stored = self._index.states(owner_id, ids)
                stale = [s for s in scenes if staleness(stored.get(s.id), expected.document(s), force)]
                tracker.skipped(Step.SEARCH_REINDEX, len(scenes) - len(stale))
                if stale:
                    rejected = self._index.upsert(self._documents(uow, owner_id, stale, expected))
                    for scene in stale:
                        if scene.id in rejected:
                            message = f"search index: {rejected[scene.id]}"
                            tracker.failed(Step.SEARCH_REINDEX, scene.id, message, owner_id, scene.video_id)
                    tracker.computed(Step.SEARCH_REINDEX, len(stale) - len(rejected))

    def _compute_texts(
        self,
        uow: UnitOfWork,
        owner_id: uuid.UUID,
        scenes: Sequence[Scene],
        expected: ExpectedStates,
        force: bool,
        tracker: _Tracker,
    ) -> None:
        step = Step.SCENE_TEXT_EMBEDDINGS
        stored = uow.records.states(step, owner_id, [s.id for s in scenes])
        stale = [
            (scene, channel)
            for scene in scenes
            for channel in self.spec.inputs.text_channels
            if staleness(stored.get((scene.id, channel)), expected.text(scene, channel), force)
        ]
        tracker.skipped(step, len(scenes) * len(self.spec.inputs.text_channels) - len(stale))
        texts = [(scene, channel, scene.text(channel).strip()) for scene, channel in stale]
        non_empty = [text for _, _, text in texts if text]
        vectors = iter(self._text_embedder.embed_texts(non_empty) if non_empty else [])
        records = [
            self._record(
                step,
                owner_id,
                scene.id,
                channel,
                next(vectors) if text else None,
                self.spec.step(step).model_id,
                expected.text(scene, channel).input_hash,
                {"empty": not text},
            )
            for scene, channel, text in texts
        ]
        uow.records.upsert(step, records)
        tracker.computed(step, len(records))

    def _compute_clip(
        self,
        uow: UnitOfWork,
        owner_id: uuid.UUID,
        scenes: Sequence[Scene],
        expected: ExpectedStates,
        force: bool,
        tracker: _Tracker,
        images: _LazyImages,
    ) -> None:
        step = Step.SCENE_CLIP_EMBEDDINGS
        stored = uow.records.states(step, owner_id, [s.id for s in scenes])
        stale = [s for s in scenes if staleness(stored.get((s.id, "")), expected.clip(s), force)]
        tracker.skipped(step, len(scenes) - len(stale))
        outcomes = images.embed(stale, self._image_embedder.embed_images)
        records = []
        for scene in stale:
            outcome = outcomes[scene.id]
            if isinstance(outcome, BadInputError):
                tracker.failed(
                    step, scene.id, f"keyframe {scene.keyframe_uri}: {outcome}", owner_id, scene.video_id
                )
                continue
            records.append(
                self._record(
                    step,
                    owner_id,
                    scene.id,
                    "",
                    outcome,
                    self.spec.step(step).model_id,
                    expected.clip(scene).input_hash,
                    {},
                )
            )
            tracker.computed(step)
        uow.records.upsert(step, records)

    def _compute_faces(
        self,
        uow: UnitOfWork,
        owner_id: uuid.UUID,
        scenes: Sequence[Scene],
        expected: ExpectedStates,
        people: _People,
        force: bool,
        tracker: _Tracker,
        images: _LazyImages,
    ) -> None:
        step = Step.SCENE_PERSON_EMBEDDINGS
        stored = uow.records.states(step, owner_id, [s.id for s in scenes])
        stale = [s for s in scenes if staleness(stored.get((s.id, "")), expected.faces(s), force)]
        tracker.skipped(step, len(scenes) - len(stale))
        outcomes = images.embed(stale, self._face_embedder.detect_faces)
        threshold = self.spec.inputs.face_match_threshold
        records = []
        for scene in stale:
            outcome = outcomes[scene.id]
            if isinstance(outcome, BadInputError):
                tracker.failed(
                    step, scene.id, f"keyframe {scene.keyframe_uri}: {outcome}", owner_id, scene.video_id
                )
                continue
            faces = match_faces(outcome, people.vectors, threshold)
            payload = {
                "faces": [
                    {
                        "bbox": list(f.bbox),
                        "person_id": str(f.person_id) if f.person_id else None,
                        "distance": f.distance,
                    }
                    for f in faces
                ]
            }
            vector = np.stack([f.descriptor for f in faces]).astype(np.float32) if faces else None
            input_hash = expected.faces(scene, people.set_hash).input_hash
            records.append(
                self._record(
                    step, owner_id, scene.id, "", vector, self.spec.step(step).model_id, input_hash, payload
                )
            )
            tracker.computed(step)
        uow.records.upsert(step, records)

    def _documents(
        self, uow: UnitOfWork, owner_id: uuid.UUID, scenes: Sequence[Scene], expected: ExpectedStates
    ) -> list[SceneDocument]:
        ids = [s.id for s in scenes]
        texts = uow.records.get(Step.SCENE_TEXT_EMBEDDINGS, owner_id, ids)
        clips = uow.records.get(Step.SCENE_CLIP_EMBEDDINGS, owner_id, ids)
        faces = uow.records.get(Step.SCENE_PERSON_EMBEDDINGS, owner_id, ids)
        channels = self.spec.inputs.text_channels
        documents = []
        for scene in scenes:
            upstream: dict[tuple[Step, str], EmbeddingRecord | None] = {
                (Step.SCENE_TEXT_EMBEDDINGS, c): texts.get((scene.id, c)) for c in channels
            }
            upstream[(Step.SCENE_CLIP_EMBEDDINGS, "")] = clips.get((scene.id, ""))
            upstream[(Step.SCENE_PERSON_EMBEDDINGS, "")] = faces.get((scene.id, ""))
            states = {
                key: RecordState(r.fingerprint, r.input_hash) if r else None for key, r in upstream.items()
            }
            face_record = upstream[(Step.SCENE_PERSON_EMBEDDINGS, "")]
            scene_faces = _faces_of(face_record)
            clip_record = upstream[(Step.SCENE_CLIP_EMBEDDINGS, "")]
            documents.append(
                SceneDocument(
                    scene_id=scene.id,
                    video_id=scene.video_id,
                    owner_id=owner_id,
                    start_s=scene.start_s,
                    end_s=scene.end_s,
                    texts={c: scene.text(c) for c in channels},
                    text_vectors={
                        c: r.vector
                        for c in channels
                        if (r := upstream[(Step.SCENE_TEXT_EMBEDDINGS, c)]) and r.vector is not None
                    },
                    image_vector=clip_record.vector if clip_record else None,
                    faces=scene_faces,
                    person_ids=tuple(dict.fromkeys(f.person_id for f in scene_faces if f.person_id)),
                    spec_version=self.spec.version,
                    model_ids=self.spec.model_ids,
                    fingerprint=self.spec.fingerprint(Step.SEARCH_REINDEX),
                    input_hash=expected.document(scene, states).input_hash,
                )
            )
        return documents

    def _record(
        self,
        step: Step,
        owner_id: uuid.UUID,
        subject_id: uuid.UUID,
        key: str,
        vector: np.ndarray | None,
        model_id: str,
        input_hash: str,
        payload: Mapping[str, Any],
    ) -> EmbeddingRecord:
        return EmbeddingRecord(
            owner_id=owner_id,
            subject_id=subject_id,
            key=key,
            vector=None if vector is None else np.asarray(vector, dtype=np.float32),
            model_id=model_id,
            spec_version=self.spec.version,
            fingerprint=self.spec.fingerprint(step),
            input_hash=input_hash,
            payload=payload,
        )

    def _expected(self, uow: UnitOfWork, owner_id: uuid.UUID) -> ExpectedStates:
        """The owner's expected states, from its photos and persons (two queries)."""
        photos = uow.persons.list_photos(owner_id)
        return ExpectedStates(self.spec, photos, [p.id for p in uow.persons.list(owner_id)])

    def _read_blobs(self, uris: Mapping[uuid.UUID, str]) -> dict[uuid.UUID, bytes | BadInputError]:
        """Blob bytes by item id; a missing or empty blob becomes that item's BadInputError."""
        results: dict[uuid.UUID, bytes | BadInputError] = {}
        for item_id, uri in uris.items():
            try:
                data = self._blobs.read(uri)
                results[item_id] = data if data else BadInputError("empty file (0 bytes)")
            except BadInputError as error:
                results[item_id] = error
        return results


class _People:
    """The owner's person query embeddings as loaded for scene matching."""

    def __init__(self, person_ids: Sequence[uuid.UUID], records: Mapping[RecordKey, EmbeddingRecord]):
        states: dict[uuid.UUID, RecordState | None] = {}
        self.vectors: dict[uuid.UUID, np.ndarray] = {}
        for person_id in person_ids:
            record = records.get((person_id, ""))
            states[person_id] = RecordState(record.fingerprint, record.input_hash) if record else None
            if record is not None and record.vector is not None:
                self.vectors[person_id] = record.vector
        self.set_hash = ExpectedStates.person_set_hash(states)


class _LazyImages:
    """Keyframe bytes of one batch, read once and shared by the CLIP and face steps."""

    def __init__(self, runner: ReprocessRunner, scenes: Sequence[Scene]):
        self._runner = runner
        self._uris = {s.id: s.keyframe_uri for s in scenes}
        self._data: dict[uuid.UUID, bytes | BadInputError] = {}

    def embed(
        self, scenes: Sequence[Scene], embed: Callable[[list[bytes]], list[Any]]
    ) -> dict[uuid.UUID, Any]:
        missing = {s.id: self._uris[s.id] for s in scenes if s.id not in self._data}
        self._data.update(self._runner._read_blobs(missing))
        readable = [s.id for s in scenes if not isinstance(self._data[s.id], BadInputError)]
        results: dict[uuid.UUID, Any] = {s.id: self._data[s.id] for s in scenes}
        if readable:
            results.update(zip(readable, embed([self._data[i] for i in readable]), strict=True))  # type: ignore[misc]
        return results


def _faces_of(record: EmbeddingRecord | None) -> tuple[DetectedFace, ...]:
    if record is None or record.vector is None:
        return ()
    faces = []
    for entry, descriptor in zip(record.payload["faces"], record.vector, strict=True):
        person = entry.get("person_id")
        faces.append(
            DetectedFace(
                (*entry["bbox"],), descriptor, uuid.UUID(person) if person else None, entry.get("distance")
            )
        )
    return tuple(faces)


def _batches(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Tracker:
    """Updates the progress counters and the optional listener together."""

    def __init__(
        self,
        progress: ReprocessProgress,
        listener: ProgressListener | None,
        log: SpecLogger,
        video_id: uuid.UUID | None = None,
    ):
        self.log = log
        self.progress = progress
        self.listener = listener
        self.video_id = video_id

    def plan(self, step: Step, total: int) -> None:
        self.progress.steps[step].planned += total
        if self.listener:
            self.listener.planned(step, total)

    def skipped(self, step: Step, count: int = 1) -> None:
        self.progress.steps[step].skipped += count
        self._advance(step, count)

    def computed(self, step: Step, count: int = 1) -> None:
        self.progress.steps[step].computed += count
        self._advance(step, count)

    def failed(
        self,
        step: Step,
        item_id: uuid.UUID,
        message: str,
        owner_id: uuid.UUID | None = None,
        video_id: uuid.UUID | None = None,
    ) -> None:
        self.progress.steps[step].failed += 1
        self.progress.errors.append(ItemError(step, item_id, message, owner_id, video_id or self.video_id))
        self.log.warning("%s failed for %s: %s", step.value, item_id, message)
        self._advance(step, 1)

    def _advance(self, step: Step, count: int) -> None:
        if self.listener and count:
            self.listener.advanced(step, count)

    @contextmanager
    def timed(self, step: Step) -> Iterator[None]:
        """Time the block as ``step``'s (its lines carry ``step`` in the log context)."""
        start = time.perf_counter()
        try:
            with log_context(step=step.value):
                yield
        finally:
            self.progress.seconds[step] += time.perf_counter() - start
