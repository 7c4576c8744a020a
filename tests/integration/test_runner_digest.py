"""The digest scenarios of tests/unit/test_runner_digest.py over SQLite and Postgres, plus the
SQL-only ones (the migration's column, a no-op's statements)."""

from __future__ import annotations

import pytest

from tests.conftest import World, make_world
from tests.unit.test_runner_contract import OWNER_A, library, owner
from tests.unit.test_runner_digest import *  # noqa: F403  (the scenarios, collected here too)


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.integration),
        pytest.param("postgres", marks=pytest.mark.integration),
    ]
)
def world(request: pytest.FixtureRequest) -> World:
    """The ports over a migrated, empty SQLite or Postgres database (fake models and blobs)."""
    return make_world(request, request.param)


def test_a_noop_reads_one_statement_of_scenes_and_no_record_table(world: World) -> None:
    import sqlalchemy as sa

    library(world)
    world.runner().run(owner(OWNER_A))
    engine = world.uow_factory.engine
    seen: list[str] = []
    listener = lambda *args: seen.append(args[2])  # noqa: E731
    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        progress = world.runner().run(owner(OWNER_A))
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    assert sum(c.computed for c in progress.steps.values()) == 0
    scene_reads = [s for s in seen if "FROM scenes" in s]
    assert len(scene_reads) == 1 and "UNION ALL" in scene_reads[0]
    assert not [s for s in seen if "scene_text_embeddings" in s or "scene_clip_embeddings" in s]
    assert not [s for s in seen if "scene_faces" in s or "search_documents" in s]
    with engine.connect() as connection:
        digests = connection.execute(sa.text("SELECT DISTINCT current_under FROM scenes")).scalars().all()
    assert len(digests) == 1 and digests[0] is not None and len(digests[0]) == 64
