"""Cursor pages (issue 28), one scheme for every list of the API: ``limit`` at most
``MAX_PAGE_LIMIT`` and ``next_cursor``, an opaque token to send back as ``cursor`` for the next
page (null: the last page). The cursor is the last item's sort key (``listVideos``,
``listPersons``, ``listReprocessJobs``, ``list*WebhookDeliveries``: ``(created_at, id)``, newest
first; ``listFaceClusters``: ``(size, cluster_id)``, largest first), and the next page is the
items strictly after that key (``adapters.db.pages``), so an item deleted or added between two
pages neither skips nor repeats another. A cursor the API did not give is a 422 problem, like an
``updated_since`` that is not an RFC 3339 date-time with an offset. The event feeds (``list*Events``) resume
from their own ``after`` cursor (oldest first) and take the same ``limit``."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import HTTPException, Query
from pydantic import AwareDatetime

MAX_PAGE_LIMIT = 100
"""The largest ``limit`` of every list."""

CursorQuery = Annotated[
    str | None,
    Query(max_length=200, description="the next_cursor of the previous page (none: the first page)"),
]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_PAGE_LIMIT, description="items per page")]
UpdatedSinceQuery = Annotated[
    AwareDatetime | None,
    Query(
        description="only the items changed at or after this moment (RFC 3339 date-time with an "
        "offset, e.g. 2026-11-01T12:00:00Z); their order and cursor are as without it"
    ),
]

T = TypeVar("T")

_BAD_CURSOR = "cursor: not a cursor this API gave (use next_cursor as it is)"


def _encode(*parts: str) -> str:
    return base64.urlsafe_b64encode("|".join(parts).encode()).decode().rstrip("=")


def _parts(cursor: str) -> tuple[str, str]:
    """The two parts of a cursor (``HTTPException`` 422 for anything else)."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise HTTPException(422, _BAD_CURSOR) from None
    first, bar, second = text.partition("|")
    if not bar:
        raise HTTPException(422, _BAD_CURSOR)
    return first, second


def encode_cursor(created_at: datetime, item_id: uuid.UUID) -> str:
    """The opaque cursor of a ``(created_at, id)`` key (URL-safe base64, no padding)."""
    return _encode(created_at.isoformat(), str(item_id))


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The key of a cursor ``encode_cursor`` made; a 422 problem for anything else (a naive
    time included: every key is an aware UTC time)."""
    moment, item_id = _parts(cursor)
    try:
        key = datetime.fromisoformat(moment), uuid.UUID(item_id)
    except ValueError:
        raise HTTPException(422, _BAD_CURSOR) from None
    if key[0].tzinfo is None:
        raise HTTPException(422, _BAD_CURSOR)
    return key


def created_key(item: Any) -> tuple[datetime, uuid.UUID]:
    """The ``(created_at, id)`` sort key of a video, person, job or delivery."""
    return item.created_at, item.id


def cut_page(
    items: Sequence[T], limit: int, key: Callable[[T], tuple[datetime, uuid.UUID]] = created_key
) -> tuple[Sequence[T], str | None]:
    """A newest-first page from ``items`` read with ``limit + 1`` (one more tells whether a
    next page exists): the first ``limit`` items and ``next_cursor``, the cursor of the last of
    them (``key``: its ``(created_at, id)``), None when nothing follows."""
    if len(items) <= limit:
        return items, None
    return items[:limit], encode_cursor(*key(items[limit - 1]))


def encode_size_cursor(size: int, item_id: str) -> str:
    """The opaque cursor of a ``(size, id)`` key (the face clusters', largest first)."""
    return _encode(str(size), item_id)


def decode_size_cursor(cursor: str) -> tuple[int, str]:
    """The key of a cursor ``encode_size_cursor`` made; a 422 problem for anything else."""
    size, item_id = _parts(cursor)
    if not size.isdigit() or not item_id or len(size) > 18:
        raise HTTPException(422, _BAD_CURSOR)
    return int(size), item_id


def since_utc(moment: datetime | None) -> datetime | None:
    """An ``updated_since`` in UTC (None stays None), clamped to the years 1..9999 Python can
    hold: ``0001-01-01T00:00:00+05:00`` is before every item, not a server error."""
    if moment is None:
        return None
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return (datetime.min if moment.year == datetime.min.year else datetime.max).replace(tzinfo=UTC)
