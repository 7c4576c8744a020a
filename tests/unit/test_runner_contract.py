"""ReprocessRunner scenarios, run here over the in-memory fakes. tests/integration/
test_runner_contract.py runs the same scenarios (imported from this module) over SQLite and
Postgres, with its own ``world`` fixture."""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pytest

from scenedex.domain.errors import NotFoundError
from scenedex.domain.model import PhotoStatus
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.domain.spec import EmbeddingStepType as Step
from tests.conftest import World, make_world
from tests.fakes import face_image

OWNER_A = uuid.UUID("00000000-0000-0000-0000-00000000000a")
OWNER_B = uuid.UUID("00000000-0000-0000-0000-00000000000b")


@pytest.fixture(params=["memory"])
def world(request: pytest.FixtureRequest) -> World:
    """The ports over the in-memory fakes (the integration module overrides this fixture)."""
    return make_world(request, request.param)


def owner(owner_id: uuid.UUID, force: bool = False) -> ReprocessRequest:
    return ReprocessRequest(ReprocessScope.OWNER, owner_id=owner_id, force=force)


def counts(progress, field: str) -> dict[Step, int]:
    """Per step, one count field (FACE_CLUSTERS left out: these runners have no clusterer; the
    step is tested in tests/unit/test_face_decisions.py; SCENE_OCR left out unless planned: the
    scenarios with OCR are in tests/unit/test_runner_ocr.py)."""
    return {
        step: getattr(c, field)
        for step, c in progress.steps.items()
        if step is not Step.FACE_CLUSTERS and (step is not Step.SCENE_OCR or c.planned)
    }


def library(world: World) -> dict:
    """Owner A: a person 'alice' (2 photos) and a 6-scene video, scene 1 shows alice and bob."""
    alice = world.add_person(OWNER_A, "alice", [face_image("alice", salt="1"), face_image("alice", salt="2")])
    keyframes = [face_image(salt=str(i)) for i in range(6)]
    keyframes[1] = face_image("alice", "bob", salt="x")
    video, scenes = world.add_video(OWNER_A, keyframes)
    return {"alice": alice, "video": video, "scenes": scenes}


def test_first_run_computes_every_step_then_nothing(world: World) -> None:
    lib = library(world)
    first = world.runner().run(owner(OWNER_A))
    assert first.ok, first.errors
    assert counts(first, "computed") == {
        Step.PERSON_PHOTO_EMBEDDINGS: 2,
        Step.PERSON_QUERY_EMBEDDINGS: 1,
        Step.SCENE_TEXT_EMBEDDINGS: 18,
        Step.SCENE_CLIP_EMBEDDINGS: 6,
        Step.SCENE_PERSON_EMBEDDINGS: 6,
        Step.SEARCH_REINDEX: 6,
    }
    # Empty channels (visual, summary) are recorded, not sent to the model.
    assert len(world.text.texts) == 6

    second = world.runner().run(owner(OWNER_A))
    assert sum(counts(second, "computed").values()) == 0
    assert counts(second, "skipped") == counts(first, "computed")
    assert len(world.text.texts) == 6 and sum(world.clip.calls) == 6

    forced = world.runner().run(owner(OWNER_A, force=True))
    assert counts(forced, "computed") == counts(first, "computed")
    assert lib["video"].id


def test_scene_with_matching_face_lists_the_person(world: World) -> None:
    lib = library(world)
    world.runner().run(owner(OWNER_A))
    face_scene = lib["scenes"][1]
    state = world.index.states(OWNER_A, [face_scene.id])
    assert face_scene.id in state
    with world.uow_factory() as uow:
        record = uow.records.get(Step.SCENE_PERSON_EMBEDDINGS, OWNER_A, [face_scene.id])[(face_scene.id, "")]
        query = uow.records.get(Step.PERSON_QUERY_EMBEDDINGS, OWNER_A, [lib["alice"].id])[
            (lib["alice"].id, "")
        ]
    persons = [face["person_id"] for face in record.payload["faces"]]
    assert persons == [str(lib["alice"].id), None]  # alice matched, bob unknown
    assert record.vector.shape == (2, 128) and record.vector.dtype == np.float32
    assert np.isclose(np.linalg.norm(query.vector), 1.0, atol=1e-5)


