"""Issue 19 over the fakes (in memory and SQLite): suggested persons from unknown faces, and user
decisions (confirm, reject, split) that are inputs of the pipeline: they make exactly the right
records stale, and survive a forced reprocess and a spec change.

The fake face embedder gives every face of one name the same descriptor, so "bob" seen in three
scenes is one cluster; tests/integration/test_face_decisions_real.py does the same on real
media with dlib."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from scenedex.adapters.face_clustering import DbscanFaceClusterer
from scenedex.domain.errors import InvalidRequestError, NotFoundError
from scenedex.domain.face_decisions import (
    SAME_FACE_DISTANCE,
    DecisionKind,
    FaceDecision,
    FaceDecisions,
    match_with_decisions,
)
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.domain.spec import EmbeddingStepType as Step
from scenedex.services.face_clusters import FaceClusters, parse_face_id
from tests.conftest import World, make_world
from tests.fakes import face_image, hashed_vector

OWNER_A = uuid.UUID("00000000-0000-0000-0000-00000000000a")
OWNER_B = uuid.UUID("00000000-0000-0000-0000-00000000000b")
BOB_SCENES = (0, 2, 4, 7)
CAROL_SCENES = (1, 3, 5)


@pytest.fixture(params=["memory", "sqlite"])
def world(request: pytest.FixtureRequest) -> World:
    return make_world(request, request.param)


def owner(owner_id: uuid.UUID, force: bool = False) -> ReprocessRequest:
    return ReprocessRequest(ReprocessScope.OWNER, owner_id=owner_id, force=force)


def runner(world: World, **changes):
    return world.runner(
        face_clusterer=DbscanFaceClusterer(), face_thumbnail=lambda data, box: b"JPEG" + bytes(box), **changes
    )


def library(world: World, owner_id: uuid.UUID = OWNER_A) -> list:
    """Nine scenes: bob in 0, 2, 4, 7, carol in 1, 3, 5, alice (a person with a photo) in 6,
    nobody in 8."""
    keyframes = [face_image(salt=str(i)) for i in range(9)]
    for i in BOB_SCENES:
        keyframes[i] = face_image("bob", salt=str(i))
    for i in CAROL_SCENES:
        keyframes[i] = face_image("carol", salt=str(i))
    keyframes[6] = face_image("alice", salt="6")
    world.add_person(owner_id, "alice", [face_image("alice", salt="photo")])
    _, scenes = world.add_video(owner_id, keyframes)
    return scenes


def matched(world: World, owner_id: uuid.UUID, scenes: list) -> dict[int, list[str | None]]:
    """Per scene ordinal, the person id each face of its record matched."""
    with world.uow_factory() as uow:
        records = uow.records.get(Step.SCENE_PERSON_EMBEDDINGS, owner_id, [s.id for s in scenes])
    return {s.ordinal: [f["person_id"] for f in records[(s.id, "")].payload["faces"]] for s in scenes}


def person_hits(world: World, owner_id: uuid.UUID, person_id: uuid.UUID, scenes: list) -> set[int]:
    """Ordinals of the scenes whose search document lists the person."""
    ordinal = {s.id: s.ordinal for s in scenes}
    return (
        {
            ordinal[d.scene_id]
            for d in world.index.documents.values()  # type: ignore[attr-defined]
            if d.owner_id == owner_id and person_id in d.person_ids
        }
        if hasattr(world.index, "documents")
        else _table_hits(world, owner_id, person_id, ordinal)
    )


def _table_hits(world: World, owner_id: uuid.UUID, person_id: uuid.UUID, ordinal: dict) -> set[int]:
    import sqlalchemy as sa

    from scenedex.adapters.db import tables as t

    with world.uow_factory() as uow:
        rows = uow.session.execute(  # type: ignore[attr-defined]
            sa.select(t.search_documents.c.scene_id, t.search_documents.c.document).where(
                t.search_documents.c.owner_id == owner_id
            )
        ).all()
    return {ordinal[r.scene_id] for r in rows if str(person_id) in r.document.get("person_ids", [])}


def suggestion_of(service: FaceClusters, owner_id: uuid.UUID, scenes: list, ordinals: tuple[int, ...]):
    """The owner's suggestion whose scenes are exactly ``ordinals``."""
    return next(
        v
        for v in service.list(owner_id).suggestions
        if {s.ordinal for s in scenes if s.id in v.scene_ids} == set(ordinals)
    )


