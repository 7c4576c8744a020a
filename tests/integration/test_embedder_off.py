"""``SCENEDEX_EMBEDDER__CLIP=off`` on a real Postgres library with embeddings: the CLIP step
leaves the spec (its fingerprint changes), the dry run shows exactly that step gone and the
documents stale, text and person search still work, image search is refused as unavailable,
and turning CLIP back on computes only the missing records: no CLIP record was deleted, so
only the documents are rebuilt (the fingerprints are the ones of before)."""

from __future__ import annotations

import pytest

from scenedex.domain.errors import KindUnavailableError
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.domain.spec import EmbeddingStepType as Step
from scenedex.services.search import search_scenes
from tests.conftest import World, make_world
from tests.fakes import face_image
from tests.unit.test_runner_contract import OWNER_A, library

OFF = frozenset({"clip"})


@pytest.fixture
def world(request: pytest.FixtureRequest) -> World:
    return make_world(request, "postgres")


def owner() -> ReprocessRequest:
    return ReprocessRequest(ReprocessScope.OWNER, owner_id=OWNER_A)


def plan_rows(world: World, **changes: object) -> dict[str, dict]:
    plan = world.runner(**changes).plan(owner()).to_dict()
    return {row["step"]: row for row in plan["steps"]}


def search(world: World, clip_off: bool, **query: object) -> list:
    return search_scenes(
        uow_factory=world.uow_factory,
        index=world.index,
        text_embedder=world.text,
        image_embedder=world.clip,
        owner_id=OWNER_A,
        off=frozenset({"clip"}) if clip_off else frozenset(),
        **query,  # type: ignore[arg-type]
    )


@pytest.mark.integration
def test_clip_off_then_on_again(world: World) -> None:
    lib = library(world)
    on = world.runner()
    assert on.run(owner()).ok
    off = world.runner(off=OFF)
    assert not off.spec.has(Step.SCENE_CLIP_EMBEDDINGS) and off.spec.version != on.spec.version
    assert off.spec.model_ids["clip"] == "off"
    for step in (Step.SCENE_TEXT_EMBEDDINGS, Step.SCENE_PERSON_EMBEDDINGS, Step.PERSON_QUERY_EMBEDDINGS):
        assert off.spec.fingerprint(step) == on.spec.fingerprint(step)
    assert off.spec.fingerprint(Step.SEARCH_REINDEX) != on.spec.fingerprint(Step.SEARCH_REINDEX)

    rows = plan_rows(world, off=OFF)
    assert "scene_clip_embeddings" not in rows
    assert set(rows) == {s.type.value for s in on.spec.steps} - {"scene_clip_embeddings"}
    assert rows["search_reindex"]["stale_by_reason"] == {"fingerprint_changed": 6}
    stale = {step: row["stale"] + row["missing"] for step, row in rows.items()}
    assert stale == {step: 6 if step == "search_reindex" else 0 for step in rows}

    calls = sum(world.clip.calls)
    progress = off.run(owner())
    assert progress.ok, progress.errors
    computed = {s.value: c.computed for s, c in progress.steps.items() if c.computed}
    assert computed == {"search_reindex": 6}
    assert sum(world.clip.calls) == calls  # CLIP never asked

    alice = lib["alice"].id
    by_person = search(world, True, person_id=alice)
    assert [h.scene_id for h in by_person] == [lib["scenes"][1].id]
    by_text = search(world, True, text="scene 3 words", k=3)
    assert by_text and by_text[0].scene_id == lib["scenes"][3].id
    with pytest.raises(KindUnavailableError, match="image search is unavailable"):
        search(world, True, image=face_image(salt="q"))

    back = plan_rows(world)
    assert back["scene_clip_embeddings"]["missing"] == 0 and back["scene_clip_embeddings"]["stale"] == 0
    assert back["search_reindex"]["stale"] == 6
    again = world.runner().run(owner())
    assert {s.value: c.computed for s, c in again.steps.items() if c.computed} == {"search_reindex": 6}
    assert search(world, False, image=face_image(salt="q"))


