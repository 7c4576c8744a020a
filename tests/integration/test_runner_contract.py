"""The ReprocessRunner scenarios of tests/unit/test_runner_contract.py, run again over SQLite
and Postgres (this module's ``world`` fixture), plus the SQL-only ones."""

from __future__ import annotations

import pytest

from tests.conftest import World, make_world
from tests.fakes import face_image
from tests.unit.test_runner_contract import *  # noqa: F403  (the scenarios, collected here too)
from tests.unit.test_runner_contract import OWNER_A, owner


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.integration),
        pytest.param("postgres", marks=pytest.mark.integration),
    ]
)
def world(request: pytest.FixtureRequest) -> World:
    """The ports over a migrated, empty SQLite or Postgres database (fake models and blobs)."""
    return make_world(request, request.param)


@pytest.mark.parametrize("world", ["sqlite"], indirect=True)
def test_noop_run_is_planned_with_a_constant_number_of_queries(world: World) -> None:
    """Set-based planning: the statements of a no-op run do not grow with the number of videos."""
    import sqlalchemy as sa

    def statements_of_noop_run(videos: int) -> int:
        for i in range(videos):
            world.add_video(OWNER_A, [face_image(salt=f"{videos}-{i}")])
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
        return len(seen)

    assert statements_of_noop_run(2) == statements_of_noop_run(20)
