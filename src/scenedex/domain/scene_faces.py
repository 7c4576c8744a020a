"""The scene faces step: faces from frames sampled across each scene, linked into face tracks,
matched to the owner's persons, with each person's appearances (time ranges) in the scene.

Per scene the step detects faces in its keyframe (at the scene's middle, ``keyframe_time``)
and, when ``FaceSampling`` asks for more than one frame, in frames decoded from the stored
source video at ``sample_times`` (``VideoFrames``); all frames of a batch go to the face
embedder in one call. A scene whose source video cannot be read falls back to its keyframe
and says so in the record (``frames_from``/``fallback``). See ``domain/face_tracks.py`` for
tracks and appearances.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scenedex.domain.errors import BadInputError
from scenedex.domain.face_tracks import (
    FaceTrack,
    SampledFaces,
    appearances,
    build_tracks,
    match_tracks,
    sample_times,
)
from scenedex.domain.model import DetectedFace, EmbeddingRecord, Scene, faces_from_record
from scenedex.domain.ports import FaceEmbedder, VideoFrames
from scenedex.domain.progress import StaleReason
from scenedex.domain.scene_steps import SceneBatch, SceneStep, Step

DETECTED_IN = "keyframe_sha256"
"""Payload key of a scene face record: the hash of the keyframe its faces were detected in."""


@dataclass(frozen=True)
class FaceSampling:
    """Which frames of a scene the faces step looks at: one every ``interval_s`` seconds, at most
    ``max_frames`` (the keyframe included); ``gap_s``: appearances of one person closer than
    this are merged (seconds). ``max_frames`` 1 (or ``interval_s`` 0) is the keyframe alone.
    ``id`` is part of the faces step's fingerprint. Raises ``ValueError`` for values out of range."""

    interval_s: float = 1.0
    max_frames: int = 1
    gap_s: float = 2.0

    def __post_init__(self) -> None:
        if self.interval_s < 0 or self.max_frames < 1 or self.gap_s < 0:
            raise ValueError(f"bad face sampling {self}: interval_s >= 0, max_frames >= 1, gap_s >= 0")

    @property
    def keyframe_only(self) -> bool:
        return self.max_frames == 1 or self.interval_s == 0

    @property
    def id(self) -> str:
        """``keyframe``, or e.g. ``every1s-max8-gap2s`` (``parse`` reads it back)."""
        if self.keyframe_only:
            return "keyframe"
        return f"every{self.interval_s:g}s-max{self.max_frames}-gap{self.gap_s:g}s"

    @classmethod
    def parse(cls, sampling_id: str) -> FaceSampling:
        """The sampling an ``id`` names (the spec keeps the id); raises ``ValueError`` for an
        id ``id`` never makes."""
        if sampling_id == "keyframe":
            return cls(max_frames=1)
        match = re.fullmatch(r"every([0-9.e+-]+)s-max([0-9]+)-gap([0-9.e+-]+)s", sampling_id)
        if match is None:
            raise ValueError(f"not a face sampling id: {sampling_id!r}")
        return cls(float(match[1]), int(match[2]), float(match[3]))


def keyframe_time(scene: Scene) -> float:
    """The time (seconds) a scene's keyframe stands for: its middle (ingest takes the middle
    frame; upstream keyframes are taken as such)."""
    return (scene.start_s + scene.end_s) / 2


