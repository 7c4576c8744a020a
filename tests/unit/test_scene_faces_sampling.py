"""The faces step over sampled frames, on the in-memory fakes: faces seen only away from the
keyframe are found with their time, and a scene whose source video cannot be read falls back
to its keyframe and says so."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest

from scenedex.domain.errors import BadInputError
from scenedex.domain.model import faces_from_record
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.domain.scene_faces import FaceSampling
from scenedex.domain.spec import EmbeddingStepType as Step
from tests.conftest import World, make_world
from tests.fakes import face_image

OWNER = uuid.UUID("00000000-0000-0000-0000-0000000000a1")
SAMPLING = FaceSampling(interval_s=0.25, max_frames=4, gap_s=0.5)


class FakeFrames:
    """Frames of the one source video: ``alice`` from 0.7 s on; or an error for every call."""

    def __init__(self, error: str | None = None) -> None:
        self.error = error
        self.calls: list[tuple[str, list[float]]] = []

    def frames_at(self, source_uri: str, times_s: Sequence[float]) -> list[bytes]:
        self.calls.append((source_uri, list(times_s)))
        if self.error:
            raise BadInputError(self.error)
        return [face_image("alice", salt=f"{t}") if t > 0.7 else face_image(salt=f"{t}") for t in times_s]


@pytest.fixture
def world(request: pytest.FixtureRequest) -> World:
    return make_world(request, "memory")


def run(world: World, frames: FakeFrames) -> tuple[uuid.UUID, dict]:
    alice = world.add_person(OWNER, "alice", [face_image("alice", salt="photo")]).id
    _, (scene,) = world.add_video(OWNER, [face_image(salt="keyframe")])  # scene 0-1 s, keyframe 0.5 s
    runner = world.runner(video_frames=frames, face_sampling=SAMPLING.id)
    progress = runner.run(ReprocessRequest(ReprocessScope.OWNER, owner_id=OWNER))
    assert progress.ok, progress.errors
    with world.uow_factory() as uow:
        (record,) = uow.records.get(Step.SCENE_PERSON_EMBEDDINGS, OWNER, [scene.id]).values()
    return alice, {"payload": record.payload, "faces": faces_from_record(record)}


def test_a_face_away_from_the_keyframe_is_found_with_its_time(world: World) -> None:
    frames = FakeFrames()
    alice, record = run(world, frames)
    ((uri, times),) = frames.calls  # one call for the video
    assert uri == "memory://v" and times == [0.125, 0.625, 0.875]  # the keyframe is read from its blob
    payload = record["payload"]
    assert payload["frames_from"] == "video" and payload["fallback"] is None
    assert payload["frames"] == [0.125, 0.5, 0.625, 0.875]
    assert payload["appearances"] == {str(alice): [[0.875, 0.875]]}
    (face,) = record["faces"]
    assert face.person_id == alice


def test_an_unreadable_source_falls_back_to_the_keyframe_and_says_so(world: World) -> None:
    _, record = run(world, FakeFrames(error="file not found: memory://v"))
    payload = record["payload"]
    assert payload["frames_from"] == "keyframe" and payload["frames"] == [0.5]
    assert "file not found" in payload["fallback"]
    assert payload["faces"] == [] and payload["appearances"] == {}


def test_sampling_ids_round_trip_and_bad_values_are_refused() -> None:
    for sampling in (SAMPLING, FaceSampling(1.0, 8, 2.0), FaceSampling(max_frames=1)):
        assert FaceSampling.parse(sampling.id).id == sampling.id
    assert FaceSampling(0.0, 8).id == "keyframe"
    with pytest.raises(ValueError):
        FaceSampling.parse("every-other-frame")
    with pytest.raises(ValueError):
        FaceSampling(max_frames=0)
