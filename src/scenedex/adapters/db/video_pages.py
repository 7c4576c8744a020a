"""Pages of an owner's videos (``SqlVideoRepository.page``): by offset, oldest first (the CLI),
or by keyset, newest first below a ``(created_at, id)`` key (the API's cursor, ``pages.after``:
a delete between two pages skips nothing and repeats nothing)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from scenedex.adapters.db import tables as t
from scenedex.adapters.db.pages import after
from scenedex.domain.model import VideoStatus


def video_page(
    session: Any,
    owner_id: uuid.UUID,
    *,
    status: VideoStatus | None = None,
    limit: int = 50,
    offset: int = 0,
    before: tuple[datetime, uuid.UUID] | None = None,
    newest_first: bool = False,
    updated_since: datetime | None = None,
) -> Sequence[sa.Row[Any]]:
    """The rows of one page (``status`` only when given; only those with ``updated_at >=
    updated_since`` when given): ``offset`` rows skipped, oldest first; or, ``newest_first``,
    the ``limit`` newest below ``before`` (none: from the newest)."""
    c = t.videos.c
    query = sa.select(t.videos).where(c.owner_id == owner_id)
    if status is not None:
        query = query.where(c.status == status.value)
    if updated_since is not None:
        query = query.where(c.updated_at >= updated_since)
    if not newest_first:
        return list(session.execute(query.order_by(c.created_at, c.id).offset(offset).limit(limit)))
    return list(session.execute(after(query, [(c.created_at, True), (c.id, True)], before, limit)))