def test_threshold_change_marks_exactly_faces_and_reindex_stale(world: World) -> None:
    library(world)
    world.runner().run(owner(OWNER_A))
    plan = world.runner(face_match_threshold=0.3).plan(owner(OWNER_A))
    stale = {step: sum(p.stale.values()) for step, p in plan.steps.items()}
    assert stale == {
        Step.PERSON_PHOTO_EMBEDDINGS: 0,
        Step.PERSON_QUERY_EMBEDDINGS: 0,
        Step.SCENE_TEXT_EMBEDDINGS: 0,
        Step.SCENE_CLIP_EMBEDDINGS: 0,
        Step.SCENE_PERSON_EMBEDDINGS: 6,
        Step.SEARCH_REINDEX: 6,
        Step.FACE_CLUSTERS: 0,  # no clusterer given to these runners: not planned
    }
    assert plan.steps[Step.SCENE_PERSON_EMBEDDINGS].stale == {"fingerprint_changed": 6}
    rerun = world.runner(face_match_threshold=0.3).run(owner(OWNER_A))
    assert {s: n for s, n in counts(rerun, "computed").items() if n} == {
        Step.SCENE_PERSON_EMBEDDINGS: 6,
        Step.SEARCH_REINDEX: 6,
    }


def test_dry_run_counts_missing_then_current(world: World) -> None:
    library(world)
    before = world.runner().plan(owner(OWNER_A))
    assert before.steps[Step.SCENE_TEXT_EMBEDDINGS].missing == 18
    assert before.steps[Step.SEARCH_REINDEX].missing == 6
    assert (before.videos, before.scenes) == (1, 6)
    world.runner().run(owner(OWNER_A))
    after = world.runner().plan(owner(OWNER_A))
    assert all(p.missing == 0 and not p.stale for p in after.steps.values())
    assert after.steps[Step.SCENE_TEXT_EMBEDDINGS].current == 18


def test_new_person_makes_face_matching_stale(world: World) -> None:
    library(world)
    world.runner().run(owner(OWNER_A))
    world.add_person(OWNER_A, "bob", [face_image("bob")])
    plan = world.runner().plan(owner(OWNER_A))
    assert plan.steps[Step.SCENE_PERSON_EMBEDDINGS].stale == {"input_changed": 6}
    assert plan.steps[Step.SCENE_CLIP_EMBEDDINGS].current == 6
    world.runner().run(owner(OWNER_A))
    face_scene = library_scene(world, 1)
    with world.uow_factory() as uow:
        record = uow.records.get(Step.SCENE_PERSON_EMBEDDINGS, OWNER_A, [face_scene])[(face_scene, "")]
    assert all(face["person_id"] for face in record.payload["faces"])


def keyframe_detections(world: World) -> int:
    """How many scene keyframes the face embedder has been given (person photos not counted)."""
    with world.uow_factory() as uow:
        keyframes = {
            world.blobs.blobs.get(s.keyframe_uri)
            for v in uow.videos.list(OWNER_A)
            for s in uow.scenes.list_for_video(OWNER_A, v.id)
        }
    return sum(1 for image in world.faces.images if image in keyframes)


