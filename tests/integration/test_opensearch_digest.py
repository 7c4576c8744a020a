"""The scene digest against the OpenSearch adapter (osmem-server): an index deleted and created
again changes its generation, so the runner writes every document again."""

from __future__ import annotations

import pytest

from scenedex.domain.spec import EmbeddingStepType
from tests.opensearch_fixtures import OsWorld, os_client, os_world, osmem

__all__ = ["os_client", "os_world", "osmem"]  # the fixtures this module uses, imported for pytest
pytestmark = pytest.mark.integration


def computed(progress) -> dict[str, int]:
    return {step.value: c.computed for step, c in progress.steps.items() if c.computed}


def test_an_index_deleted_by_hand_has_every_document_written_again(os_world: OsWorld) -> None:
    os_world.library(owners=1, videos=1, scenes=3)
    spec = os_world.spec()
    index = os_world.index(spec)
    assert index.generation() is None  # nothing written yet
    first = os_world.run_all(spec, index)
    assert first.ok, first.errors
    generation = index.generation()
    assert generation
    assert computed(os_world.run_all(spec, index)) == {}

    os_world.client.indices.delete(index=index.layout.index)
    assert index.generation() is None
    again = os_world.run_all(spec, index)
    assert computed(again) == {EmbeddingStepType.SEARCH_REINDEX.value: 3}
    assert index.generation() not in (None, generation)
    with os_world.world.uow_factory() as uow:
        (owner_id,) = uow.list_owner_ids()
    assert len(index.states(owner_id, None)) == 3
    assert computed(os_world.run_all(spec, index)) == {}
