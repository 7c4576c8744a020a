"""Events: facts about an owner's resources, recorded with the change they describe.

An event is written in the same transaction as its state change (a transactional outbox: the
``events`` table), so a committed change always has its event and a rolled-back one never does.
The feed (``GET /v1/events``) reads that table in id order; webhook deliveries
(``domain.webhooks``) are rows created with the event, one per matching endpoint.

Ids are UUIDv7 (RFC 9562 section 5.7: 48 bits of Unix milliseconds, then random bits), so id
order is time order to the millisecond and the feed's cursor is the last id seen. Within one
millisecond a process's ids still increase (a counter in the random bits, section 6.2 method 1).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from scenedex.domain.model import utcnow


class EventType(StrEnum):
    """What happened. ``reprocess_job.finished`` is an admin's event (no owner)."""

    VIDEO_READY = "video.ready"
    VIDEO_FAILED = "video.failed"
    VIDEO_DELETED = "video.deleted"
    PERSON_SEARCHABLE = "person.searchable"
    PERSON_DELETED = "person.deleted"
    FACE_CLUSTERS_UPDATED = "face_clusters.updated"
    REPROCESS_JOB_FINISHED = "reprocess_job.finished"
    WEBHOOK_TEST = "webhook.test"

    @property
    def admin_only(self) -> bool:
        """Seen only by admins (their feed and admin endpoints)."""
        return self is EventType.REPROCESS_JOB_FINISHED


EVENT_TYPE_DESCRIPTIONS: dict[EventType, str] = {
    EventType.VIDEO_READY: "a video is searchable: ingested, cut and embedded",
    EventType.VIDEO_FAILED: "a video could not be ingested (its error says why)",
    EventType.VIDEO_DELETED: "a video and everything derived from it are gone",
    EventType.PERSON_SEARCHABLE: (
        "every scene of the owner was matched again after a change of this person (added, photos "
        "added or removed): a person search now reflects it"
    ),
    EventType.PERSON_DELETED: "a person and its photos are gone",
    EventType.FACE_CLUSTERS_UPDATED: "the owner's suggested persons changed",
    EventType.REPROCESS_JOB_FINISHED: "a reprocess job ended (admins only), with its counts",
    EventType.WEBHOOK_TEST: "a test event sent to one endpoint (the console's Send test event)",
}


_lock = threading.Lock()
_last: list[int] = [0, 0]  # last millisecond, counter within it


def uuid7(now_ms: int | None = None) -> uuid.UUID:
    """A UUIDv7 (RFC 9562): ``now_ms`` (default: the clock) in the top 48 bits, a 12-bit counter
    that increases within one millisecond in this process, then 62 random bits."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    with _lock:
        if ms <= _last[0]:
            ms, counter = _last[0], _last[1] + 1
            if counter > 0xFFF:  # 4096 ids in one millisecond: borrow the next one
                ms, counter = ms + 1, 0
        else:
            counter = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave room to count up
        _last[0], _last[1] = ms, counter
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand
    return uuid.UUID(int=value)


@dataclass(frozen=True)
class Event:
    """One fact: ``data`` is the resource's public shape at that moment (JSON-ready values)."""

    type: EventType
    owner_id: uuid.UUID | None
    data: Mapping[str, Any]
    id: uuid.UUID = field(default_factory=uuid7)
    occurred_at: datetime = field(default_factory=utcnow)

    def payload(self) -> dict[str, Any]:
        """The webhook body (Standard Webhooks): ``{type, timestamp, data}``."""
        return {"type": self.type.value, "timestamp": _iso(self.occurred_at), "data": dict(self.data)}


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def video_event(kind: EventType, video: Any, **extra: Any) -> Event:
    """A ``video.*`` event of ``video`` (a ``domain.model.Video``): its id, the caller's
    ``external_id``, title, status and error, plus ``extra``."""
    data = {
        "id": str(video.id),
        "external_id": getattr(video, "external_id", None),
        "title": video.title,
        "status": str(getattr(video.status, "value", video.status)),
        "error": getattr(video, "error", None),
        **extra,
    }
    return Event(kind, video.owner_id, data)


def person_event(kind: EventType, person: Any, **extra: Any) -> Event:
    """A ``person.*`` event of ``person`` (a ``domain.model.Person``): its id and name."""
    return Event(kind, person.owner_id, {"id": str(person.id), "name": person.name, **extra})


@dataclass(frozen=True)
class EventPage:
    """One page of the feed: ``events`` in id order, ``next_cursor`` (the last id; resume with
    ``after=next_cursor``; the cursor given when the page is empty)."""

    events: list[Event]
    next_cursor: str | None