def test_a_person_change_rematches_stored_faces_without_detecting_again(world: World) -> None:
    lib = library(world)
    world.runner().run(owner(OWNER_A))
    assert keyframe_detections(world) == 6
    bob = world.add_person(OWNER_A, "bob", [face_image("bob")])
    world.faces.images.clear()
    world.blobs.reads.clear()

    progress = world.runner().run(owner(OWNER_A))
    assert progress.ok, progress.errors
    assert keyframe_detections(world) == 0  # bob's photo only
    assert world.faces.images == [face_image("bob")]
    assert not any(
        uri.startswith(lib["scenes"][0].keyframe_uri.rsplit("/", 1)[0]) for uri in world.blobs.reads
    )
    assert progress.steps[Step.SCENE_PERSON_EMBEDDINGS].computed == 6
    assert progress.steps[Step.SEARCH_REINDEX].computed == 6
    face_scene = lib["scenes"][1]
    with world.uow_factory() as uow:
        record = uow.records.get(Step.SCENE_PERSON_EMBEDDINGS, OWNER_A, [face_scene.id])[(face_scene.id, "")]
    assert [f["person_id"] for f in record.payload["faces"]] == [str(lib["alice"].id), str(bob.id)]
    assert search(world, person_id=bob.id, k=10)[0].person_ids == (lib["alice"].id, bob.id)
    assert sum(counts(world.runner().run(owner(OWNER_A)), "computed").values()) == 0

    # A person removed: matched again, nobody lists it; with no person left faces stay unmatched.
    for person in (bob, lib["alice"]):
        with world.uow_factory() as uow:
            assert uow.persons.delete(OWNER_A, person.id)
            uow.commit()
        assert world.runner().plan(owner(OWNER_A)).steps[Step.SCENE_PERSON_EMBEDDINGS].stale == {
            "input_changed": 6
        }
        assert world.runner().run(owner(OWNER_A)).ok
        assert keyframe_detections(world) == 0
        with world.uow_factory() as uow:
            record = uow.records.get(Step.SCENE_PERSON_EMBEDDINGS, OWNER_A, [face_scene.id])[
                (face_scene.id, "")
            ]
        assert str(person.id) not in {f["person_id"] for f in record.payload["faces"]}
        assert all(person.id not in hit.person_ids for hit in text_hits(world, lib["scenes"]))
    assert [f["person_id"] for f in record.payload["faces"]] == [None, None]

    # force detects again.
    world.runner().run(owner(OWNER_A, force=True))
    assert keyframe_detections(world) == 6


def text_hits(world: World, scenes) -> list:
    """A text search's hits among ``scenes`` (every scene with a transcript is a hit)."""
    hits = search(world, text="scene 0 words", k=50)
    return [h for h in hits if h.scene_id in {s.id for s in scenes}]


def library_scene(world: World, ordinal: int) -> uuid.UUID:
    with world.uow_factory() as uow:
        (video,) = uow.videos.list(OWNER_A)
        return uow.scenes.list_for_video(OWNER_A, video.id)[ordinal].id


def test_bad_keyframes_fail_their_items_and_the_rest_succeeds(world: World) -> None:
    _, scenes = world.add_video(OWNER_A, [b"ok-0", b"CORRUPT bytes", None, b"", b"ok-4"])
    progress = world.runner(batch_size=2).run(owner(OWNER_A))
    assert not progress.ok
    failed = {(e.step, e.item_id) for e in progress.errors}
    for bad in scenes[1:4]:
        assert (Step.SCENE_CLIP_EMBEDDINGS, bad.id) in failed
        assert (Step.SCENE_PERSON_EMBEDDINGS, bad.id) in failed
    messages = " ".join(e.message for e in progress.errors)
    assert "cannot identify image file" in messages
    assert "file not found" in messages
    assert "empty file (0 bytes)" in messages
    assert progress.steps[Step.SCENE_CLIP_EMBEDDINGS].computed == 2
    assert progress.steps[Step.SEARCH_REINDEX].computed == 5  # text-only documents for the bad ones
    # The failed items (and their partial documents) are retried; the good ones are not.
    again = world.runner(batch_size=2).run(owner(OWNER_A))
    assert again.steps[Step.SCENE_CLIP_EMBEDDINGS].failed == 3
    assert again.steps[Step.SCENE_CLIP_EMBEDDINGS].skipped == 2
    assert again.steps[Step.SEARCH_REINDEX].computed == 3


def test_photo_without_face_is_recorded_and_person_has_no_query_vector(world: World) -> None:
    person = world.add_person(OWNER_A, "nobody", [b"a landscape"])
    progress = world.runner().run(owner(OWNER_A))
    assert progress.ok
    with world.uow_factory() as uow:
        (photo,) = uow.persons.list_photos(OWNER_A)
        query = uow.records.get(Step.PERSON_QUERY_EMBEDDINGS, OWNER_A, [person.id])[(person.id, "")]
    assert photo.status is PhotoStatus.NO_FACE and "no face" in photo.error
    assert query.vector is None
    assert sum(counts(world.runner().run(owner(OWNER_A)), "computed").values()) == 0


