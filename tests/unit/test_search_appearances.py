"""Person appearances (issue 18) from the face records to the search documents and the person
search hits: the model's helpers, ``ReprocessRunner._documents``, the table-backed index (its
document JSON and the hits its cache reads back) and ``search_scenes`` / ``describe_hits``,
over the in-memory fakes and SQLite."""

from __future__ import annotations

import dataclasses
import uuid
from types import SimpleNamespace

import pytest

from scenedex.adapters.db.search_cache import stored_hit
from scenedex.adapters.db.search_index import _document_row
from scenedex.domain.model import SearchHit, SearchQuery, appearances_from_json, appearances_to_json
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.domain.scene_documents import scene_documents
from scenedex.domain.spec import DOCUMENT_SCHEMA
from scenedex.domain.spec import EmbeddingStepType as Step
from scenedex.services.search import describe_hits, format_ranges, search_scenes
from tests.conftest import World, make_world
from tests.fakes import face_image

OWNER = uuid.UUID("00000000-0000-0000-0000-00000000000a")
ALICE_SCENES = (1, 3)


@pytest.fixture(params=["memory", "sqlite"])
def world(request: pytest.FixtureRequest) -> World:
    return make_world(request, request.param)


def library(world: World) -> tuple[uuid.UUID, list]:
    """Alice (one photo) and a 5-scene video of 1 s scenes; alice's face in scenes 1 and 3."""
    alice = world.add_person(OWNER, "alice", [face_image("alice", salt="p")])
    keyframes = [face_image(salt=str(i)) for i in range(5)]
    for i in ALICE_SCENES:
        keyframes[i] = face_image("alice", salt=str(i))
    _, scenes = world.add_video(OWNER, keyframes)
    assert world.runner().run(ReprocessRequest(ReprocessScope.OWNER, owner_id=OWNER)).ok
    return alice.id, scenes


def person_search(
    world: World, person_id: uuid.UUID | None = None, text: str | None = None
) -> list[SearchHit]:
    return search_scenes(
        uow_factory=world.uow_factory,
        index=world.index,
        text_embedder=world.text,
        image_embedder=world.clip,
        owner_id=OWNER,
        person_id=person_id,
        text=text,
        k=5,
    )


def test_appearances_json_round_trip() -> None:
    person = uuid.UUID(int=7)
    data = {str(person): [[4.0, 7.5], [12, 15]]}
    assert appearances_from_json(data) == {person: ((4.0, 7.5), (12.0, 15.0))}
    assert appearances_to_json(appearances_from_json(data)) == {str(person): [[4.0, 7.5], [12.0, 15.0]]}
    assert appearances_from_json(None) == {}  # a face record of the older layout


def test_hit_dict_lists_the_ranges_and_is_empty_without() -> None:
    hit = SearchHit(uuid.UUID(int=1), uuid.UUID(int=2), 0.5, 0.0, 8.0, ())
    assert hit.to_dict()["appearances"] == []
    with_ranges = dataclasses.replace(hit, appearances=((4.0, 7.0), (12.0, 15.5)))
    assert with_ranges.to_dict()["appearances"] == [
        {"start_s": 4.0, "end_s": 7.0},
        {"start_s": 12.0, "end_s": 15.5},
    ]
    assert format_ranges(with_ranges.appearances) == "0:04-0:07, 0:12-0:15"
    assert format_ranges(((4.0, 4.0), (61.2, 125.0))) == "0:04, 1:01-2:05"
    assert format_ranges(()) == ""


def test_document_schema_is_v2() -> None:
    assert DOCUMENT_SCHEMA == "scene-doc-v2"


def test_documents_carry_the_face_records_appearances(world: World) -> None:
    alice, scenes = library(world)
    with world.uow_factory() as uow:
        records = uow.records.get(Step.SCENE_PERSON_EMBEDDINGS, OWNER, [s.id for s in scenes])
    runner = world.runner()
    with world.uow_factory() as uow:
        documents = scene_documents(uow, OWNER, scenes, runner._expected(uow, OWNER))
    for scene, doc in zip(scenes, documents, strict=True):
        payload = records[(scene.id, "")].payload
        if scene.ordinal in ALICE_SCENES:
            # keyframe-only sampling: the face seen at the keyframe (the scene's middle) only
            assert payload["appearances"] == {str(alice): [[scene.ordinal + 0.5, scene.ordinal + 0.5]]}
            assert doc.appearances == {alice: ((scene.ordinal + 0.5, scene.ordinal + 0.5),)}
            assert doc.person_ids == (alice,)
        else:
            assert doc.appearances == {} and payload["appearances"] == {}


