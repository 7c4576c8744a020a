"""kNN and hybrid search on a real OpenSearch cluster (``OPENSEARCH_URL``, e.g.
``http://127.0.0.1:9200``; ``OPENSEARCH_USERNAME``/``OPENSEARCH_PASSWORD`` for basic auth,
``OPENSEARCH_VERIFY_CERTS=0`` for a self-signed test cluster). Skipped without it: osmem has
no kNN. Everything is created under a random prefix and deleted afterwards.

Each search is compared with the in-memory reference index (``score_document``, the same
scoring as the table-backed index) over the very same documents.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from scenedex.adapters.opensearch import IndexNames, make_client
from scenedex.domain.model import SearchQuery
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from tests.fakes import (
    InMemorySearchIndex,
    face_image,
)
from tests.opensearch_fixtures import OsWorld, fake_world

URL = os.environ.get("OPENSEARCH_URL")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not URL,
        reason="OPENSEARCH_URL is not set: kNN and hybrid search need a real OpenSearch cluster "
        "(osmem-server has no kNN)",
    ),
]


@dataclass(frozen=True)
class TextQuery(SearchQuery):
    """A SearchQuery carrying the query string (BM25), as the adapter reads ``query.text``."""

    text: str | None = None


@pytest.fixture
def cluster(sqlite_engine: sa.Engine) -> Iterator[OsWorld]:
    assert URL is not None
    client = make_client(
        URL,
        username=os.environ.get("OPENSEARCH_USERNAME"),
        password=os.environ.get("OPENSEARCH_PASSWORD"),
        verify_certs=os.environ.get("OPENSEARCH_VERIFY_CERTS", "1") != "0",
    )
    prefix = f"scenedex-test-{uuid.uuid4().hex[:8]}-"
    yield OsWorld(fake_world(sqlite_engine), sqlite_engine, client, IndexNames(prefix))
    client.indices.delete(index=f"{prefix}*", ignore_unavailable=True)
    client.indices.delete_index_template(name=f"{prefix}scenes", ignore=[404])
    for pipeline in client.search_pipeline.get(ignore=[404]) or {}:
        if pipeline.startswith(prefix):
            client.search_pipeline.delete(id=pipeline)


def _library(cluster: OsWorld) -> tuple[uuid.UUID, uuid.UUID, Any]:
    """Two owners; the first has a person (alice) seen in two of its scenes. Returns the
    owners and the reference index holding the same documents."""
    owner, other = uuid.uuid4(), uuid.uuid4()
    w = cluster.world
    w.add_person(owner, "alice", [face_image("alice")])
    frames = [face_image("alice", salt="1"), b"street", face_image("alice", "bob", salt="2"), b"sea", b"hill"]
    texts = ["a red bicycle on a bridge", "cars in traffic", "two friends talk", "waves", "a quiet hill"]
    w.add_video(owner, frames, texts)
    w.add_video(other, [b"street", b"other"], ["a red bicycle on a bridge", "another owner"])
    spec = cluster.spec()
    index = cluster.index(spec)
    reference = InMemorySearchIndex()
    for target in (index, reference):
        assert cluster.runner(spec, target).run(ReprocessRequest(ReprocessScope.ALL)).ok
    return owner, other, (index, reference)


def _ids(hits: list[Any]) -> list[uuid.UUID]:
    return [hit.scene_id for hit in hits]


def test_image_search_matches_the_reference_scores(cluster: OsWorld) -> None:
    owner, _, (index, reference) = _library(cluster)
    query = SearchQuery(image_vector=cluster.world.clip.embed_images([b"sea"])[0])

    hits = index.search(owner, query, 3)

    expected = reference.search(owner, query, 3)
    assert _ids(hits) == _ids(expected) and len(hits) == 3
    assert [h.score for h in hits] == pytest.approx([h.score for h in expected], abs=1e-3)
    assert hits[0].score == pytest.approx(1.0, abs=1e-3)


def test_person_search_through_nested_faces(cluster: OsWorld) -> None:
    owner, _, (index, reference) = _library(cluster)
    with cluster.world.uow_factory() as uow:
        (person,) = uow.persons.list(owner)
        record = uow.records.get(cluster.spec().steps[1].type, owner, [person.id])[(person.id, "")]
    query = SearchQuery(face_vector=record.vector)

    hits = index.search(owner, query, 2)

    expected = reference.search(owner, query, 2)
    assert set(_ids(hits)) == set(_ids(expected))
    assert [h.score for h in hits] == pytest.approx([h.score for h in expected], abs=1e-3)
    assert all(person.id in h.person_ids for h in hits)


def test_hybrid_text_search_is_owner_scoped_and_returns_k(cluster: OsWorld) -> None:
    owner, other, (index, _) = _library(cluster)
    text = "a red bicycle on a bridge"
    w = cluster.world
    query = TextQuery(
        text_vector=w.text.embed_texts([text])[0], clip_text_vector=w.clip.encode_text([text])[0], text=text
    )

    hits = index.search(owner, query, 4)

    with w.uow_factory() as uow:
        mine = {s.id: s for s in uow.scenes.list_for_videos(owner, None)}
    assert len(hits) == 4 and set(_ids(hits)) <= set(mine)
    assert mine[hits[0].scene_id].transcript == text
    assert all(0.0 <= h.score <= 1.0 for h in hits)
    pipelines = cluster.client.search_pipeline.get()
    assert any(p.startswith(cluster.names.prefix) for p in pipelines)
    others = index.search(other, query, 10)
    assert len(others) == 2 and not set(_ids(others)) & set(mine)
