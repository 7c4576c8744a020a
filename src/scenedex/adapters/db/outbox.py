"""The outbox: events written in the transaction of their change, with their webhook deliveries.

``record(connection, events)`` inserts the events and, for each, one ``webhook_deliveries`` row
per enabled endpoint that wants it (``WebhookEndpoint.wants``: the event's owner's endpoints and
the admins', filtered by type), ``pending`` and due now. It runs on the caller's connection, so
the event and its deliveries commit or roll back with the change: the unit of work's
``events.add`` (a session) and the job store's transitions (a Core connection) both use it.
``EventFeed`` reads the table for ``GET /v1/events``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from scenedex.adapters.db import tables as t
from scenedex.domain.events import Event, EventType, uuid7
from scenedex.domain.model import utcnow
from scenedex.domain.webhooks import DeliveryStatus, WebhookEndpoint


def endpoint_from_row(row: Any) -> WebhookEndpoint:
    """A ``WebhookEndpoint`` from a ``webhook_endpoints`` row."""
    data = dict(row._mapping)
    data["event_types"] = tuple(data["event_types"] or ())
    return WebhookEndpoint(**data)


def record(connection: sa.Connection, events: Sequence[Event]) -> int:
    """Insert ``events`` and their deliveries on ``connection`` (the change's transaction);
    returns the number of deliveries created."""
    if not events:
        return 0
    connection.execute(
        sa.insert(t.events),
        [
            {
                "id": e.id,
                "type": e.type.value,
                "owner_id": e.owner_id,
                "occurred_at": e.occurred_at,
                "data": dict(e.data),
            }
            for e in events
        ],
    )
    owners = {e.owner_id for e in events if e.owner_id is not None}
    cols = t.webhook_endpoints.c
    endpoints = [
        endpoint_from_row(row)
        for row in connection.execute(
            sa.select(t.webhook_endpoints).where(
                cols.enabled.is_(True), sa.or_(cols.owner_id.is_(None), cols.owner_id.in_(owners))
            )
        )
    ]
    now = utcnow()
    rows = [
        {
            "id": uuid7(),
            "event_id": event.id,
            "endpoint_id": endpoint.id,
            "owner_id": event.owner_id,
            "event_type": event.type.value,
            "status": DeliveryStatus.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for event in events
        for endpoint in endpoints
        if endpoint.wants(event.type.value, event.owner_id)
    ]
    if rows:
        connection.execute(sa.insert(t.webhook_deliveries), rows)
    return len(rows)


def event_from_row(row: Any) -> Event:
    """An ``Event`` from an ``events`` row."""
    return Event(
        type=EventType(row.type), owner_id=row.owner_id, data=row.data, id=row.id, occurred_at=row.occurred_at
    )


class SqlEventRecorder:
    """The unit of work's ``events``: ``add`` records on the session's transaction."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, *events: Event) -> None:
        """Record ``events`` (and their deliveries) with the unit of work's change."""
        record(self._session.connection(), events)


class EventFeed:
    """Reads of the ``events`` table (the feed), each in its own short transaction."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def page(
        self,
        owner_id: uuid.UUID | None,
        *,
        after: uuid.UUID | None = None,
        types: Iterable[str] = (),
        limit: int = 100,
    ) -> list[Event]:
        """Up to ``limit`` events after id ``after`` in id order: the owner's (``owner_id``
        None: every owner's and the admins'), of ``types`` when given."""
        cols = t.events.c
        query = sa.select(t.events).order_by(cols.id).limit(limit)
        if owner_id is not None:
            query = query.where(cols.owner_id == owner_id)
        if after is not None:
            query = query.where(cols.id > after)
        if types := list(types):
            query = query.where(cols.type.in_(types))
        with self._engine.connect() as connection:
            return [event_from_row(row) for row in connection.execute(query)]

    def prune(self, older_than: datetime) -> int:
        """Delete events (with their deliveries) that occurred before ``older_than``; the count."""
        with self._engine.begin() as connection:
            result = connection.execute(sa.delete(t.events).where(t.events.c.occurred_at < older_than))
        return int(result.rowcount)

    def oldest_undelivered_age_s(self) -> float | None:
        """Seconds since the oldest event with a pending delivery occurred (None: none pending)."""
        deliveries = t.webhook_deliveries.c
        query = (
            sa.select(sa.func.min(t.events.c.occurred_at))
            .select_from(t.webhook_deliveries.join(t.events, t.events.c.id == deliveries.event_id))
            .where(deliveries.status == DeliveryStatus.PENDING.value)
        )
        with self._engine.connect() as connection:
            oldest = connection.scalar(query)
        if oldest is None:
            return None
        if oldest.tzinfo is None:  # SQLite hands back naive UTC
            oldest = oldest.replace(tzinfo=utcnow().tzinfo)
        return float(max(0.0, (utcnow() - oldest) / timedelta(seconds=1)))