def test_person_search_hits_carry_the_persons_ranges(world: World) -> None:
    alice, scenes = library(world)
    hits = person_search(world, person_id=alice)  # scenes without a face are no hits
    assert {hit.scene_id: hit.appearances for hit in hits} == {
        scenes[i].id: ((i + 0.5, i + 0.5),) for i in ALICE_SCENES
    }
    described = describe_hits(world.uow_factory, OWNER, hits)
    assert [r.appearances for r in described] == [hit.appearances for hit in hits]
    middle = next(s.start_s for s in scenes if s.id == hits[0].scene_id) + 0.5
    assert described[0].to_dict()["appearances"] == [{"start_s": middle, "end_s": middle}]
    texts = person_search(world, text="scene words")
    assert texts and all(hit.appearances == () for hit in texts)


def test_table_documents_store_appearances_and_read_them_back() -> None:
    person, other = uuid.UUID(int=7), uuid.UUID(int=8)
    document = SimpleNamespace(
        scene_id=uuid.UUID(int=1),
        owner_id=OWNER,
        video_id=uuid.UUID(int=2),
        start_s=0.0,
        end_s=8.0,
        texts={},
        person_ids=(person,),
        faces=(),
        model_ids={},
        text_vectors={},
        image_vector=None,
        spec_version="v",
        fingerprint="f",
        input_hash="h",
        appearances={person: ((4.0, 7.0), (12.0, 15.0))},
    )
    row = _document_row(document)  # type: ignore[arg-type]
    assert row["document"]["appearances"] == {str(person): [[4.0, 7.0], [12.0, 15.0]]}
    stored = SimpleNamespace(**{k: row[k] for k in ("scene_id", "video_id", "start_s", "end_s", "document")})
    assert stored_hit(stored, 0.9, SearchQuery(person_id=person)).appearances == ((4.0, 7.0), (12.0, 15.0))
    assert stored_hit(stored, 0.9, SearchQuery(person_id=other)).appearances == ()
    assert stored_hit(stored, 0.9, SearchQuery()).appearances == ()
    del stored.document["appearances"]  # a scene-doc-v1 row
    assert stored_hit(stored, 0.9, SearchQuery(person_id=person)) == SearchHit(
        stored.scene_id, stored.video_id, 0.9, 0.0, 8.0, (person,)
    )


def test_the_console_search_page_shows_a_person_hits_ranges() -> None:
    from scenedex.api.console.render import TEMPLATES
    from scenedex.services.search import PersonRef, SceneResult

    owner, alice = uuid.UUID(int=1), PersonRef(uuid.UUID(int=2), "alice")
    by_person = SceneResult(
        uuid.UUID(int=3), uuid.UUID(int=4), None, 0.0, 20.0, 0.9, (alice,), ((4.0, 7.5), (12.2, 15.9))
    )
    by_text = dataclasses.replace(by_person, scene_id=uuid.UUID(int=5), appearances=())
    page = TEMPLATES.env.get_template("search.html").render(
        hits=[by_person, by_text],
        titles={by_person.video_id: "v"},
        owner=owner,
        owners=[owner],
        persons=[],
        k=8,
        described="person",
        text="",
    )
    assert [line.strip() for line in page.splitlines() if "on screen" in line] == [
        '<p class="small appearances">on screen 0:04-0:07, 0:12-0:15</p>'
    ]


def test_the_console_search_page_shows_the_matched_channel_and_the_ocr_snippet() -> None:
    from scenedex.api.console.render import TEMPLATES
    from scenedex.services.search import SceneResult

    owner = uuid.UUID(int=1)
    painted = SceneResult(
        uuid.UUID(int=3), uuid.UUID(int=4), None, 0.0, 5.0, 0.8, (), channel="ocr", ocr_snippet="EXIT 42 <b>"
    )
    spoken = dataclasses.replace(painted, scene_id=uuid.UUID(int=5), channel="transcript", ocr_snippet=None)
    page = TEMPLATES.env.get_template("search.html").render(
        hits=[painted, spoken],
        titles={painted.video_id: "v"},
        owner=owner,
        owners=[owner],
        persons=[],
        k=8,
        described="text",
        text="exit 42",
    )
    lines = [
        line.strip() for line in page.splitlines() if 'class="small channel"' in line or "on-screen" in line
    ]
    assert lines == [
        '<p class="small channel">matched <span class="tag">ocr</span></p>',
        '<p class="small ocr">on-screen text: <q>EXIT 42 &lt;b&gt;</q></p>',  # escaped
        '<p class="small channel">matched <span class="tag">transcript</span></p>',
    ]