def test_owner_scope_never_touches_another_owner(world: World) -> None:
    library(world)
    _, b_scenes = world.add_video(OWNER_B, [b"b-0", b"b-1"])
    world.add_person(OWNER_B, "carol", [face_image("carol")])
    world.runner().run(owner(OWNER_A))
    assert not any(f"owners/{OWNER_B}" in uri for uri in world.blobs.reads)
    assert world.index.states(OWNER_B, [s.id for s in b_scenes]) == {}
    with world.uow_factory() as uow:
        for step in Step:
            if step not in (Step.SEARCH_REINDEX, Step.FACE_CLUSTERS):
                assert uow.records.get(step, OWNER_B, [s.id for s in b_scenes]) == {}
        assert uow.face_clusters.state(OWNER_B) is None
    # A's documents are invisible through B's owner id, and B's run leaves A's current.
    world.runner().run(owner(OWNER_B))
    assert sum(counts(world.runner().run(owner(OWNER_A)), "computed").values()) == 0


def test_video_scope_and_unknown_ids(world: World) -> None:
    lib = library(world)
    progress = world.runner().run(ReprocessRequest(ReprocessScope.VIDEO, video_id=lib["video"].id))
    assert progress.steps[Step.SCENE_CLIP_EMBEDDINGS].computed == 6
    with pytest.raises(NotFoundError):
        world.runner().run(ReprocessRequest(ReprocessScope.VIDEO, video_id=uuid.uuid4()))
    with pytest.raises(NotFoundError):  # the video exists, but not for owner B
        world.runner().run(ReprocessRequest(ReprocessScope.VIDEO, video_id=lib["video"].id, owner_id=OWNER_B))
    with pytest.raises(NotFoundError):
        world.runner().run(owner(uuid.uuid4()))


def test_all_scope_covers_every_owner(world: World) -> None:
    library(world)
    world.add_video(OWNER_B, [b"b-0"])
    progress = world.runner().run(ReprocessRequest(ReprocessScope.ALL))
    assert progress.steps[Step.SCENE_CLIP_EMBEDDINGS].computed == 7


def search(world: World, owner_id: uuid.UUID = OWNER_A, **query):
    from scenedex.services.search import search_scenes

    return search_scenes(
        uow_factory=world.uow_factory,
        index=world.index,
        text_embedder=world.text,
        image_embedder=world.clip,
        owner_id=owner_id,
        **query,
    )


def test_search_ranks_the_matching_scene_first_within_the_owner(world: World) -> None:
    lib = library(world)
    world.add_video(OWNER_B, [b"b-0"], transcripts=["scene 3 words"])
    world.runner().run(ReprocessRequest(ReprocessScope.ALL))
    scenes = lib["scenes"]

    by_text = search(world, text="scene 3 words", k=3)
    assert by_text[0].scene_id == scenes[3].id
    assert len(by_text) == 3
    # Late fusion with CLIP's text tower: 0.7 x text cosine (1.0 here) + 0.3 x CLIP cosine.
    clip_cosine = float(
        world.clip.encode_text(["scene 3 words"])[0]
        @ world.clip.embed_images([world.blobs.read(scenes[3].keyframe_uri, 1 << 30)])[0]
    )
    assert by_text[0].score == pytest.approx(0.7 + 0.3 * clip_cosine, abs=1e-5)
    assert by_text[0].score >= by_text[1].score >= by_text[2].score

    keyframe = world.blobs.read(scenes[2].keyframe_uri, 1 << 30)
    assert search(world, image=keyframe, k=1)[0].scene_id == scenes[2].id

    by_person = search(world, person_id=lib["alice"].id, k=10)
    assert by_person[0].scene_id == scenes[1].id
    assert by_person[0].person_ids == (lib["alice"].id,)
    assert {h.scene_id for h in by_person} == {scenes[1].id}  # the only scene with faces

    # Owner B sees only its own scene, even for a query that fits A's best.
    assert [h.video_id for h in search(world, OWNER_B, text="scene 3 words")] != [lib["video"].id]
    assert all(h.scene_id not in {s.id for s in scenes} for h in search(world, OWNER_B, text="scene 3 words"))
    with pytest.raises(NotFoundError):
        search(world, OWNER_B, person_id=lib["alice"].id)


