"""The reprocess runner: bring every derived record in a scope up to the spec, idempotently.

``ReprocessRunner`` is given its adapters; it plans (what is missing, stale or current, by the
rule of ``scenedex.domain.freshness``), then computes only what is not current (everything with
``force``), writing idempotent upserts per batch. Bad input fails its own item (recorded on the
progress) and the run goes on. The request types are in ``request``, the counts and the plan in
``progress``, the scene steps in ``scene_steps``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from scenedex.domain.cluster_step import FaceClusterStep, Thumbnail
from scenedex.domain.digest import (
    SeenStates,
    index_generation,
    items_per_scene,
    scene_context,
    stamp_current,
)
from scenedex.domain.errors import InvalidRequestError, NotFoundError
from scenedex.domain.face_clusters import ClusterSettings, FaceClusterer
from scenedex.domain.face_decisions import FaceDecisions
from scenedex.domain.freshness import Assessment, ExpectedStates, assess, staleness
from scenedex.domain.limits import DEFAULT_MAX_IMAGE_BYTES
from scenedex.domain.logcontext import SpecLogger, log_context
from scenedex.domain.model import Scene, Video
from scenedex.domain.person_steps import compute_person_queries, compute_photo_embeddings
from scenedex.domain.ports import (
    BlobStore,
    FaceEmbedder,
    ImageEmbedder,
    OcrReader,
    SearchIndex,
    TextEmbedder,
    UnitOfWork,
    UnitOfWorkFactory,
    VideoFrames,
)
from scenedex.domain.progress import (
    ProgressListener,
    ProgressTracker,
    ReprocessPlan,
    ReprocessProgress,
    StaleReason,
    StepPlan,
)
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.domain.scene_documents import scene_documents
from scenedex.domain.scene_faces import FaceSampling, SceneFacesStep
from scenedex.domain.scene_ocr import SceneOcrStep
from scenedex.domain.scene_steps import (
    KeyframeImages,
    People,
    SceneBatch,
    SceneClipStep,
    SceneStep,
    SceneTextStep,
    run_scene_step,
    source_uris,
)
from scenedex.domain.spec import EmbeddingStepType, ReprocessSpec

Step = EmbeddingStepType

OWNER_WIDE_READ = 2000
"""Above this many scenes, stored states are read with one owner-wide query per step (and
filtered in memory) instead of chunked ``IN`` lists: a no-op over 100k scenes is a handful of
queries, not thousands."""


@dataclass(frozen=True)
class OwnerScope:
    """The part of a request that falls to one owner; ``whole_owner``: all of its videos (no
    ``since`` filter), so its scenes are listed with one owner-wide query."""

    owner_id: uuid.UUID
    videos: tuple[Video, ...]
    whole_owner: bool = False


class ReprocessRunner:
    """Runs a ReprocessSpec over a scope through the adapters it is given.

    Steps run in the spec's dependency order: per owner, person photo descriptors and person
    query embeddings; then the owner's scenes that are not current, in batches of
    ``batch_size`` taken across videos: the scene steps (``scene_steps``: text, CLIP, faces, on
    the skeleton of ``scenedex.domain.scene_steps``), then the search document; then, given a
    ``face_clusterer``, the owner's suggested persons (``domain.cluster_step``). Each batch is
    one unit of work (its records are committed together) so an interrupted run keeps what it
    finished and a rerun skips it. Raises ``InvalidRequestError`` for a batch size under 1.
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
        video_frames: VideoFrames | None = None,
        face_clusterer: FaceClusterer | None = None,
        face_thumbnail: Thumbnail | None = None,
        max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        ocr_reader: OcrReader | None = None,
    ) -> None:
        if batch_size < 1:
            raise InvalidRequestError(f"batch size must be >= 1, got {batch_size}")
        if spec.has(Step.SCENE_OCR) and ocr_reader is None:
            raise InvalidRequestError("the spec has scene_ocr but the runner was given no OCR reader")
        self._uow_factory = uow_factory
        self._blobs = blobs
        self._max_image_bytes = max_image_bytes
        self._face_embedder = face_embedder
        self._index = search_index
        face_sampling = FaceSampling.parse(spec.inputs.face_sampling)
        self._samples_video = not face_sampling.keyframe_only
        ocr = (SceneOcrStep(ocr_reader, spec.inputs.ocr_min_confidence),) if ocr_reader is not None else ()
        faces = SceneFacesStep(face_embedder, spec.inputs.face_match_threshold, face_sampling, video_frames)
        steps: tuple[SceneStep, ...] = (
            *ocr,
            SceneTextStep(text_embedder),
            SceneClipStep(image_embedder),
            faces,
        )
        self.scene_steps = tuple(step for step in steps if spec.has(step.step))
        """The record steps of a scene batch the spec has, in order (the search document follows)."""
        self.cluster_step = (
            None
            if face_clusterer is None or not spec.has(Step.FACE_CLUSTERS)
            else FaceClusterStep(
                face_clusterer,
                ClusterSettings.parse(spec.inputs.face_clusters),
                blobs,
                video_frames,
                face_thumbnail,
                max_image_bytes,
            )
        )
        """FACE_CLUSTERS, per owner after its scenes (None: no clusterer given, not run)."""
        self.spec = spec
        self.batch_size = batch_size
        self.log = SpecLogger(spec.version)

    @property
    def uow_factory(self) -> UnitOfWorkFactory:
        """The unit-of-work factory the runner reads and writes through."""
        return self._uow_factory

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
        plan = ReprocessPlan(self.spec.version, steps={step.type: StepPlan() for step in self.spec.steps})
        for scope in self.resolve(request):
            plan.owners += 1
            plan.videos += len(scope.videos)
            with self._uow_factory() as uow:
                expected = self._expected(uow, scope.owner_id)
                for step, states in (
                    (Step.PERSON_PHOTO_EMBEDDINGS, expected.photos),
                    (Step.PERSON_QUERY_EMBEDDINGS, expected.persons),
                ):
                    stored = uow.records.states(step, scope.owner_id, states)
                    for subject_id, state in states.items():
                        plan.steps[step].count(staleness(stored.get((subject_id, "")), state, request.force))
                scenes, current = self._scenes_to_assess(
                    uow, scope.owner_id, self._scene_video_ids(scope), expected, request.force
                )
                plan.scenes += len(scenes) + current
                assessed = self._assess_scenes(uow, scope.owner_id, scenes, expected, request.force, current)
            if self.cluster_step is not None:  # stale too when a face record is to be computed
                wanted, clustered, _ = self.cluster_step.expected(
                    self._uow_factory, scope.owner_id, self.spec, expected.decisions
                )
                reason = staleness(clustered.state if clustered else None, wanted, request.force)
                faces_change = any(r is not None for r in assessed[Step.SCENE_PERSON_EMBEDDINGS].values())
                plan.steps[Step.FACE_CLUSTERS].count(reason or (StaleReason.INPUT if faces_change else None))
            for step, reasons in assessed.items():
                counts = plan.steps.setdefault(step, StepPlan())
                counts.current += current * items_per_scene(expected)[step]
                for reason in reasons.values():
                    counts.count(reason)
        return plan

    def _scenes_to_assess(
        self,
        uow: UnitOfWork,
        owner_id: uuid.UUID,
        video_ids: Sequence[uuid.UUID] | None,
        expected: ExpectedStates,
        force: bool,
    ) -> tuple[list[Scene], int]:
        """The scenes of the scope to assess record by record, and how many others are current
        by their digest (``domain.digest``): with ``force``, every scene and 0."""
        if force:
            return uow.scenes.list_for_videos(owner_id, video_ids), 0
        context = scene_context(expected, index_generation(self._index))
        return uow.scenes.not_current_under(owner_id, video_ids, context)

    def forget_current(self, owner_id: uuid.UUID, scene_ids: Sequence[uuid.UUID]) -> None:
        """Forget that these scenes' records are current (their digest): the next run assesses
        them record by record. For changes made outside the runner, e.g. a document deleted
        from the search index of a scene that still exists (``scenedex index verify --repair``
        calls it for what it re-sends)."""
        with self._uow_factory() as uow:
            uow.scenes.clear_current(owner_id, scene_ids)
            uow.commit()

    def _assess_scenes(
        self,
        uow: UnitOfWork,
        owner_id: uuid.UUID,
        scenes: Sequence[Scene],
        expected: ExpectedStates,
        force: bool,
        others: int = 0,
        seen: SeenStates | None = None,
    ) -> Assessment:
        """Why every item of ``scenes`` must be computed (None: current), per scene step. One
        query per step table and one of the search index: owner-wide above ``OWNER_WIDE_READ``
        scenes unless they are under a quarter of the scope (``others``: its scenes current by
        their digest, not assessed), else by ids. ``seen`` is given the states read."""
        if not scenes:
            return {step: {} for step in self.spec.scene_steps}
        wide = len(scenes) > OWNER_WIDE_READ and 4 * len(scenes) > len(scenes) + others
        ids = None if wide else [s.id for s in scenes]
        stored = {step.step: uow.records.states(step.step, owner_id, ids) for step in self.scene_steps}
        documents = self._index.states(owner_id, ids) if scenes else {}
        if seen is not None:
            seen.records, seen.documents = stored, documents
        return assess(expected, scenes, stored, documents, force)

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
            self.run_clusters(scope.owner_id, progress, force=request.force, listener=listener)
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
            tracker = ProgressTracker(progress, listener, self.log)
            with self._uow_factory() as uow:
                expected = self._expected(uow, owner_id)
            photos = expected.photo_rows
            tracker.plan(Step.PERSON_PHOTO_EMBEDDINGS, len(photos))
            tracker.plan(Step.PERSON_QUERY_EMBEDDINGS, len(expected.persons))
            for start in range(0, len(photos), self.batch_size):
                batch = photos[start : start + self.batch_size]
                with tracker.timed(Step.PERSON_PHOTO_EMBEDDINGS), self._uow_factory() as uow:
                    stored = uow.records.states(Step.PERSON_PHOTO_EMBEDDINGS, owner_id, [p.id for p in batch])
                    stale = [
                        p for p in batch if staleness(stored.get((p.id, "")), expected.photos[p.id], force)
                    ]
                    tracker.skipped(Step.PERSON_PHOTO_EMBEDDINGS, len(batch) - len(stale))
                    compute_photo_embeddings(
                        uow, stale, expected, tracker, self._blobs, self._face_embedder, self._max_image_bytes
                    )
                    uow.commit()
            with tracker.timed(Step.PERSON_QUERY_EMBEDDINGS), self._uow_factory() as uow:
                compute_person_queries(uow, owner_id, photos, expected, force, tracker)
                uow.commit()

    def run_clusters(
        self,
        owner_id: uuid.UUID,
        progress: ReprocessProgress,
        *,
        force: bool = False,
        listener: ProgressListener | None = None,
    ) -> None:
        """FACE_CLUSTERS for the owner: its suggested persons brought up to date from its scene
        face records and decisions (``domain.cluster_step``); nothing without a clusterer."""
        if self.cluster_step is None:
            return
        with log_context(owner_id=owner_id, spec_version=self.spec.version):
            tracker = ProgressTracker(progress, listener, self.log)
            with self._uow_factory() as uow:
                decisions = FaceDecisions(uow.face_decisions.list(owner_id))
            self.cluster_step.run(self._uow_factory, owner_id, self.spec, decisions, tracker, force=force)

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
        self.resolve(ReprocessRequest(ReprocessScope.VIDEO, video_id=video_id, owner_id=owner_id))
        with log_context(video_id=video_id):
            self.run_scenes(owner_id, [video_id], progress, force=force, listener=listener)

    def run_scenes(
        self,
        owner_id: uuid.UUID,
        video_ids: Sequence[uuid.UUID] | None,
        progress: ReprocessProgress,
        *,
        force: bool = False,
        listener: ProgressListener | None = None,
    ) -> None:
        """Scene steps for the owner's scenes of ``video_ids`` (None: all its videos).

        Scenes whose digest matches the owner's context (``domain.digest``) are counted as
        skipped from one SQL statement; the others are assessed set-wise (``_assess_scenes``).
        Those not current run in batches of ``batch_size`` scenes taken across videos (full
        model batches even for short videos), one unit of work per batch; the scenes found
        current, and every batch's scenes once written, get their digest (read back first).
        ``force`` ignores the digest.
        """
        with log_context(owner_id=owner_id, spec_version=self.spec.version):
            tracker = ProgressTracker(progress, listener, self.log)
            with self._uow_factory() as uow:
                expected = self._expected(uow, owner_id)
                scenes, current = self._scenes_to_assess(uow, owner_id, video_ids, expected, force)
                person_records = uow.records.get(Step.PERSON_QUERY_EMBEDDINGS, owner_id, expected.persons)
                seen = SeenStates()
                assessed = self._assess_scenes(uow, owner_id, scenes, expected, force, current, seen)
            people = People(
                list(expected.persons), person_records, expected.decisions.references(expected.persons)
            )
            pending = {
                scene_id
                for reasons in assessed.values()
                for (scene_id, _), r in reasons.items()
                if r is not None
            }
            per_scene = items_per_scene(expected)
            for step, reasons in assessed.items():
                tracker.plan(step, len(reasons) + current * per_scene[step])
                skipped = sum(1 for scene_id, _ in reasons if scene_id not in pending)
                tracker.skipped(step, skipped + current * per_scene[step])
            work = [scene for scene in scenes if scene.id in pending]
            batches = [
                work[start : start + self.batch_size] for start in range(0, len(work), self.batch_size)
            ]
            with ThreadPoolExecutor(1, thread_name_prefix="keyframes") as reader:
                images = [KeyframeImages(self._blobs, batch, self._max_image_bytes) for batch in batches]
                for index, batch in enumerate(batches):
                    if index + 1 < len(batches):  # read the next batch's keyframes meanwhile
                        images[index + 1].prefetch(
                            reader, self._keyframe_scenes(batches[index + 1], assessed)
                        )
                    self._run_scene_batch(owner_id, batch, expected, people, assessed, tracker, images[index])
            found_current = [scene for scene in scenes if scene.id not in pending]
            stamp_current(self._uow_factory, self._index, owner_id, found_current, expected, seen)

    @staticmethod
    def _keyframe_scenes(scenes: Sequence[Scene], assessed: Assessment) -> list[Scene]:
        """The scenes of a batch whose keyframe will be read: CLIP or OCR to compute, or faces to
        detect (a faces record stale only by its input is matched again from its tracks)."""
        clip, ocr = assessed.get(Step.SCENE_CLIP_EMBEDDINGS, {}), assessed.get(Step.SCENE_OCR, {})
        faces = assessed.get(Step.SCENE_PERSON_EMBEDDINGS, {})
        return [
            s
            for s in scenes
            if clip.get((s.id, "")) is not None
            or ocr.get((s.id, "")) is not None
            or faces.get((s.id, "")) not in (None, StaleReason.INPUT)
        ]

    def _run_scene_batch(
        self,
        owner_id: uuid.UUID,
        scenes: Sequence[Scene],
        expected: ExpectedStates,
        people: People,
        assessed: Assessment,
        tracker: ProgressTracker,
        images: KeyframeImages | None = None,
    ) -> None:
        """The record steps in one unit of work (committed together, with the scenes' digest
        cleared first), then the documents, then the digest of the scenes now current.
        ``images``: the batch's keyframes, possibly being read ahead already."""
        images = images or KeyframeImages(self._blobs, scenes, self._max_image_bytes)
        with self._uow_factory() as uow:
            uow.scenes.clear_current(owner_id, [s.id for s in scenes])
            sources = source_uris(uow, owner_id, scenes) if self._samples_video else {}
            batch = SceneBatch(
                uow=uow,
                owner_id=owner_id,
                scenes=scenes,
                spec=self.spec,
                expected=expected,
                people=people,
                reasons=assessed,
                tracker=tracker,
                images=images,
                sources=sources,
            )
            for step in self.scene_steps:
                run_scene_step(step, batch)
            uow.commit()
            self._reindex(batch)
        stamp_current(self._uow_factory, self._index, owner_id, scenes, expected)

    def _reindex(self, batch: SceneBatch) -> None:
        """SEARCH_REINDEX for the batch: documents built from the committed records; a
        document the index rejects fails its scene (retried next run)."""
        step, owner_id, tracker = Step.SEARCH_REINDEX, batch.owner_id, batch.tracker
        with tracker.timed(step):
            stale = [s for s in batch.scenes if batch.reasons[step][(s.id, "")] is not None]
            tracker.skipped(step, len(batch.scenes) - len(stale))
            if stale:
                rejected = self._index.upsert(scene_documents(batch.uow, owner_id, stale, batch.expected))
                self._drop_vanished(owner_id, stale)
                for scene in stale:
                    if scene.id in rejected:
                        message = f"search index: {rejected[scene.id]}"
                        tracker.failed(step, scene.id, message, owner_id, scene.video_id)
                tracker.computed(step, len(stale) - len(rejected))

    def _drop_vanished(self, owner_id: uuid.UUID, scenes: Sequence[Scene]) -> None:
        """Delete the documents just written for scenes that no longer exist. A video deletion
        removes rows, then documents; this check runs after the write, so whichever comes last
        removes the document: the deletion (the scene still existed here, so the write came
        before its rows went) or this (the scene is gone)."""
        with self._uow_factory() as uow:
            existing = uow.scenes.existing(owner_id, [s.id for s in scenes])
        vanished = [s.id for s in scenes if s.id not in existing]
        if vanished:
            self.log.info("%d scenes deleted during the run: their documents removed", len(vanished))
            self._index.delete(owner_id, vanished)

    def _expected(self, uow: UnitOfWork, owner_id: uuid.UUID) -> ExpectedStates:
        """The owner's expected states, from its photos, persons and face decisions (three
        queries)."""
        photos = uow.persons.list_photos(owner_id)
        decisions = FaceDecisions(uow.face_decisions.list(owner_id))
        return ExpectedStates(self.spec, photos, [p.id for p in uow.persons.list(owner_id)], decisions)
