"""The cached table search (``scenedex.adapters.db.search_cache``) against the row-by-row
scoring it replaces (``exact_reference_search``), on SQLite and real Postgres: same hits, same
order, same scores, owner isolation, and writes by another index instance (as another process
would make them) seen by the next query."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
import sqlalchemy as sa

from scenedex.adapters.db import tables as t
from scenedex.adapters.db.engine import create_engine
from scenedex.adapters.db.search_index import TableSearchIndex, exact_reference_search
from scenedex.domain.model import TEXT_CHANNELS, DetectedFace, SceneDocument, SearchHit, SearchQuery

TEXT_DIM, IMAGE_DIM, FACE_DIM = 384, 512, 128


def unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    vector = rng.standard_normal(dim).astype(np.float32)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def document(rng: np.random.Generator, owner: uuid.UUID, **vectors: object) -> SceneDocument:
    """A document with a random subset of text channels, an image in 80% and 1-3 faces in 30%
    (any of them given in ``vectors`` instead)."""
    texts = {c: unit(rng, TEXT_DIM) for c in TEXT_CHANNELS if rng.random() < 0.6}
    image = unit(rng, IMAGE_DIM) if rng.random() < 0.8 else None
    faces = tuple(
        DetectedFace((0, 0, 4, 4), unit(rng, FACE_DIM) * 1.45, uuid.uuid4())
        for _ in range(int(rng.integers(1, 4)) if rng.random() < 0.3 else 0)
    )
    texts = vectors.get("texts", texts)  # type: ignore[assignment]
    image = vectors.get("image", image)  # type: ignore[assignment]
    faces = vectors.get("faces", faces)  # type: ignore[assignment]
    return SceneDocument(
        scene_id=uuid.uuid4(),
        video_id=uuid.uuid4(),
        owner_id=owner,
        start_s=float(rng.integers(0, 100)),
        end_s=200.0,
        texts={c: "" for c in texts},
        text_vectors=texts,
        image_vector=image,
        faces=faces,
        person_ids=tuple(face.person_id for face in faces if face.person_id),
        spec_version="v",
        model_ids={},
        fingerprint="f",
        input_hash="h",
    )


def queries(rng: np.random.Generator) -> Iterator[SearchQuery]:
    for _ in range(3):
        yield SearchQuery(text_vector=unit(rng, TEXT_DIM))
        yield SearchQuery(text_vector=unit(rng, TEXT_DIM), clip_text_vector=unit(rng, IMAGE_DIM))
        yield SearchQuery(image_vector=unit(rng, IMAGE_DIM))
        yield SearchQuery(face_vector=unit(rng, FACE_DIM))
        yield SearchQuery(text_vector=unit(rng, TEXT_DIM), face_vector=unit(rng, FACE_DIM))


def assert_same(hits: list[SearchHit], expected: list[SearchHit]) -> None:
    assert [h.scene_id for h in hits] == [h.scene_id for h in expected]
    assert [h.score for h in hits] == pytest.approx([h.score for h in expected], abs=1e-6)
    assert [(h.video_id, h.start_s, h.end_s, h.person_ids) for h in hits] == [
        (h.video_id, h.start_s, h.end_s, h.person_ids) for h in expected
    ]


def other_process_engine(engine: sa.Engine) -> sa.Engine:
    """A second engine (its own pool and connections) on the same database."""
    return create_engine(engine.url.render_as_string(hide_password=False))


@pytest.mark.parametrize("cache_max_bytes", [1 << 30, 0, 200_000])
def test_cached_search_matches_row_by_row_scoring(sql_engine: sa.Engine, cache_max_bytes: int) -> None:
    rng = np.random.default_rng(7)
    owners = [uuid.uuid4() for _ in range(3)]
    index = TableSearchIndex(sql_engine, cache_max_bytes=cache_max_bytes)
    own = [document(rng, owners[0]) for _ in range(300)]
    index.upsert(own)
    # The other owners hold copies of the first owner's vectors: a leak would rank them first.
    for owner in owners[1:]:
        index.upsert(
            [document(rng, owner, texts=d.text_vectors, image=d.image_vector, faces=d.faces) for d in own]
        )
        index.upsert([document(rng, owner) for _ in range(100)])
    own_ids = {d.scene_id for d in own}
    for query in queries(rng):
        for owner in owners:
            expected = exact_reference_search(sql_engine, owner, query, 1000)
            for k in (1, 10, 1000):
                assert_same(index.search(owner, query, k), expected[:k])
        assert {h.scene_id for h in index.search(owners[0], query, 1000)} <= own_ids
    assert index.search(uuid.uuid4(), SearchQuery(text_vector=unit(rng, TEXT_DIM)), 10) == []
    assert index.search(owners[0], SearchQuery(), 10) == []


def test_cache_sees_another_process_writes(sql_engine: sa.Engine) -> None:
    rng = np.random.default_rng(11)
    owner = uuid.uuid4()
    cached = TableSearchIndex(sql_engine)
    writer_engine = other_process_engine(sql_engine)
    writer = TableSearchIndex(writer_engine, cache_max_bytes=0)
    docs = [document(rng, owner, image=unit(rng, IMAGE_DIM))] + [document(rng, owner) for _ in range(199)]
    writer.upsert(docs)
    probe = SearchQuery(text_vector=unit(rng, TEXT_DIM), image_vector=unit(rng, IMAGE_DIM))

    def check(query: SearchQuery) -> list[SearchHit]:
        hits = cached.search(owner, query, 10)
        assert_same(hits, exact_reference_search(sql_engine, owner, query, 10))
        return hits

    check(probe)  # loads the cache
    assert cached.cache._entries[owner].vectors is not None

    # A new document equal to the query is found first.
    new = document(rng, owner, texts={"summary": probe.text_vector}, image=probe.image_vector)
    writer.upsert([new])
    assert check(probe)[0].scene_id == new.scene_id

    # An updated document is scored with its new vectors (and no longer with its old ones).
    old = docs[0]
    old_query = SearchQuery(image_vector=old.image_vector)
    assert check(old_query)[0].scene_id == old.scene_id
    fresh_face = unit(rng, FACE_DIM)
    moved = document(
        rng, owner, texts={}, image=unit(rng, IMAGE_DIM), faces=(DetectedFace((0, 0, 1, 1), fresh_face),)
    )
    writer.upsert([replace(moved, scene_id=old.scene_id)])
    assert check(SearchQuery(face_vector=fresh_face))[0].scene_id == old.scene_id
    assert all(h.scene_id != old.scene_id or h.score < 0.99 for h in check(old_query))

    # A deleted document is gone.
    writer.delete(owner, [new.scene_id, old.scene_id])
    hits = check(probe) + check(SearchQuery(face_vector=fresh_face))
    assert {new.scene_id, old.scene_id}.isdisjoint(h.scene_id for h in hits)

    # Even a delete that bypasses the index (no notification) never returns the deleted scene.
    top = check(probe)[0].scene_id
    with writer_engine.begin() as connection:
        connection.execute(sa.delete(t.search_documents).where(t.search_documents.c.scene_id == top))
    assert top not in {h.scene_id for h in check(probe)}
    writer_engine.dispose()


def test_concurrent_searches_while_another_owner_is_written(sql_engine: sa.Engine) -> None:
    rng = np.random.default_rng(3)
    owner, other = uuid.uuid4(), uuid.uuid4()
    index = TableSearchIndex(sql_engine)
    index.upsert([document(rng, owner) for _ in range(300)])
    cases = [(q, exact_reference_search(sql_engine, owner, q, 10)) for q in queries(rng)]
    writer = TableSearchIndex(sql_engine, cache_max_bytes=0)
    extra = [[document(rng, other) for _ in range(20)] for _ in range(10)]
    failures: list[BaseException] = []

    def search() -> None:
        try:
            for _ in range(4):
                for query, expected in cases:
                    assert_same(index.search(owner, query, 10), expected)
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    threads = [threading.Thread(target=search) for _ in range(4)]
    for thread in threads:
        thread.start()
    for batch in extra:
        writer.upsert(batch)
        index.search(other, cases[0][0], 5)
    for thread in threads:
        thread.join()
    assert failures == []


def test_many_identical_documents_are_scored_once_and_ranked_as_row_by_row(
    sql_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """400 documents share one set of vectors (black frames, a repeated slate): the exact
    re-score of the tie runs once for them, and the hits are those of the row-by-row scoring."""
    import scenedex.adapters.db.search_cache as search_cache

    rng = np.random.default_rng(19)
    owner = uuid.uuid4()
    shared = document(
        rng, owner, texts={c: unit(rng, TEXT_DIM) for c in TEXT_CHANNELS}, image=unit(rng, IMAGE_DIM)
    )
    copies = [replace(shared, scene_id=uuid.uuid4(), video_id=uuid.uuid4()) for _ in range(400)]
    others = [document(rng, owner) for _ in range(30)]
    index = TableSearchIndex(sql_engine)
    index.upsert(copies + others)
    calls = []
    original = search_cache.score_document

    def counting(*args: object) -> float | None:
        calls.append(1)
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(search_cache, "score_document", counting)
    near_shared = SearchQuery(image_vector=shared.image_vector)
    for query in (near_shared, SearchQuery(text_vector=shared.text_vectors["transcript"])):
        calls.clear()
        hits = index.search(owner, query, 10)
        assert len(calls) <= 1 + len(others), len(calls)
        expected = exact_reference_search(sql_engine, owner, query, 10)
        # 400 exact ties: the cache breaks them by scene id, the row-by-row scoring by row order
        assert [h.score for h in hits] == pytest.approx([h.score for h in expected], abs=1e-6)
        assert {h.scene_id for h in hits} <= {c.scene_id for c in copies}
        assert [h.scene_id for h in hits] == sorted(h.scene_id for h in hits)


def near(rng: np.random.Generator, vector: np.ndarray, noise: float) -> np.ndarray:
    """A raw face descriptor (norm ~1.45) around the unit ``vector`` (noise of norm ~``noise``)."""
    jitter = rng.standard_normal(FACE_DIM).astype(np.float32) * noise / np.sqrt(FACE_DIM)
    return unit_of(vector + jitter) * 1.45


def unit_of(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


@pytest.mark.parametrize("cache_max_bytes", [1 << 30, 0])
def test_person_search_returns_only_the_scenes_matched_to_the_person(
    sql_engine: sa.Engine, cache_max_bytes: int
) -> None:
    """A face nearer the person than any matched one but not matched to it (a user rejected
    it) is no hit, in the cache (1 GiB), the chunked scan (0) and the row-by-row scoring; the
    top k is taken among the matched scenes; a document rewritten without the person (or
    changed behind the index's back) leaves the person's hits."""
    rng = np.random.default_rng(23)
    owner, person, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    query_vector = unit(rng, FACE_DIM)
    query = SearchQuery(face_vector=query_vector, person_id=person)

    def scene(noise: float, matched: uuid.UUID | None, **vectors: object) -> SceneDocument:
        face = DetectedFace((0, 0, 4, 4), near(rng, query_vector, noise), matched)
        return document(rng, owner, faces=(face,), **vectors)

    rejected = [scene(0.01, None) for _ in range(20)] + [scene(0.01, other) for _ in range(5)]
    matched = [scene(0.05 * (i + 1), person) for i in range(4)]
    # "odd" documents (an image of another dim: kept aside and scored one by one)
    odd_rejected = scene(0.0, None, image=unit(rng, 8))
    odd_matched = scene(0.3, person, image=unit(rng, 8))
    unrelated = [document(rng, owner) for _ in range(100)]
    index = TableSearchIndex(sql_engine, cache_max_bytes=cache_max_bytes)
    index.upsert([*rejected, *matched, odd_rejected, odd_matched, *unrelated])
    expected_ids = [d.scene_id for d in matched] + [odd_matched.scene_id]  # nearest first

    reference = exact_reference_search(sql_engine, owner, query, 1000)
    assert [h.scene_id for h in reference] == expected_ids
    assert all(person in h.person_ids and h.score > 0.9 for h in reference)
    for k in (1, 3, 10):
        hits = index.search(owner, query, k)
        assert_same(hits, reference[:k])
    # Not a person search: the unmatched near faces rank first, as before.
    unfiltered = SearchQuery(face_vector=query_vector)
    top = index.search(owner, unfiltered, 10)
    assert_same(top, exact_reference_search(sql_engine, owner, unfiltered, 10))
    assert {h.scene_id for h in top[:5]} <= {d.scene_id for d in [*rejected, odd_rejected]}
    assert index.search(owner, SearchQuery(face_vector=query_vector, person_id=uuid.uuid4()), 10) == []

    # The pipeline rewrites a scene without the person (its face rejected): it leaves the hits.
    index.upsert([replace(matched[0], person_ids=())])
    assert [h.scene_id for h in index.search(owner, query, 10)] == expected_ids[1:]
    # A change behind the index's back (no notification) is caught when the hit is read back.
    with sql_engine.begin() as connection:
        docs = t.search_documents.c
        row = connection.execute(sa.select(docs.document).where(docs.scene_id == matched[1].scene_id)).one()
        connection.execute(
            sa.update(t.search_documents)
            .where(docs.scene_id == matched[1].scene_id)
            .values(document={**row.document, "person_ids": []}, updated_at=sa.func.now())
        )
    hits = index.search(owner, query, 10)
    assert [h.scene_id for h in hits] == expected_ids[2:]
    assert_same(hits, exact_reference_search(sql_engine, owner, query, 10))
