"""The scene_ocr step and the ``ocr`` text channel through the runner, over the in-memory fakes;
tests/integration/test_runner_ocr.py runs the same scenarios over SQLite and Postgres.

"We added a new embedding method" (REPROCESSING_GUIDE.md): switching OCR on over a library makes
exactly the OCR records, the ``ocr`` channel's embeddings and the search documents stale, and a
run after the run computes nothing."""

from __future__ import annotations

import pytest

from scenedex.domain.model import OCR_CHANNEL
from scenedex.domain.ports import OcrLine
from scenedex.domain.scene_ocr import normalise_lines
from scenedex.domain.spec import EmbeddingStepType as Step
from tests.conftest import World, make_world
from tests.fakes import face_image, text_image
from tests.unit.test_runner_contract import OWNER_A, counts, owner, search

OCR = {"ocr_model_id": "fake-ocr:v1"}


@pytest.fixture(params=["memory"])
def world(request: pytest.FixtureRequest) -> World:
    """The ports over the in-memory fakes (the integration module overrides this fixture)."""
    return make_world(request, request.param)


def painted_library(world: World):
    """Owner A: four scenes; only scene 2's keyframe has words painted on it (two lines)."""
    keyframes = [face_image(salt=str(i)) for i in range(4)]
    keyframes[2] = text_image("Harbour Street", "Exit 42", salt="2")
    return world.add_video(OWNER_A, keyframes, transcripts=[f"scene {i} words" for i in range(4)])


def stale_counts(plan) -> dict[Step, int]:
    return {
        step: p.missing + sum(p.stale.values())
        for step, p in plan.steps.items()
        if step is not Step.FACE_CLUSTERS
    }


def test_ocr_from_the_start_reads_keyframes_embeds_the_ocr_channel_then_nothing(world: World) -> None:
    _, scenes = painted_library(world)
    first = world.runner(**OCR).run(owner(OWNER_A))
    assert first.ok, first.errors
    assert counts(first, "computed") == {
        Step.PERSON_PHOTO_EMBEDDINGS: 0,
        Step.PERSON_QUERY_EMBEDDINGS: 0,
        Step.SCENE_OCR: 4,
        Step.SCENE_TEXT_EMBEDDINGS: 16,
        Step.SCENE_CLIP_EMBEDDINGS: 4,
        Step.SCENE_PERSON_EMBEDDINGS: 4,
        Step.SEARCH_REINDEX: 4,
    }
    assert "Harbour Street\nExit 42" in world.text.texts  # the ocr channel of scene 2, in reading order
    with world.uow_factory() as uow:
        records = uow.records.get(Step.SCENE_OCR, OWNER_A, [s.id for s in scenes])
        text = uow.records.get(Step.SCENE_TEXT_EMBEDDINGS, OWNER_A, [scenes[2].id])
    record = records[(scenes[2].id, "")]
    assert record.model_id == "fake-ocr:v1" and record.vector is None
    assert [line["text"] for line in record.payload["lines"]] == ["Harbour Street", "Exit 42"]
    assert record.payload["lines"][0]["box"] == [10, 0, 200, 16]
    assert records[(scenes[0].id, "")].payload["text"] == ""
    assert text[(scenes[2].id, OCR_CHANNEL)].vector is not None
    assert text[(scenes[2].id, OCR_CHANNEL)].fingerprint != text[(scenes[2].id, "transcript")].fingerprint

    second = world.runner(**OCR).run(owner(OWNER_A))
    assert sum(counts(second, "computed").values()) == 0
    assert len(world.ocr.images) == 4