@pytest.mark.integration
def test_text_off_then_on_again(world: World) -> None:
    """``SCENEDEX_EMBEDDER__TEXT=off``: the text step leaves the spec, the documents (and only
    they) are rebuilt, a text query is answered by CLIP's text tower alone (and refused when
    CLIP is off too), person search is unchanged; on again: the documents only."""
    lib = library(world)
    assert world.runner().run(owner()).ok
    text_off = frozenset({"text"})
    rows = plan_rows(world, off=text_off)
    assert "scene_text_embeddings" not in rows and "scene_clip_embeddings" in rows
    assert {
        step: row["stale"] + row["missing"] for step, row in rows.items() if row["stale"] + row["missing"]
    } == {"search_reindex": 6}
    texts_before = len(world.text.texts)
    progress = world.runner(off=text_off).run(owner())
    assert progress.ok, progress.errors
    assert {s.value: c.computed for s, c in progress.steps.items() if c.computed} == {"search_reindex": 6}
    assert len(world.text.texts) == texts_before  # the text model never asked

    def text_search(off: frozenset[str]) -> list:
        return search_scenes(
            uow_factory=world.uow_factory,
            index=world.index,
            text_embedder=world.text,
            image_embedder=world.clip,
            owner_id=OWNER_A,
            text="scene 3 words",
            off=off,
        )

    assert text_search(text_off)  # CLIP's text tower over the image vectors
    assert len(world.text.texts) == texts_before
    with pytest.raises(KindUnavailableError, match="text search is unavailable"):
        text_search(frozenset({"text", "clip"}))
    assert [h.scene_id for h in search(world, False, person_id=lib["alice"].id)] == [lib["scenes"][1].id]

    again = world.runner().run(owner())
    assert {s.value: c.computed for s, c in again.steps.items() if c.computed} == {"search_reindex": 6}


@pytest.mark.integration
def test_faces_off_then_on_again(world: World) -> None:
    """``SCENEDEX_EMBEDDER__FACES=off``: the person, scene face and cluster steps leave the
    spec, only the documents are rebuilt (without faces), text and image search go on, person
    search is refused; on again: the documents only (every face record was kept)."""
    lib = library(world)
    assert world.runner().run(owner()).ok
    faces_off = frozenset({"faces"})
    off = world.runner(off=faces_off)
    assert off.spec.model_ids["face"] == "off"
    gone = {"person_photo_embeddings", "person_query_embeddings", "scene_person_embeddings", "face_clusters"}
    assert not gone & {s.type.value for s in off.spec.steps}
    rows = plan_rows(world, off=faces_off)
    assert set(rows) == {"scene_text_embeddings", "scene_clip_embeddings", "search_reindex"}
    assert {s: r["stale"] + r["missing"] for s, r in rows.items()} == {
        "scene_text_embeddings": 0,
        "scene_clip_embeddings": 0,
        "search_reindex": 6,
    }
    progress = off.run(owner())
    assert progress.ok, progress.errors
    assert {s.value: c.computed for s, c in progress.steps.items() if c.computed} == {"search_reindex": 6}

    assert search(world, False, text="scene 3 words", k=3)[0].scene_id == lib["scenes"][3].id
    assert search(world, False, image=face_image(salt="q"))
    with pytest.raises(KindUnavailableError, match="person search is unavailable"):
        search_scenes(
            uow_factory=world.uow_factory,
            index=world.index,
            text_embedder=world.text,
            image_embedder=world.clip,
            owner_id=OWNER_A,
            person_id=lib["alice"].id,
            off=faces_off,
        )
    assert search(world, False, person_id=lib["alice"].id) == []  # the documents hold no faces now

    again = world.runner().run(owner())
    assert again.ok
    assert {s.value: c.computed for s, c in again.steps.items() if c.computed} == {"search_reindex": 6}
    assert [h.scene_id for h in search(world, False, person_id=lib["alice"].id)] == [lib["scenes"][1].id]
