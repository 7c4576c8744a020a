"""Scenes per owner in the database: what a new index must cover before it is promoted.

It lives beside the adapter that needs it (one ``GROUP BY`` on the scenes table) rather than on
the repositories, whose port has no use for it.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from scenedex.adapters.db import tables as t


def sql_scene_counts(engine: sa.Engine) -> dict[uuid.UUID, int]:
    """``{owner_id: number of scenes}`` for every owner that has scenes (one query)."""
    scenes = t.scenes.c
    with engine.connect() as connection:
        rows = connection.execute(sa.select(scenes.owner_id, sa.func.count()).group_by(scenes.owner_id))
        return {row[0]: int(row[1]) for row in rows}