def test_switching_ocr_on_marks_exactly_ocr_the_ocr_channel_and_the_documents(world: World) -> None:
    painted_library(world)
    world.add_video(OWNER_A, [face_image("alice", salt="p")])
    assert world.runner().run(owner(OWNER_A)).ok
    assert sum(stale_counts(world.runner().plan(owner(OWNER_A))).values()) == 0

    plan = world.runner(**OCR).plan(owner(OWNER_A))
    assert stale_counts(plan) == {
        Step.PERSON_PHOTO_EMBEDDINGS: 0,
        Step.PERSON_QUERY_EMBEDDINGS: 0,
        Step.SCENE_OCR: 5,
        Step.SCENE_TEXT_EMBEDDINGS: 5,  # the ocr channel only: 15 others current
        Step.SCENE_CLIP_EMBEDDINGS: 0,
        Step.SCENE_PERSON_EMBEDDINGS: 0,
        Step.SEARCH_REINDEX: 5,
    }
    assert plan.steps[Step.SCENE_TEXT_EMBEDDINGS].current == 15
    assert plan.steps[Step.SEARCH_REINDEX].stale == {"fingerprint_changed": 5}

    world.text.texts.clear()
    run = world.runner(**OCR).run(owner(OWNER_A))
    assert run.ok, run.errors
    assert {s: n for s, n in counts(run, "computed").items() if n} == {
        Step.SCENE_OCR: 5,
        Step.SCENE_TEXT_EMBEDDINGS: 5,
        Step.SEARCH_REINDEX: 5,
    }
    assert world.text.texts == ["Harbour Street\nExit 42"]  # only non-empty OCR text is embedded
    assert sum(stale_counts(world.runner(**OCR).plan(owner(OWNER_A))).values()) == 0
    again = world.runner(**OCR).run(owner(OWNER_A))
    assert sum(counts(again, "computed").values()) == 0

    # And off again: the OCR records stay, the documents go back to the three channels.
    back = world.runner().plan(owner(OWNER_A))
    assert {s: n for s, n in stale_counts(back).items() if n} == {Step.SEARCH_REINDEX: 5}


def test_the_painted_phrase_finds_its_scene_first(world: World) -> None:
    _, scenes = painted_library(world)
    world.runner(**OCR).run(owner(OWNER_A))
    hits = search(world, text="Harbour Street\nExit 42", k=4)
    assert hits[0].scene_id == scenes[2].id
    assert hits[0].channel == OCR_CHANNEL
    assert hits[0].ocr_snippet == "Harbour Street Exit 42"
    assert all(h.ocr_snippet is None for h in hits[1:])


def test_an_unreadable_keyframe_fails_ocr_and_is_read_again_next_run(world: World) -> None:
    world.add_video(OWNER_A, [b"CORRUPT", text_image("Sale")])
    first = world.runner(**OCR).run(owner(OWNER_A))
    assert first.steps[Step.SCENE_OCR].failed == 1 and first.steps[Step.SCENE_OCR].computed == 1
    again = world.runner(**OCR).plan(owner(OWNER_A))
    assert again.steps[Step.SCENE_OCR].missing == 1
    assert again.steps[Step.SCENE_TEXT_EMBEDDINGS].stale == {"input_changed": 1}  # built from no OCR record


def test_lines_are_cut_deduplicated_and_put_in_reading_order() -> None:
    lines = [
        OcrLine("right", (300, 102, 400, 122), 0.9),
        OcrLine("  Title   line ", (100, 10, 500, 50), 0.95),
        OcrLine("left", (20, 100, 120, 120), 0.8),
        OcrLine("TITLE LINE", (100, 400, 500, 440), 0.6),
        OcrLine("noise", (0, 600, 30, 610), 0.3),
        OcrLine(" ", (0, 0, 1, 1), 0.99),
    ]
    kept = normalise_lines(lines, 0.5)
    assert [line.text for line in kept] == ["Title line", "left", "right"]
    assert kept[0].confidence == 0.95
    assert normalise_lines([], 0.5) == ()


def test_ocr_without_the_text_model_keeps_its_records_and_the_documents_their_ocr_text(world: World) -> None:
    """``SCENEDEX_EMBEDDER__TEXT=off`` with OCR on: no text channel at all (the ``ocr`` one
    included), the OCR records are still read and the documents hold their text (lexical)."""
    _, scenes = painted_library(world)
    off = {"off": frozenset({"text"}), **OCR}
    run = world.runner(**off).run(owner(OWNER_A))
    assert run.ok, run.errors
    assert run.steps[Step.SCENE_OCR].computed == 4 and Step.SCENE_TEXT_EMBEDDINGS not in {
        step for step, c in run.steps.items() if c.planned
    }
    assert sum(stale_counts(world.runner(**off).plan(owner(OWNER_A))).values()) == 0
    if hasattr(world.index, "documents"):
        assert world.index.documents[scenes[2].id].texts["ocr"] == "Harbour Street\nExit 42"