def stale_counts(plan) -> dict[Step, int]:
    return {step: p.missing + sum(p.stale.values()) for step, p in plan.steps.items()}


def test_unknown_faces_become_one_suggestion_per_face_with_exactly_their_scenes(world: World) -> None:
    scenes = library(world)
    progress = runner(world).run(owner(OWNER_A))
    assert progress.ok and progress.steps[Step.FACE_CLUSTERS].computed == 1
    page = FaceClusters(uow_factory=world.uow_factory).list(OWNER_A)
    assert page.total == 2 and page.unknown_faces == 7 and page.waiting_faces == 0
    ordinal = {s.id: s.ordinal for s in scenes}
    found = sorted(tuple(sorted(ordinal[i] for i in view.scene_ids)) for view in page.suggestions)
    assert found == [BOB_SCENES, CAROL_SCENES]
    view = page.suggestions[0]
    assert view.thumbnail == b"JPEG" + bytes(view.representative.bbox)
    assert view.to_dict()["thumbnail"].startswith("data:image/jpeg;base64,")
    # current: a second run computes nothing, the clustering included
    again = runner(world).run(owner(OWNER_A))
    assert sum(c.computed for c in again.steps.values()) == 0
    assert again.steps[Step.FACE_CLUSTERS].skipped == 1


def test_confirm_reject_and_their_survival_of_force_and_a_spec_change(world: World) -> None:
    scenes = library(world)
    runner(world).run(owner(OWNER_A))
    service = FaceClusters(uow_factory=world.uow_factory)
    bob_cluster = next(
        v
        for v in service.list(OWNER_A).suggestions
        if {s.ordinal for s in scenes if s.id in v.scene_ids} == set(BOB_SCENES)
    )
    before = runner(world).plan(owner(OWNER_A))
    assert sum(stale_counts(before).values()) == 0

    decided = service.confirm(OWNER_A, bob_cluster.cluster_id, name="  Bob ")
    assert decided.person_created and decided.person_name == "Bob" and len(decided.face_ids) == 4
    bob = decided.person_id
    assert bob is not None
    plan = runner(world).plan(owner(OWNER_A))
    # a new person: its query embedding is missing; the person set changed, so every scene's
    # faces are matched again (from the stored tracks) and re-indexed; the clustering follows
    assert stale_counts(plan) == {
        Step.PERSON_PHOTO_EMBEDDINGS: 0,
        Step.PERSON_QUERY_EMBEDDINGS: 1,
        Step.SCENE_TEXT_EMBEDDINGS: 0,
        Step.SCENE_CLIP_EMBEDDINGS: 0,
        Step.SCENE_PERSON_EMBEDDINGS: 9,
        Step.SEARCH_REINDEX: 9,
        Step.FACE_CLUSTERS: 1,
    }
    world.faces.calls.clear()
    runner(world).run(owner(OWNER_A))
    assert sum(world.faces.calls) == 0  # matched again from the stored tracks: nothing detected
    assert person_hits(world, OWNER_A, bob, scenes) == set(BOB_SCENES)
    assert [v.size for v in service.list(OWNER_A).suggestions] == [3]  # carol's is left
    assert sum(stale_counts(runner(world).plan(owner(OWNER_A))).values()) == 0

    bob_face = f"{scenes[2].id}:0"
    service.reject(OWNER_A, bob_face, bob)
    plan = runner(world).plan(owner(OWNER_A))
    assert stale_counts(plan) == {
        Step.PERSON_PHOTO_EMBEDDINGS: 0,
        Step.PERSON_QUERY_EMBEDDINGS: 0,
        Step.SCENE_TEXT_EMBEDDINGS: 0,
        Step.SCENE_CLIP_EMBEDDINGS: 0,
        Step.SCENE_PERSON_EMBEDDINGS: 1,  # only the scene of the rejected face
        Step.SEARCH_REINDEX: 1,
        Step.FACE_CLUSTERS: 1,
    }
    runner(world).run(owner(OWNER_A))
    assert person_hits(world, OWNER_A, bob, scenes) == {0, 4, 7}
    assert matched(world, OWNER_A, scenes)[2] == [None]
    second = runner(world).run(owner(OWNER_A))
    assert sum(c.computed for c in second.steps.values()) == 0

    forced = runner(world).run(owner(OWNER_A, force=True))
    assert forced.steps[Step.SCENE_PERSON_EMBEDDINGS].computed == 9
    assert person_hits(world, OWNER_A, bob, scenes) == {0, 4, 7}
    runner(world, face_match_threshold=0.3).run(owner(OWNER_A))
    assert person_hits(world, OWNER_A, bob, scenes) == {0, 4, 7}
    assert matched(world, OWNER_A, scenes)[2] == [None]
    again = runner(world, face_match_threshold=0.3).run(owner(OWNER_A))
    assert sum(c.computed for c in again.steps.values()) == 0