class SceneFacesStep(SceneStep):
    """Face tracks of each scene (``(n, 128)`` float32 unit track descriptors) matched to the
    owner's persons at ``threshold``, with their times and the persons' appearances.

    A record that is stale only because the owner's persons changed (its reason is the input,
    so the fingerprint, detection and sampling included, is the same; and it was detected in
    the scene's keyframe as it is now, ``DETECTED_IN``) is matched again from its stored tracks:
    no frame read, no face detection. Anything else detects again.
    """

    step = Step.SCENE_PERSON_EMBEDDINGS

    def __init__(
        self,
        embedder: FaceEmbedder,
        threshold: float,
        sampling: FaceSampling | None = None,
        frames: VideoFrames | None = None,
    ) -> None:
        self._embedder = embedder
        self._threshold = threshold
        self._sampling = sampling or FaceSampling()
        self._frames = frames

    def compute(self, batch: SceneBatch, stale: Sequence[tuple[Scene, str]]) -> list[EmbeddingRecord]:
        stored = self._rematchable(batch, stale)
        records = []
        for scene, _ in stale:
            if scene.id in stored:
                tracks = tracks_from_record(stored[scene.id])
                records.append(self._record(batch, scene, tracks, stored[scene.id].payload))
                batch.tracker.computed(self.step)
        todo = [scene for scene, _ in stale if scene.id not in stored]
        if not todo:
            return records
        keyframes = batch.images.embed(todo, lambda images: list(images))
        sampled, notes = self._sampled_frames(
            batch, [s for s in todo if not isinstance(keyframes[s.id], BadInputError)]
        )
        images: list[bytes] = []
        owners: list[tuple[uuid.UUID, float]] = []
        for scene in todo:
            keyframe = keyframes[scene.id]
            if isinstance(keyframe, BadInputError):
                continue
            for time_s, data in [(keyframe_time(scene), keyframe), *sampled.get(scene.id, [])]:
                images.append(data)
                owners.append((scene.id, time_s))
        outcomes = list(self._embedder.detect_faces(images)) if images else []
        key_times = {scene.id: keyframe_time(scene) for scene in todo}
        per_scene: dict[uuid.UUID, list[SampledFaces]] = {}
        errors: dict[uuid.UUID, BadInputError] = {}
        for (scene_id, time_s), outcome in zip(owners, outcomes, strict=True):
            if isinstance(outcome, BadInputError):
                if time_s == key_times[scene_id]:
                    errors[scene_id] = outcome
                continue  # an undecodable sampled frame is skipped; the keyframe decides
            per_scene.setdefault(scene_id, []).append(SampledFaces(time_s, tuple(outcome)))
        for scene in todo:
            failure = (
                keyframes[scene.id]
                if isinstance(keyframes[scene.id], BadInputError)
                else errors.get(scene.id)
            )
            if failure is not None:
                message = f"keyframe {scene.keyframe_uri}: {failure}"
                batch.tracker.failed(self.step, scene.id, message, batch.owner_id, scene.video_id)
                continue
            frames = per_scene.get(scene.id, [])
            extra = {
                "frames": [round(f.time_s, 3) for f in sorted(frames, key=lambda f: f.time_s)],
                "frames_from": "keyframe" if scene.id in notes or self._sampling.keyframe_only else "video",
                "fallback": notes.get(scene.id),
            }
            records.append(self._record(batch, scene, build_tracks(frames), extra))
            batch.tracker.computed(self.step)
        return records

    def _sampled_frames(
        self, batch: SceneBatch, scenes: Sequence[Scene]
    ) -> tuple[dict[uuid.UUID, list[tuple[float, bytes]]], dict[uuid.UUID, str]]:
        """Per scene, the sampled frames other than the keyframe ``(time_s, JPEG)``, one
        ``frames_at`` call per video; and per scene that fell back to its keyframe, why."""
        if self._sampling.keyframe_only or not scenes:
            return {}, {}
        frames: dict[uuid.UUID, list[tuple[float, bytes]]] = {}
        notes: dict[uuid.UUID, str] = {}
        by_video: dict[uuid.UUID, list[tuple[Scene, list[float]]]] = {}
        for scene in scenes:
            key = round(keyframe_time(scene), 3)
            sampling = self._sampling
            grid = sample_times(scene.start_s, scene.end_s, key, sampling.interval_s, sampling.max_frames)
            times = [t for t in grid if abs(t - key) > 1e-6]
            by_video.setdefault(scene.video_id, []).append((scene, times))
        for video_id, entries in by_video.items():
            source = batch.sources.get(video_id)
            if self._frames is None or not source:
                for scene, _ in entries:
                    notes[scene.id] = "no stored source video"
                continue
            wanted = [t for _, times in entries for t in times]
            try:
                decoded = self._frames.frames_at(source, wanted)
            except BadInputError as exc:
                for scene, _ in entries:
                    notes[scene.id] = f"source video unreadable: {exc}"
                continue
            position = 0
            for scene, times in entries:
                frames[scene.id] = list(zip(times, decoded[position : position + len(times)], strict=True))
                position += len(times)
        return frames, notes

    def _rematchable(
        self, batch: SceneBatch, stale: Sequence[tuple[Scene, str]]
    ) -> dict[uuid.UUID, EmbeddingRecord]:
        """By scene id, the stored records among ``stale`` whose tracks can be matched again as
        they are (one query for the batch)."""
        reasons = batch.reasons[self.step]
        scenes = {scene.id: scene for scene, key in stale if reasons[(scene.id, key)] is StaleReason.INPUT}
        if not scenes:
            return {}
        fingerprint = batch.spec.fingerprint(self.step)
        return {
            scene_id: record
            for (scene_id, _), record in batch.uow.records.get(self.step, batch.owner_id, scenes).items()
            if record.fingerprint == fingerprint
            and record.payload.get(DETECTED_IN) == scenes[scene_id].keyframe_sha256
        }

    def _record(
        self, batch: SceneBatch, scene: Scene, tracks: Sequence[FaceTrack], extra: Mapping[str, Any]
    ) -> EmbeddingRecord:
        matched = match_tracks(
            tracks,
            batch.people.vectors,
            self._threshold,
            batch.people.references,
            batch.expected.decisions.rejections(scene.id),
        )
        payload = {
            DETECTED_IN: scene.keyframe_sha256,
            "frames": extra.get("frames", []),
            "frames_from": extra.get("frames_from", "keyframe"),
            "fallback": extra.get("fallback"),
            "faces": [track.to_payload() for track in matched],
            "appearances": {
                str(person): [[start, end] for start, end in spans]
                for person, spans in appearances(matched, self._sampling.gap_s).items()
            },
        }
        vector = np.stack([t.descriptor for t in matched]).astype(np.float32) if matched else None
        input_hash = batch.expected.faces(scene, batch.people.set_hash).input_hash
        return batch.record(
            step=self.step, scene=scene, key="", vector=vector, input_hash=input_hash, payload=payload
        )


def tracks_from_record(record: EmbeddingRecord) -> list[FaceTrack]:
    """The face tracks stored in a scene face record (unmatched; times from the payload, a
    record without them counts as seen at the scene's keyframe time 0)."""
    tracks = []
    for face, entry in zip(faces_from_record(record), record.payload.get("faces", []), strict=True):
        first, last = float(entry.get("first_s", 0.0)), float(entry.get("last_s", 0.0))
        best = DetectedFace(face.bbox, face.descriptor)
        tracks.append(
            FaceTrack(
                first,
                last,
                float(entry.get("best_s", first)),
                best,
                face.descriptor,
                int(entry.get("frames", 1)),
            )
        )
    return tracks
