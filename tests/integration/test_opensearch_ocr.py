"""The ``ocr`` channel on OpenSearch (osmem): switching OCR on builds the new index with the
``ocr`` text and vector fields, the documents hold the OCR text and vector, and a lexical search
for the painted words finds the painted scene with its OCR snippet. (osmem has no search
pipelines, so the hybrid query with its ``dis_max`` of four channels is pinned by the golden
bodies of tests/unit/test_opensearch_bodies.py, not run here.)"""

from __future__ import annotations

import uuid

import pytest

from scenedex.domain.model import SearchQuery
from tests.fakes import text_image
from tests.opensearch_fixtures import OsWorld, os_client, os_world, osmem

__all__ = ["os_client", "os_world", "osmem"]  # the fixtures this module uses, imported for pytest

pytestmark = pytest.mark.integration
OCR = {"ocr_model_id": "fake-ocr:v1"}


def test_switching_ocr_on_builds_an_index_with_the_ocr_channel_and_finds_the_painted_scene(
    os_world: OsWorld,
) -> None:
    world = os_world.world
    owner = uuid.uuid4()
    frames = [b"plain-0", text_image("Harbour Street", "Exit 42"), b"plain-2"]
    _, scenes = world.add_video(owner, frames, ["a quiet morning", "gulls over the water", "a long road"])
    off = os_world.spec()
    assert os_world.run_all(off, os_world.index(off)).ok

    on = os_world.spec(**OCR)
    index = os_world.index(on)
    progress = os_world.run_all(on, index)
    assert progress.ok, progress.errors
    mapping = os_world.client.indices.get_mapping(index=os_world.layout(on).index)
    fields = next(iter(mapping.values()))["mappings"]["properties"]
    assert fields["ocr"]["type"] == "text" and fields["ocr_vector"]["type"] == "knn_vector"
    assert os_world.client.indices.get_alias(name="t-scenes")  # the read alias moved once covered

    source = os_world.client.get(index=os_world.layout(on).index, id=str(scenes[1].id))["_source"]
    assert source["ocr"] == "Harbour Street\nExit 42" and len(source["ocr_vector"]) == world.text.dim
    hits = index.search(owner, SearchQuery(text="harbour street"), 3)
    assert [hit.scene_id for hit in hits] == [scenes[1].id]  # BM25 over the ocr field
    assert hits[0].ocr_snippet == "Harbour Street Exit 42" and hits[0].channel is None  # no vector query