def test_confirm_into_an_existing_person_and_the_errors(world: World) -> None:
    scenes = library(world)
    runner(world).run(owner(OWNER_A))
    service = FaceClusters(uow_factory=world.uow_factory)
    with world.uow_factory() as uow:
        alice = uow.persons.list(OWNER_A)[0]
    carol = suggestion_of(service, OWNER_A, scenes, CAROL_SCENES)
    with pytest.raises(InvalidRequestError):
        service.confirm(OWNER_A, carol.cluster_id)
    with pytest.raises(InvalidRequestError):
        service.confirm(OWNER_A, carol.cluster_id, person_id=alice.id, name="x")
    with pytest.raises(InvalidRequestError):
        service.confirm(OWNER_A, carol.cluster_id, name="   ")
    with pytest.raises(NotFoundError):
        service.confirm(OWNER_A, "fc-0000000000000000", person_id=alice.id)
    with pytest.raises(NotFoundError):
        service.confirm(OWNER_A, carol.cluster_id, person_id=uuid.uuid4())
    decided = service.confirm(OWNER_A, carol.cluster_id, person_id=alice.id)
    assert not decided.person_created and decided.person_id == alice.id
    runner(world).run(owner(OWNER_A))
    assert person_hits(world, OWNER_A, alice.id, scenes) == set(CAROL_SCENES) | {6}
    with world.uow_factory() as uow:
        query = uow.records.get(Step.PERSON_QUERY_EMBEDDINGS, OWNER_A, [alice.id])[(alice.id, "")]
    assert query.payload == {"photos": 1, "confirmed_faces": 3}
    assert np.isclose(np.linalg.norm(query.vector), 1.0, atol=1e-5)


def test_split_faces_are_suggested_apart(world: World) -> None:
    scenes = library(world)
    runner(world).run(owner(OWNER_A))
    service = FaceClusters(uow_factory=world.uow_factory)
    bob = suggestion_of(service, OWNER_A, scenes, BOB_SCENES)
    off = bob.faces[0].face_id
    with pytest.raises(InvalidRequestError):
        service.split(OWNER_A, bob.cluster_id, [f.face_id for f in bob.faces])
    with pytest.raises(InvalidRequestError):
        service.split(OWNER_A, bob.cluster_id, ["nope"])
    service.split(OWNER_A, bob.cluster_id, [off])
    plan = runner(world).plan(owner(OWNER_A))
    assert stale_counts(plan)[Step.FACE_CLUSTERS] == 1
    assert stale_counts(plan)[Step.SCENE_PERSON_EMBEDDINGS] == 0  # a split changes no match
    runner(world).run(owner(OWNER_A))
    views = service.list(OWNER_A).suggestions
    assert sorted((v.size, v.split) for v in views) == [(1, True), (3, False), (3, False)]
    assert next(v for v in views if v.split).faces[0].face_id == off
    runner(world).run(owner(OWNER_A, force=True))  # a full clustering keeps the split
    assert sorted((v.size, v.split) for v in service.list(OWNER_A).suggestions) == [
        (1, True),
        (3, False),
        (3, False),
    ]
    assert len(scenes) == 9


def test_owner_isolation_of_suggestions_and_decisions(world: World) -> None:
    library(world, OWNER_A)
    library(world, OWNER_B)
    runner(world).run(owner(OWNER_A))
    service = FaceClusters(uow_factory=world.uow_factory)
    a_cluster = service.list(OWNER_A).suggestions[0]
    assert service.list(OWNER_B).total == 0  # B not clustered yet: A's are not B's
    with pytest.raises(NotFoundError):
        service.get(OWNER_B, a_cluster.cluster_id)
    with pytest.raises(NotFoundError):
        service.confirm(OWNER_B, a_cluster.cluster_id, name="Bob")
    with pytest.raises(NotFoundError):
        service.split(OWNER_B, a_cluster.cluster_id, [a_cluster.faces[0].face_id])
    with world.uow_factory() as uow:
        a_person = uow.persons.list(OWNER_A)[0]
        b_person = uow.persons.list(OWNER_B)[0]
    with pytest.raises(NotFoundError):
        service.reject(OWNER_B, a_cluster.faces[0].face_id, b_person.id)  # A's face
    with pytest.raises(NotFoundError):
        service.reject(OWNER_A, a_cluster.faces[0].face_id, b_person.id)  # B's person
    with pytest.raises(InvalidRequestError):
        service.reject(OWNER_A, "not-a-face", a_person.id)
    with world.uow_factory() as uow:
        assert uow.face_decisions.list(OWNER_A) == [] and uow.face_decisions.list(OWNER_B) == []


