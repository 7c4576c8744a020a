"""The event feed (``GET /v1/events``, ``scenedex events``): an owner's events in id order after a
cursor (the last id seen), filtered by type, optionally waiting (long poll) for the next ones.
Admins (``owner`` None) read every owner's events and their own (``reprocess_job.finished``).
The outbox's retention (``prune``) runs on the workers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from datetime import timedelta

from scenedex.domain.errors import InvalidRequestError
from scenedex.domain.events import EventPage, EventType
from scenedex.domain.model import utcnow
from scenedex.domain.ports import EventReader

MAX_PAGE = 500
MAX_WAIT_S = 30.0
POLL_S = 0.25
"""How often a long poll reads the table again (seconds)."""


def parse_cursor(cursor: str | None) -> uuid.UUID | None:
    """The id a cursor names (None: from the start); ``InvalidRequestError`` for anything else."""
    if cursor is None or cursor == "":
        return None
    try:
        return uuid.UUID(cursor)
    except ValueError:
        raise InvalidRequestError(f"invalid cursor {cursor!r}: use a next_cursor of this feed") from None


def parse_types(types: Iterable[str], *, admin: bool) -> list[str]:
    """Known event types (comma-separated values allowed); ``InvalidRequestError`` otherwise."""
    chosen = [t.strip() for value in types for t in value.split(",") if t.strip()]
    known = {t.value: t for t in EventType}
    for value in chosen:
        if value not in known or (known[value].admin_only and not admin):
            raise InvalidRequestError(f"unknown event type {value!r}")
    return chosen


class Events:
    """The feed on ``reader`` (the ``events`` table)."""

    def __init__(self, reader: EventReader, *, retention_days: float = 30) -> None:
        self._reader = reader
        self._retention = timedelta(days=retention_days)

    def page(
        self,
        owner: uuid.UUID | None,
        *,
        after: str | None = None,
        types: Iterable[str] = (),
        limit: int = 100,
        wait_s: float = 0.0,
    ) -> EventPage:
        """Up to ``limit`` (1..500) events after cursor ``after``; when there are none yet and
        ``wait_s`` > 0 (at most 30), read again until one comes or the wait is over."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequestError(f"limit must be between 1 and {MAX_PAGE}")
        if not 0 <= wait_s <= MAX_WAIT_S:
            raise InvalidRequestError(f"wait_s must be between 0 and {MAX_WAIT_S:g}")
        cursor = parse_cursor(after)
        chosen = parse_types(types, admin=owner is None)
        deadline = time.monotonic() + wait_s
        while True:
            events = self._reader.page(owner, after=cursor, types=chosen, limit=limit)
            if events or time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)
        next_cursor = str(events[-1].id) if events else after
        return EventPage(events, next_cursor)

    def prune(self) -> int:
        """Delete the events older than the retention (``SCENEDEX_WEBHOOKS__RETENTION_DAYS``)."""
        return self._reader.prune(utcnow() - self._retention)

    def oldest_undelivered_age_s(self) -> float | None:
        """Seconds since the oldest event still waiting for a delivery occurred (None: none)."""
        return self._reader.oldest_undelivered_age_s()