def test_search_rejects_bad_queries(world: World) -> None:
    from scenedex.domain.errors import InvalidRequestError

    library(world)
    with pytest.raises(InvalidRequestError, match="exactly one"):
        search(world, text="a", person_id=uuid.uuid4())
    with pytest.raises(InvalidRequestError, match="k must be"):
        search(world, text="a", k=0)
    with pytest.raises(InvalidRequestError, match="query image"):
        search(world, image=b"CORRUPT")
    nobody = world.add_person(OWNER_A, "nobody", [b"no face here"])
    world.runner().run(owner(OWNER_A))
    with pytest.raises(InvalidRequestError, match="no query embedding"):
        search(world, person_id=nobody.id)


def test_batches_are_taken_across_videos(world: World) -> None:
    """Three 2-scene videos at batch size 4: CLIP sees batches of 4 and 2, not 2, 2, 2."""
    for salt in "abc":
        world.add_video(OWNER_A, [face_image(salt=f"{salt}1"), face_image(salt=f"{salt}2")])
    progress = world.runner(batch_size=4).run(owner(OWNER_A))
    assert progress.ok, progress.errors
    assert world.clip.calls == [4, 2]
    assert progress.steps[Step.SCENE_CLIP_EMBEDDINGS].computed == 6


def test_the_next_batch_keyframes_are_read_ahead_while_a_batch_computes(world: World) -> None:
    """Batch 1 reads its keyframes itself; batches 2 and 3 were read by the read-ahead thread;
    scenes whose keyframe steps are current are not read at all."""
    world.add_video(OWNER_A, [face_image(salt=str(i)) for i in range(10)])
    readers: dict[str, str] = {}
    read = world.blobs.read

    def recording_read(uri: str, max_bytes: int) -> bytes:
        readers[uri] = threading.current_thread().name
        return read(uri, max_bytes)

    world.blobs.read = recording_read  # type: ignore[method-assign]
    progress = world.runner(batch_size=4).run(owner(OWNER_A))
    assert progress.ok, progress.errors
    keyframes = [name for uri, name in readers.items() if "keyframe" in uri or "frame" in uri]
    assert len(keyframes) == 10
    assert sum(1 for name in keyframes if name.startswith("keyframes")) == 6  # batches 2 and 3
    readers.clear()
    world.runner(batch_size=4).run(owner(OWNER_A, force=False))
    assert readers == {}


def test_only_scenes_with_stale_records_are_batched(world: World) -> None:
    world.add_video(OWNER_A, [face_image(salt=str(i)) for i in range(5)])
    world.runner().run(owner(OWNER_A))
    world.add_video(OWNER_A, [face_image(salt="new")])
    world.clip.calls.clear()
    progress = world.runner().run(owner(OWNER_A))
    assert world.clip.calls == [1]
    assert progress.steps[Step.SCENE_CLIP_EMBEDDINGS].skipped == 5
    assert progress.steps[Step.SEARCH_REINDEX].computed == 1


def test_a_document_the_index_rejects_fails_its_scene_only(world: World) -> None:
    _, scenes = world.add_video(OWNER_A, [face_image(salt=str(i)) for i in range(3)])
    original = world.index.upsert
    rejected_id = scenes[1].id

    def rejecting_upsert(documents):
        original([d for d in documents if d.scene_id != rejected_id])
        return {rejected_id: "mapper_parsing_exception"}

    world.index.upsert = rejecting_upsert
    progress = world.runner().run(owner(OWNER_A))
    reindex = progress.steps[Step.SEARCH_REINDEX]
    assert (reindex.computed, reindex.failed) == (2, 1)
    [error] = progress.errors
    assert error.item_id == rejected_id and "mapper_parsing_exception" in error.message
    world.index.upsert = original
    retried = world.runner().run(owner(OWNER_A))  # the rejected document is retried next run
    assert retried.steps[Step.SEARCH_REINDEX].computed == 1
