"""Sampled frame times, face tracks and person appearances (domain/face_tracks.py)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from scenedex.domain.face_tracks import SampledFaces, appearances, build_tracks, match_tracks, sample_times
from scenedex.domain.model import DetectedFace, l2_normalise

RNG = np.random.default_rng(7)
ALICE, BOB = (l2_normalise(RNG.normal(size=128)).astype(np.float32) * 1.45 for _ in range(2))


def face(who: np.ndarray, x: int, size: int = 60, noise: float = 0.02) -> DetectedFace:
    jitter = RNG.normal(scale=noise, size=128).astype(np.float32)
    return DetectedFace((x, 50, x + size, 50 + size), who + jitter)


def test_sample_times_cover_the_scene_and_keep_the_keyframe() -> None:
    assert sample_times(10.0, 14.0, 12.0, 1.0, 8) == [10.5, 11.5, 12.0, 12.5, 13.5]
    assert sample_times(10.0, 14.0, 12.0, 0.0, 8) == [12.0]  # keyframe only
    assert sample_times(10.0, 14.0, 12.0, 1.0, 1) == [12.0]
    long = sample_times(0.0, 100.0, 50.0, 1.0, 8)
    assert len(long) == 8 and 50.0 in long and long == sorted(long)
    assert all(0 <= t < 100 for t in long) and long[0] == 0.5 and long[-1] > 80
    assert sample_times(0.0, 0.4, 0.2, 1.0, 8) == [0.2]  # shorter than one interval: the keyframe
    with pytest.raises(ValueError, match="max_frames"):
        sample_times(0, 1, 0.5, 1.0, 0)


def test_faces_of_one_person_in_consecutive_frames_make_one_track() -> None:
    frames = [SampledFaces(t, (face(ALICE, 100 + 10 * i),)) for i, t in enumerate([0.5, 1.5, 2.5, 3.5])]
    (track,) = build_tracks(frames)
    assert (track.first_s, track.last_s, track.frames) == (0.5, 3.5, 4)
    assert track.descriptor.shape == (128,) and track.descriptor.dtype == np.float32
    assert abs(float(np.linalg.norm(track.descriptor)) - 1.0) < 1e-5


def test_two_people_side_by_side_stay_two_tracks_and_the_best_face_is_the_largest() -> None:
    frames = [
        SampledFaces(0.5, (face(ALICE, 100), face(BOB, 400))),
        SampledFaces(1.5, (face(BOB, 410, size=90), face(ALICE, 110))),
    ]
    tracks = build_tracks(frames)
    assert len(tracks) == 2 and all(t.frames == 2 for t in tracks)
    bob = next(t for t in tracks if t.best.bbox[0] > 300)
    assert bob.best.bbox == (410, 50, 500, 140) and bob.best_s == 1.5


def test_a_face_that_jumps_across_the_frame_or_is_gone_too_long_starts_a_new_track() -> None:
    jumped = build_tracks([SampledFaces(0.5, (face(ALICE, 0),)), SampledFaces(1.5, (face(ALICE, 900),))])
    assert len(jumped) == 2
    one_gap = build_tracks(
        [SampledFaces(t, (face(ALICE, 100),) if t != 1.5 else ()) for t in (0.5, 1.5, 2.5)]
    )
    assert len(one_gap) == 1 and one_gap[0].frames == 2
    long_gap = [SampledFaces(t, (face(ALICE, 100),) if t in (0.5, 3.5) else ()) for t in (0.5, 1.5, 2.5, 3.5)]
    assert len(build_tracks(long_gap)) == 2


def test_tracks_match_persons_and_give_merged_appearances() -> None:
    alice_id, bob_id = uuid.uuid4(), uuid.uuid4()
    persons = {alice_id: l2_normalise(ALICE), bob_id: l2_normalise(BOB)}
    frames = [SampledFaces(t, (face(ALICE, 100),)) for t in (0.5, 1.5)]
    frames += [SampledFaces(t, ()) for t in (2.5, 3.5, 4.5)]
    frames += [SampledFaces(t, (face(ALICE, 100), face(BOB, 500))) for t in (5.5, 6.5)]
    tracks = match_tracks(build_tracks(frames), persons, threshold=0.4)
    assert {t.person_id for t in tracks} == {alice_id, bob_id}
    assert appearances(tracks, gap_s=1.0) == {alice_id: [(0.5, 1.5), (5.5, 6.5)], bob_id: [(5.5, 6.5)]}
    assert appearances(tracks, gap_s=4.0)[alice_id] == [(0.5, 6.5)]  # the gap closed
    stranger = match_tracks(build_tracks(frames[:1]), {bob_id: l2_normalise(BOB)}, threshold=0.4)
    assert stranger[0].person_id is None and appearances(stranger, 1.0) == {}


def test_sample_times_of_a_huge_scene_are_computed_not_listed() -> None:
    """Issue 25: a scene of 1e15 s built one list entry per second (18 GB in a minute); the kept
    slots are now computed arithmetically: the same 3 spread slots + the keyframe."""
    times = sample_times(0.0, 1e15, 5e14, 1.0, 4)
    assert len(times) == 4 and times[0] == 0.5 and times[-1] == 1e15 - 0.5 and 5e14 in times
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite"):
            sample_times(0.0, bad, 1.0, 1.0, 4)
