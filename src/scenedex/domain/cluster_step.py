"""The FACE_CLUSTERS step: an owner's unknown faces as suggested persons, kept current.

Runs per owner after its scenes (``ReprocessRunner.run``, and when a worker job finishes). Its
expected state is ``(spec fingerprint of FACE_CLUSTERS, clustering_input)``: the fingerprint
covers the cluster settings and, through ``scene_person_embeddings``, the face model, detection
and sampling; the input hash covers the state of every scene face record of the owner (which
faces are unmatched follows from them: their keyframes, the persons, the rejections) and the
user's splits. So a new method re-clusters (a full clustering), and a changed library is a
small step:

- **incremental** (same fingerprint, same splits): the stored suggestions keep the faces that
  are still unmatched and unchanged (same face id, same descriptor); the other faces, except
  those the last full clustering left as noise, join the nearest suggestion
  (``assign_incrementally``) or wait;
- **full** (``cluster_faces``): when the method or the splits changed, on ``force``, when
  there were none, or when the waiting faces exceed ``FULL_RECLUSTER_FRACTION`` of the owner's
  unknown faces (and ``min_faces``).

A split (``domain.face_decisions``) takes its faces out of any suggestion into one of their own
(``SuggestedPerson.split``), whatever their number. Confirmed faces match their person, so they
leave the unknown faces and their suggestion with them.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from scenedex.domain.errors import BadInputError
from scenedex.domain.events import Event, EventType
from scenedex.domain.face_clusters import (
    ClusteringState,
    ClusterSettings,
    FaceCluster,
    FaceClusterer,
    SuggestedPerson,
    UnmatchedFace,
    assign_incrementally,
    cluster_faces,
    cluster_of,
    unmatched_faces,
)
from scenedex.domain.face_decisions import FaceDecisions, descriptor_hash, same_face
from scenedex.domain.freshness import staleness
from scenedex.domain.limits import DEFAULT_MAX_IMAGE_BYTES
from scenedex.domain.model import RecordState, Scene, content_hash
from scenedex.domain.ports import BlobStore, RecordKey, UnitOfWork, UnitOfWorkFactory, VideoFrames
from scenedex.domain.progress import ProgressTracker
from scenedex.domain.scene_faces import keyframe_time
from scenedex.domain.spec import EmbeddingStepType, ReprocessSpec

Step = EmbeddingStepType

FULL_RECLUSTER_FRACTION = 0.1
"""A full clustering is due when more faces than this share of the owner's unknown faces (and
at least ``min_faces``) wait outside every suggestion: enough new faces to form new ones."""

Thumbnail = Callable[[bytes, tuple[int, int, int, int]], bytes]
"""Crops a face: ``(encoded image, (left, top, right, bottom))`` -> JPEG bytes; raises
``BadInputError`` (``adapters.images.face_thumbnail``)."""


def clustering_input(face_states: Mapping[RecordKey, RecordState], decisions: FaceDecisions) -> str:
    """Input hash of the owner's clustering: every scene face record's state and the splits."""
    states = sorted((str(scene_id), s.fingerprint, s.input_hash) for (scene_id, _), s in face_states.items())
    splits = decisions.splits_hash
    return content_hash(states) if splits is None else content_hash(states, splits)


def suggest(
    faces: Sequence[UnmatchedFace],
    decisions: FaceDecisions,
    settings: ClusterSettings,
    clusterer: FaceClusterer,
    previous: tuple[ClusteringState, Sequence[SuggestedPerson]] | None = None,
) -> tuple[list[SuggestedPerson], tuple[str, ...], tuple[str, ...], bool]:
    """Suggested persons (no thumbnails) from one owner's unknown ``faces``: incrementally from
    ``previous`` when it allows (see the module docstring), else by a full clustering.
    Returns ``(suggestions largest first, noise, waiting, full)``: ``noise`` the faces a full
    clustering left in no suggestion (not offered to the incremental step again), ``waiting``
    the faces since that joined no suggestion."""
    remaining = list(faces)
    suggestions: list[SuggestedPerson] = []
    for group in reversed(decisions.split_groups):  # the latest split of a face wins
        taken = [
            f
            for f in remaining
            if any(d.scene_id == f.scene_id and same_face(d.descriptor, f.descriptor) for d in group)
        ]
        if taken:
            taken_ids = {f.face_id for f in taken}
            remaining = [f for f in remaining if f.face_id not in taken_ids]
            suggestions.append(_suggestion(taken, split=True))
    incremental = _incremental(remaining, decisions, settings, previous)
    if incremental is not None:
        kept, noise, waiting = incremental
        return _largest_first(suggestions + kept), noise, waiting, False
    clusters = cluster_faces(remaining, clusterer, settings)
    by_id = {f.face_id: f for f in remaining}
    for cluster in clusters:
        suggestions.append(SuggestedPerson(cluster, tuple(by_id[i] for i in cluster.face_ids)))
    clustered = {i for cluster in clusters for i in cluster.face_ids}
    return _largest_first(suggestions), tuple(sorted(set(by_id) - clustered)), (), True


def _incremental(
    faces: Sequence[UnmatchedFace],
    decisions: FaceDecisions,
    settings: ClusterSettings,
    previous: tuple[ClusteringState, Sequence[SuggestedPerson]] | None,
) -> tuple[list[SuggestedPerson], tuple[str, ...], tuple[str, ...]] | None:
    """The previous suggestions brought up to date, or None when a full clustering is due."""
    if previous is None or previous[0].splits_hash != decisions.splits_hash:
        return None
    state, stored = previous
    by_id = {f.face_id: f for f in faces}
    kept: list[FaceCluster] = []
    members: dict[str, list[UnmatchedFace]] = {}
    for suggestion in stored:
        if suggestion.split:
            continue
        still = [
            by_id[m.face_id]
            for m in suggestion.members
            if m.face_id in by_id
            and descriptor_hash(by_id[m.face_id].descriptor) == descriptor_hash(m.descriptor)
        ]
        if still:
            kept.append(suggestion.cluster)
            members[suggestion.cluster_id] = still
    placed = {f.face_id for group in members.values() for f in group}
    noise = {f for f in state.noise if f in by_id}
    # new: neither in a suggestion nor noise of the last full clustering (faces seen since, and
    # faces back from a suggestion that was confirmed, e.g. their person deleted)
    new = [f for f in faces if f.face_id not in placed and f.face_id not in noise]
    assignment = assign_incrementally(kept, new, settings)
    for cluster_id, joined in assignment.joined.items():
        members[cluster_id].extend(joined)
    waiting = tuple(sorted(f.face_id for f in assignment.waiting))
    if len(waiting) >= max(settings.min_faces, FULL_RECLUSTER_FRACTION * len(faces)):
        return None
    suggestions = [
        _suggestion(members[c.cluster_id], cluster_id=c.cluster_id) for c in kept if c.cluster_id in members
    ]
    return suggestions, tuple(sorted(noise)), waiting


def _suggestion(
    members: Sequence[UnmatchedFace], *, split: bool = False, cluster_id: str | None = None
) -> SuggestedPerson:
    ordered = sorted(members, key=lambda f: f.face_id)
    cluster = cluster_of(ordered, np.stack([f.descriptor for f in ordered]).astype(np.float32))
    if cluster_id is not None:
        cluster = dataclasses.replace(cluster, cluster_id=cluster_id)
    return SuggestedPerson(cluster, tuple(ordered), split=split)


def _largest_first(suggestions: Iterable[SuggestedPerson]) -> list[SuggestedPerson]:
    return sorted(suggestions, key=lambda s: (-s.size, s.cluster_id))


class FaceClusterStep:
    """Runs FACE_CLUSTERS for one owner through the unit of work, the blob store (keyframes)
    and the video frames (a representative face seen away from the keyframe)."""

    step = Step.FACE_CLUSTERS

    def __init__(
        self,
        clusterer: FaceClusterer,
        settings: ClusterSettings,
        blobs: BlobStore,
        frames: VideoFrames | None = None,
        thumbnail: Thumbnail | None = None,
        max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    ) -> None:
        self.clusterer = clusterer
        self._max_image_bytes = max_image_bytes
        self.settings = settings
        self._blobs = blobs
        self._frames = frames
        self._thumbnail = thumbnail

    def expected(
        self,
        uow_factory: UnitOfWorkFactory,
        owner_id: uuid.UUID,
        spec: ReprocessSpec,
        decisions: FaceDecisions,
    ) -> tuple[RecordState, ClusteringState | None, Mapping[RecordKey, RecordState]]:
        """The expected state (one owner-wide read of the face record states), the stored one
        and the face record states read."""
        with uow_factory() as uow:
            states = uow.records.states(Step.SCENE_PERSON_EMBEDDINGS, owner_id, None)
            stored = uow.face_clusters.state(owner_id)
        return RecordState(spec.fingerprint(self.step), clustering_input(states, decisions)), stored, states

    def run(
        self,
        uow_factory: UnitOfWorkFactory,
        owner_id: uuid.UUID,
        spec: ReprocessSpec,
        decisions: FaceDecisions,
        tracker: ProgressTracker,
        *,
        force: bool = False,
    ) -> None:
        """Bring the owner's suggestions up to date (or count them as current)."""
        tracker.plan(self.step, 1)
        with tracker.timed(self.step):
            expected, stored, states = self.expected(uow_factory, owner_id, spec, decisions)
            reason = staleness(stored.state if stored else None, expected, force)
            if reason is None:
                tracker.skipped(self.step)
                return
            with uow_factory() as uow:
                scenes = {s.id: s for s in uow.scenes.list_for_videos(owner_id, None)}
                records = uow.records.get(Step.SCENE_PERSON_EMBEDDINGS, owner_id, [k[0] for k in states])
                faces = unmatched_faces(records.values(), {s.id: s.video_id for s in scenes.values()})
                previous = None
                if stored is not None and stored.fingerprint == expected.fingerprint and not force:
                    previous = (stored, uow.face_clusters.list(owner_id))
                old_thumbnails = {
                    (s.cluster.representative, descriptor_hash(s.representative.descriptor)): s.thumbnail
                    for s in (previous[1] if previous else [])
                }
                suggestions, noise, waiting, full = suggest(
                    faces, decisions, self.settings, self.clusterer, previous
                )
                suggestions = [self._with_thumbnail(s, scenes, uow, old_thumbnails) for s in suggestions]
                state = ClusteringState(
                    owner_id, expected.fingerprint, expected.input_hash, self.settings.id,
                    decisions.splits_hash, noise, waiting, full, len(faces),
                )  # fmt: skip
                before = {
                    s.cluster_id: (s.cluster.face_ids, s.thumbnail, s.split)
                    for s in (previous[1] if previous else [])
                }
                unchanged = [
                    s.cluster_id
                    for s in suggestions
                    if before.get(s.cluster_id) == (s.cluster.face_ids, s.thumbnail, s.split)
                ]
                uow.face_clusters.replace(state, suggestions, unchanged)
                if changed := clusters_changed(before, suggestions, unchanged):
                    uow.events.add(Event(EventType.FACE_CLUSTERS_UPDATED, owner_id, changed))
                uow.commit()
            tracker.computed(self.step)

    def _with_thumbnail(
        self,
        suggestion: SuggestedPerson,
        scenes: Mapping[uuid.UUID, Scene],
        uow: UnitOfWork,
        old: Mapping[tuple[str, str], bytes | None],
    ) -> SuggestedPerson:
        """The suggestion with the thumbnail of its representative (the previous one when the
        representative face is unchanged)."""
        face = suggestion.representative
        key = (face.face_id, descriptor_hash(face.descriptor))
        if key in old and old[key] is not None:
            return dataclasses.replace(suggestion, thumbnail=old[key])
        scene = scenes.get(face.scene_id)
        if self._thumbnail is None or scene is None:
            return suggestion
        try:
            frame = self._frame(scene, face, uow)
            return dataclasses.replace(suggestion, thumbnail=self._thumbnail(frame, face.bbox))
        except BadInputError:
            return suggestion

    def _frame(self, scene: Scene, face: UnmatchedFace, uow: UnitOfWork) -> bytes:
        """The frame the face's box is in: the keyframe, or the frame at ``best_s`` decoded from
        the stored source. Raises ``BadInputError``."""
        if face.best_s is None or abs(face.best_s - keyframe_time(scene)) < 1e-3 or self._frames is None:
            return self._blobs.read(scene.keyframe_uri, self._max_image_bytes)
        video = uow.videos.get(scene.owner_id, scene.video_id)
        if video is None or not video.source_uri:
            raise BadInputError("no stored source video")
        return self._frames.frames_at(video.source_uri, [face.best_s])[0]


def clusters_changed(
    before: Mapping[str, Any], suggestions: Sequence[SuggestedPerson], unchanged: Sequence[str]
) -> dict[str, Any] | None:
    """The ``face_clusters.updated`` data when the suggestions changed (ids added, removed,
    changed, and how many there are now); None when every one is as before."""
    now = {s.cluster_id for s in suggestions}
    added, removed = sorted(now - set(before)), sorted(set(before) - now)
    changed = sorted(now & set(before) - set(unchanged))
    if not (added or removed or changed):
        return None
    return {"suggestions": len(now), "added": added, "removed": removed, "changed": changed}