def test_parse_face_id() -> None:
    scene = uuid.uuid4()
    assert parse_face_id(f"{scene}:3") == (scene, 3)
    for bad in ("x:1", f"{scene}", f"{scene}:-1", f"{scene}:a"):
        with pytest.raises(InvalidRequestError):
            parse_face_id(bad)


def test_matching_with_references_and_rejections() -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    a, b, far = hashed_vector("a", 128), hashed_vector("b", 128), hashed_vector("far", 128)
    rows = np.stack([a, b, far])
    # b is no person's query embedding, but a confirmed face of bob
    assert [m[0] for m in match_with_decisions(rows, {alice: a}, 0.4, {bob: b[None, :]})] == [
        alice,
        bob,
        None,
    ]
    # a face rejected for alice in this scene does not match alice (nor a face near it)
    near_a = a + 0.5 * SAME_FACE_DISTANCE * hashed_vector("noise", 128)
    near_a /= np.linalg.norm(near_a)
    result = match_with_decisions(np.stack([a, near_a, b]), {alice: a}, 0.4, {bob: b[None, :]}, [(alice, a)])
    assert [m[0] for m in result] == [None, None, bob]
    assert result[0][1] is not None and result[0][1] > 0.4  # the nearest allowed person: bob, far


def test_decisions_change_no_hash_when_there_are_none() -> None:
    empty = FaceDecisions()
    assert not empty and empty.digest is None and empty.splits_hash is None
    assert empty.reference_hash(uuid.uuid4()) is None and empty.scene_hash(uuid.uuid4()) is None
    d = FaceDecision(
        uuid.uuid4(),
        OWNER_A,
        DecisionKind.REJECT,
        uuid.uuid4(),
        uuid.uuid4(),
        uuid.uuid4(),
        hashed_vector("x", 128),
    )
    some = FaceDecisions([d])
    assert some.scene_hash(d.scene_id) is not None and some.digest is not None
    assert some.reference_hash(d.person_id) is None  # a rejection is not a reference


def test_deleting_a_confirmed_person_takes_its_decisions_and_suggests_its_faces_again(world: World) -> None:
    scenes = library(world)
    runner(world).run(owner(OWNER_A))
    service = FaceClusters(uow_factory=world.uow_factory)
    bob = service.confirm(OWNER_A, suggestion_of(service, OWNER_A, scenes, BOB_SCENES).cluster_id, name="Bob")
    runner(world).run(owner(OWNER_A))
    assert [v.size for v in service.list(OWNER_A).suggestions] == [3]
    with world.uow_factory() as uow:
        assert bob.person_id is not None and uow.persons.delete(OWNER_A, bob.person_id)
        uow.commit()
    with world.uow_factory() as uow:
        assert uow.face_decisions.list(OWNER_A) == []  # cascaded with the person
    runner(world).run(owner(OWNER_A))
    assert suggestion_of(service, OWNER_A, scenes, BOB_SCENES).size == 4


def test_new_faces_join_their_suggestion_incrementally_and_a_new_face_waits(world: World) -> None:
    scenes = library(world)
    runner(world).run(owner(OWNER_A))
    service = FaceClusters(uow_factory=world.uow_factory)
    bob = suggestion_of(service, OWNER_A, scenes, BOB_SCENES)
    world.add_video(OWNER_A, [face_image("bob", salt="new"), face_image("dave", salt="new")])
    runner(world).run(owner(OWNER_A))
    with world.uow_factory() as uow:
        state = uow.face_clusters.state(OWNER_A)
    assert state is not None and not state.full  # no full clustering: bob's new face joined
    assert len(state.waiting) == 1  # dave, seen once, waits for the next full clustering
    grown = service.get(OWNER_A, bob.cluster_id)  # the same suggestion id, one face more
    assert grown.size == 5 and set(bob.scene_ids) < set(grown.scene_ids)
    page = service.list(OWNER_A)
    assert page.waiting_faces == 1 and page.unknown_faces == 9
