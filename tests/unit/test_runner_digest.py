"""The per-scene digest (``scenedex.domain.digest``): a no-op reads one SQL pass and no record
state, and every change still makes exactly the right records stale. Run over the in-memory
fakes here; tests/integration/test_runner_digest.py runs the same scenarios over SQLite and
Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import pytest

from scenedex.domain import digest
from scenedex.domain.digest import scene_context
from scenedex.domain.freshness import ExpectedStates
from scenedex.domain.model import RecordState
from scenedex.domain.progress import ReprocessProgress
from scenedex.domain.spec import EmbeddingStepType as Step
from scenedex.services.videos import delete_video
from tests.conftest import World, make_world
from tests.fakes import face_image
from tests.unit.test_runner_contract import OWNER_A, counts, library, owner

SCENE_RECORD_STEPS = (Step.SCENE_TEXT_EMBEDDINGS, Step.SCENE_CLIP_EMBEDDINGS, Step.SCENE_PERSON_EMBEDDINGS)


@pytest.fixture(params=["memory"])
def world(request: pytest.FixtureRequest) -> World:
    """The ports over the in-memory fakes (the integration module overrides this fixture)."""
    return make_world(request, request.param)


class CountingIndex:
    """The world's index, counting ``states`` reads (scene ids per call; None: owner-wide) and
    with a ``generation`` that a test can change (an index created anew)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.state_reads: list[list[uuid.UUID] | None] = []
        self.current_generation: str | None = "g1"

    def generation(self) -> str | None:
        return self.current_generation

    def states(
        self, owner_id: uuid.UUID, scene_ids: Iterable[uuid.UUID] | None
    ) -> dict[uuid.UUID, RecordState]:
        ids = None if scene_ids is None else list(scene_ids)
        self.state_reads.append(ids)
        return self.inner.states(owner_id, ids)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class CountingRecords:
    """Wraps the unit of work factory: every ``records.states`` call of a scene step is noted."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[Step, list[uuid.UUID] | None]] = []

    def __call__(self) -> Any:
        uow = self.inner()
        calls = self.calls

        class Counted:
            def __enter__(self) -> Any:
                entered = uow.__enter__()
                real = entered.records.states

                def states(step: Step, owner_id: uuid.UUID, ids: Iterable[uuid.UUID] | None) -> Any:
                    ids = None if ids is None else list(ids)
                    if step in SCENE_RECORD_STEPS:
                        calls.append((step, ids))
                    return real(step, owner_id, ids)

                entered.records.states = states
                return entered

            def __exit__(self, *exc: object) -> None:
                uow.__exit__(*exc)

        return Counted()

    def assessed(self) -> set[uuid.UUID] | None:
        """Scene ids whose record states were read (None: an owner-wide read happened)."""
        seen: set[uuid.UUID] = set()
        for _, ids in self.calls:
            if ids is None:
                return None
            seen.update(ids)
        return seen


def counted(world: World, index: CountingIndex, **spec_changes: Any) -> tuple[Any, CountingRecords]:
    """A runner on ``index`` whose scene-step record reads are counted."""
    records = CountingRecords(world.uow_factory)
    runner = world.runner(index=index, **spec_changes)
    runner._uow_factory = records  # the runner's only way to the database
    return runner, records


def stale_counts(plan: Any) -> dict[Step, int]:
    return {step: p.missing + sum(p.stale.values()) for step, p in plan.steps.items() if p.missing or p.stale}


def test_second_run_reads_only_the_digest(world: World) -> None:
    library(world)
    index = CountingIndex(world.index)
    first = world.runner(index=index).run(owner(OWNER_A))
    assert first.ok, first.errors
    runner, records = counted(world, index)
    index.state_reads.clear()
    second = runner.run(owner(OWNER_A))
    assert sum(counts(second, "computed").values()) == 0
    assert counts(second, "skipped") == counts(first, "computed")
    assert counts(second, "planned") == counts(first, "planned")
    assert records.calls == [] and index.state_reads == []
    plan = runner.plan(owner(OWNER_A))
    assert (plan.scenes, plan.steps[Step.SCENE_TEXT_EMBEDDINGS].current) == (6, 18)
    assert plan.steps[Step.SEARCH_REINDEX].current == 6
    assert records.calls == [] and index.state_reads == []


def test_a_text_change_makes_exactly_that_scene_text_and_document_stale(world: World) -> None:
    lib = library(world)
    index = CountingIndex(world.index)
    world.runner(index=index).run(owner(OWNER_A))
    changed = lib["scenes"][2]
    with world.uow_factory() as uow:
        uow.scenes.set_texts(OWNER_A, lib["video"].id, 2, {"transcript": "a new transcript"})
        uow.commit()
    runner, records = counted(world, index)
    plan = runner.plan(owner(OWNER_A))
    assert stale_counts(plan) == {Step.SCENE_TEXT_EMBEDDINGS: 1, Step.SEARCH_REINDEX: 1}
    assert plan.steps[Step.SCENE_TEXT_EMBEDDINGS].stale == {"input_changed": 1}
    assert plan.steps[Step.SCENE_TEXT_EMBEDDINGS].current == 17
    assert records.assessed() == {changed.id}
    rerun = runner.run(owner(OWNER_A))
    assert {s: n for s, n in counts(rerun, "computed").items() if n} == {
        Step.SCENE_TEXT_EMBEDDINGS: 1,
        Step.SEARCH_REINDEX: 1,
    }
    assert world.text.texts[-1] == "a new transcript"
    records.calls.clear()
    assert sum(counts(runner.run(owner(OWNER_A)), "computed").values()) == 0
    assert records.calls == []


def test_spec_person_and_force_changes_still_make_the_right_records_stale(world: World) -> None:
    library(world)
    index = CountingIndex(world.index)
    world.runner(index=index).run(owner(OWNER_A))
    runner, records = counted(world, index, face_match_threshold=0.3)
    threshold = runner.plan(owner(OWNER_A))  # a new faces fingerprint: a new context
    assert stale_counts(threshold) == {Step.SCENE_PERSON_EMBEDDINGS: 6, Step.SEARCH_REINDEX: 6}
    assert threshold.steps[Step.SCENE_PERSON_EMBEDDINGS].stale == {"fingerprint_changed": 6}

    runner, records = counted(world, index)
    assert stale_counts(runner.plan(owner(OWNER_A))) == {}
    world.add_person(OWNER_A, "bob", [face_image("bob")])
    person = runner.plan(owner(OWNER_A))
    assert stale_counts(person) == {
        Step.PERSON_PHOTO_EMBEDDINGS: 1,
        Step.PERSON_QUERY_EMBEDDINGS: 1,
        Step.SCENE_PERSON_EMBEDDINGS: 6,
        Step.SEARCH_REINDEX: 6,
    }
    assert person.steps[Step.SCENE_PERSON_EMBEDDINGS].stale == {"input_changed": 6}
    runner.run(owner(OWNER_A))
    records.calls.clear()
    assert sum(counts(runner.run(owner(OWNER_A)), "computed").values()) == 0
    assert records.calls == []

    forced = runner.plan(owner(OWNER_A, force=True))
    assert forced.steps[Step.SCENE_TEXT_EMBEDDINGS].stale == {"forced": 18}
    assert forced.steps[Step.SEARCH_REINDEX].stale == {"forced": 6}
    progress = runner.run(owner(OWNER_A, force=True))
    assert counts(progress, "computed")[Step.SCENE_CLIP_EMBEDDINGS] == 6
    records.calls.clear()
    assert sum(counts(runner.run(owner(OWNER_A)), "computed").values()) == 0
    assert records.calls == []


def test_a_failed_item_leaves_its_scene_without_a_digest(world: World) -> None:
    _, scenes = world.add_video(OWNER_A, [face_image(salt="0"), b"CORRUPT bytes", face_image(salt="2")])
    bad = scenes[1]
    index = CountingIndex(world.index)
    first = world.runner(index=index).run(owner(OWNER_A))
    assert {e.item_id for e in first.errors} == {bad.id}
    assert bad.id in world.index.states(OWNER_A, [bad.id])  # a document built without CLIP/faces
    runner, records = counted(world, index)
    plan = runner.plan(owner(OWNER_A))
    assert records.assessed() == {bad.id}
    assert stale_counts(plan) == {
        Step.SCENE_CLIP_EMBEDDINGS: 1,
        Step.SCENE_PERSON_EMBEDDINGS: 1,
        Step.SEARCH_REINDEX: 1,
    }
    world.blobs.write(bad.keyframe_uri.removeprefix("memory://blobs/"), face_image(salt="fixed"))
    retried = runner.run(owner(OWNER_A))
    assert retried.ok, retried.errors
    assert {s: n for s, n in counts(retried, "computed").items() if n} == {
        Step.SCENE_CLIP_EMBEDDINGS: 1,
        Step.SCENE_PERSON_EMBEDDINGS: 1,
        Step.SEARCH_REINDEX: 1,
    }
    records.calls.clear()
    assert sum(counts(runner.run(owner(OWNER_A)), "computed").values()) == 0
    assert records.calls == []


def test_a_person_without_query_embedding_leaves_face_records_undigested(world: World) -> None:
    """Faces matched against a missing person query record are written with the input hash of
    what they were matched with, not the expected one: no digest, retried next run."""
    library(world)
    index = CountingIndex(world.index)
    runner = world.runner(index=index)
    runner.run_scenes(OWNER_A, None, ReprocessProgress(runner.spec.version))  # no person steps
    counting, records = counted(world, index)
    plan = counting.plan(owner(OWNER_A))
    assert plan.steps[Step.SCENE_PERSON_EMBEDDINGS].stale == {"input_changed": 6}
    assert len(records.assessed() or ()) == 6
    counting.run(owner(OWNER_A))
    records.calls.clear()
    assert sum(counts(counting.run(owner(OWNER_A)), "computed").values()) == 0
    assert records.calls == []


def test_documents_deleted_from_the_index_are_written_again(world: World) -> None:
    """Documents of live scenes vanish three ways: the index is created anew (its generation
    changes: every document is assessed), a single document deleted outside the runner (whoever
    deletes it calls ``forget_current``, as ``index verify --repair`` does), and a video deletion
    that died after removing the documents but before the rows (the digest went first)."""
    lib = library(world)
    index = CountingIndex(world.index)
    runner, records = counted(world, index)
    runner.run(owner(OWNER_A))
    ids = [s.id for s in lib["scenes"]]

    world.index.delete(OWNER_A, ids)
    index.current_generation = "g2"
    rebuilt = runner.run(owner(OWNER_A))
    assert {s: n for s, n in counts(rebuilt, "computed").items() if n} == {Step.SEARCH_REINDEX: 6}
    assert set(world.index.states(OWNER_A, ids)) == set(ids)

    world.index.delete(OWNER_A, [ids[3]])
    runner.forget_current(OWNER_A, [ids[3]])
    records.calls.clear()
    one = runner.run(owner(OWNER_A))
    assert {s: n for s, n in counts(one, "computed").items() if n} == {Step.SEARCH_REINDEX: 1}
    assert records.assessed() == {ids[3]}

    class RowsStayBehind:
        """The unit of work factory, whose video deletion fails (the database went away)."""

        def __call__(self) -> Any:
            uow = world.uow_factory()
            entered = uow.__enter__()

            def failing_delete(*args: Any) -> bool:
                raise ConnectionError("database gone")

            entered.videos.delete = failing_delete
            return _Entered(uow, entered)

    with pytest.raises(ConnectionError):
        delete_video(OWNER_A, lib["video"].id, uow_factory=RowsStayBehind(), blobs=world.blobs, index=index)
    assert world.index.states(OWNER_A, ids) == {}
    again = runner.run(owner(OWNER_A))
    assert {s: n for s, n in counts(again, "computed").items() if n} == {Step.SEARCH_REINDEX: 6}


class _Entered:
    """A unit of work already entered, usable as a context manager again."""

    def __init__(self, uow: Any, entered: Any) -> None:
        self._uow, self._entered = uow, entered

    def __enter__(self) -> Any:
        return self._entered

    def __exit__(self, *exc: object) -> None:
        self._uow.__exit__(*exc)


def test_the_context_covers_the_spec_the_persons_and_the_index(world: World) -> None:
    library(world)
    spec = world.runner().spec
    with world.uow_factory() as uow:
        photos = uow.persons.list_photos(OWNER_A)
        persons = [p.id for p in uow.persons.list(OWNER_A)]
    base = scene_context(ExpectedStates(spec, photos, persons), "")
    assert len(base) == 64
    assert scene_context(ExpectedStates(spec, photos, persons), "index:x") != base
    assert scene_context(ExpectedStates(spec, photos, [*persons, uuid.uuid4()]), "") != base
    other = world.runner(face_match_threshold=0.3).spec
    assert scene_context(ExpectedStates(other, photos, persons), "") != base


def test_the_scene_repository_keeps_digests_per_row_version(world: World) -> None:
    video, _ = world.add_video(OWNER_A, [face_image(salt="0"), face_image(salt="1")])
    other, _ = world.add_video(OWNER_A, [face_image(salt="2")])
    context = "c" * 64
    with world.uow_factory() as uow:
        read = uow.scenes.list_for_video(OWNER_A, video.id)
    with world.uow_factory() as uow:  # changed after the run read it: the stamp misses it
        changed = uow.scenes.set_texts(OWNER_A, video.id, 0, {"summary": "new"})
        uow.commit()
    with world.uow_factory() as uow:
        assert uow.scenes.mark_current(OWNER_A, read, context) == {read[1].id}
        uow.commit()
    with world.uow_factory() as uow:
        stale, current = uow.scenes.not_current_under(OWNER_A, None, context)
        assert ([s.id for s in stale if s.video_id == video.id], current) == ([read[0].id], 1)
        (now,) = (s for s in stale if s.id == read[0].id)
        assert now.summary == "new" and now.updated_at == changed.updated_at
        stale, current = uow.scenes.not_current_under(OWNER_A, [other.id], context)
        assert (len(stale), current) == (1, 0)
        assert uow.scenes.not_current_under(uuid.uuid4(), None, context) == ([], 0)
        uow.scenes.clear_current(OWNER_A, [read[1].id])
        uow.commit()
    with world.uow_factory() as uow:
        assert uow.scenes.not_current_under(OWNER_A, [video.id], context)[1] == 0


@pytest.mark.parametrize("wide", [False, True], ids=["by-ids", "owner-wide"])
def test_scenes_found_current_without_a_digest_get_it_back(
    world: World, monkeypatch: pytest.MonkeyPatch, wide: bool
) -> None:
    """As after the upgrade to the digest: no scene has one, every record is current. The first
    run computes nothing and stamps them (read back by ids, or owner-wide above WIDE_STAMP);
    the next one reads no record state."""
    lib = library(world)
    index = CountingIndex(world.index)
    world.runner(index=index).run(owner(OWNER_A))
    if wide:
        monkeypatch.setattr(digest, "WIDE_STAMP", 2)
    runner, records = counted(world, index)
    ids = [s.id for s in lib["scenes"]]
    runner.forget_current(OWNER_A, ids)
    first = runner.run(owner(OWNER_A))
    assert sum(counts(first, "computed").values()) == 0
    assert records.assessed() == (None if wide else set(ids))
    records.calls.clear()
    index.state_reads.clear()
    second = runner.run(owner(OWNER_A))
    assert counts(second, "skipped") == counts(first, "skipped")
    assert records.calls == [] and index.state_reads == []
