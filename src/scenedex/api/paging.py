"""Cursor pages (issue 28): ``listVideos`` answers newest first, ``limit`` at most
``MAX_PAGE_LIMIT``, and ``next_cursor``, an opaque token to send back as ``cursor`` for the
next page (null: the last page). The cursor is the last item's ``(created_at, id)`` key, so a
video deleted or added between two pages neither skips nor repeats one."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import HTTPException, Query

MAX_PAGE_LIMIT = 100
"""The largest ``limit`` of a cursor-paged list."""

CursorQuery = Annotated[
    str | None,
    Query(max_length=200, description="the next_cursor of the previous page (none: the first page)"),
]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_PAGE_LIMIT, description="items per page")]


def encode_cursor(created_at: datetime, item_id: uuid.UUID) -> str:
    """The opaque cursor of a ``(created_at, id)`` key (URL-safe base64, no padding)."""
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{item_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The key of a cursor ``encode_cursor`` made; a 422 problem for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, _, item_id = text.partition("|")
        return datetime.fromisoformat(moment), uuid.UUID(item_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise HTTPException(422, "cursor: not a cursor this API gave (use next_cursor as it is)") from None
