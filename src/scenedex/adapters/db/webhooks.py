"""The SQL ``WebhookStore``: webhook endpoints and their deliveries (``domain.webhooks``).

Scopes: an owner sees and changes only its own endpoints (``owner_id = :owner``); the admins'
scope (``owner`` None) sees every endpoint. Claims (``claim_due``) are one transaction that
selects due deliveries ``FOR UPDATE SKIP LOCKED`` (Postgres) and leases them, so several
dispatchers never send the same delivery twice within a lease; a lease that runs out (a message
lost with Redis, a worker killed mid-attempt) makes the delivery due again.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from scenedex.adapters.db import tables as t
from scenedex.adapters.db.outbox import endpoint_from_row, event_from_row
from scenedex.adapters.db.pages import after
from scenedex.domain.events import Event, uuid7
from scenedex.domain.model import utcnow
from scenedex.domain.webhooks import DeliveryStatus, WebhookDelivery, WebhookEndpoint

_E = t.webhook_endpoints
_D = t.webhook_deliveries


def _scoped(query: Any, owner: uuid.UUID | None, endpoint_id: uuid.UUID) -> Any:
    query = query.where(_E.c.id == endpoint_id)
    return query if owner is None else query.where(_E.c.owner_id == owner)


def _delivery(row: Any) -> WebhookDelivery:
    data = {c.name: row._mapping[c.name] for c in _D.c if c.name != "leased_until"}
    data["status"] = DeliveryStatus(data["status"])
    return WebhookDelivery(**data)


class _Row:
    """A row-like view of a dict (``._mapping`` and attributes), for the row converters."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._mapping = values
        self.__dict__.update(values)


class SqlWebhookStore:
    """``WebhookStore`` on ``engine`` (one short transaction per call)."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def add_endpoint(self, endpoint: WebhookEndpoint) -> None:
        """Insert ``endpoint``."""
        row = dict(vars(endpoint))
        row["event_types"] = list(endpoint.event_types)
        with self._engine.begin() as connection:
            connection.execute(sa.insert(_E), [row])

    def endpoint(self, owner: uuid.UUID | None, endpoint_id: uuid.UUID) -> WebhookEndpoint | None:
        """The endpoint in ``owner``'s scope (None: unknown or another owner's)."""
        with self._engine.connect() as connection:
            row = connection.execute(_scoped(sa.select(_E), owner, endpoint_id)).first()
        return endpoint_from_row(row) if row else None

    def endpoints(self, owner: uuid.UUID | None) -> list[WebhookEndpoint]:
        """The scope's endpoints, oldest first (admins: failing and disabled ones first)."""
        query = sa.select(_E)
        if owner is not None:
            query = query.where(_E.c.owner_id == owner).order_by(_E.c.created_at, _E.c.id)
        else:
            query = query.order_by(
                _E.c.enabled, _E.c.failing_since.is_(None), _E.c.failing_since, _E.c.created_at
            )
        with self._engine.connect() as connection:
            return [endpoint_from_row(row) for row in connection.execute(query)]

    def update_endpoint(
        self, owner: uuid.UUID | None, endpoint_id: uuid.UUID, values: Mapping[str, Any]
    ) -> WebhookEndpoint | None:
        """Set ``values`` and ``updated_at``; the endpoint now (None when not in the scope).
        Disabling cancels its pending deliveries."""
        values = dict(values)
        if "event_types" in values:
            values["event_types"] = list(values["event_types"])
        with self._engine.begin() as connection:
            query = _scoped(sa.update(_E), owner, endpoint_id).values(updated_at=utcnow(), **values)
            if not connection.execute(query).rowcount:
                return None
            if values.get("enabled") is False:
                self._cancel_pending(connection, endpoint_id, "the endpoint was disabled")
            row = connection.execute(sa.select(_E).where(_E.c.id == endpoint_id)).one()
        return endpoint_from_row(row)

    def delete_endpoint(self, owner: uuid.UUID | None, endpoint_id: uuid.UUID) -> bool:
        """Remove the endpoint and its deliveries; False when not in the scope."""
        with self._engine.begin() as connection:
            return bool(connection.execute(_scoped(sa.delete(_E), owner, endpoint_id)).rowcount)

    def deliveries(
        self,
        owner: uuid.UUID | None,
        endpoint_id: uuid.UUID,
        *,
        status: str | None = None,
        limit: int = 50,
        before: tuple[datetime, uuid.UUID] | None = None,
    ) -> list[WebhookDelivery]:
        """The endpoint's deliveries (with ``status``), newest first, below ``before``."""
        query = sa.select(_D).join(_E, _E.c.id == _D.c.endpoint_id).where(_D.c.endpoint_id == endpoint_id)
        if owner is not None:
            query = query.where(_E.c.owner_id == owner)
        if status is not None:
            query = query.where(_D.c.status == status)
        query = after(query, [(_D.c.created_at, True), (_D.c.id, True)], before, limit)
        with self._engine.connect() as connection:
            return [_delivery(row) for row in connection.execute(query)]

    def replay(self, owner: uuid.UUID | None, endpoint_id: uuid.UUID, since: datetime) -> int:
        """Send the endpoint again every event since ``since`` it wants: a delivery already made
        (delivered, failed, cancelled) is pending again under its id (the same ``webhook-id``, so
        a receiver that has it can drop it), one never made is created; the count."""
        endpoint = self.endpoint(owner, endpoint_id)
        if endpoint is None:
            return 0
        events = t.events.c
        query = sa.select(t.events).where(events.occurred_at >= since).order_by(events.id)
        if endpoint.owner_id is not None:
            query = query.where(events.owner_id == endpoint.owner_id)
        now = utcnow()
        with self._engine.begin() as connection:
            made = {
                row.event_id: row.status
                for row in connection.execute(
                    sa.select(_D.c.event_id, _D.c.status).where(_D.c.endpoint_id == endpoint_id)
                )
            }
            wanted = [row for row in connection.execute(query) if endpoint.wants(row.type, row.owner_id)]
            again = [r.id for r in wanted if made.get(r.id) not in (None, DeliveryStatus.PENDING.value)]
            for chunk in (again[i : i + 500] for i in range(0, len(again), 500)):
                connection.execute(
                    sa.update(_D)
                    .where(_D.c.endpoint_id == endpoint_id, _D.c.event_id.in_(chunk))
                    .values(
                        status=DeliveryStatus.PENDING.value,
                        next_attempt_at=now,
                        leased_until=None,
                        attempts=0,
                    )
                )
            new = [
                {
                    "id": uuid7(),
                    "event_id": row.id,
                    "endpoint_id": endpoint_id,
                    "owner_id": row.owner_id,
                    "event_type": row.type,
                    "status": DeliveryStatus.PENDING.value,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for row in wanted
                if row.id not in made
            ]
            if new:
                connection.execute(sa.insert(_D), new)
        return len(again) + len(new)

    def add_test_event(self, endpoint_id: uuid.UUID, event: Event) -> None:
        """Record ``event`` with one delivery, to this endpoint only (whatever its type filter)."""
        now = utcnow()
        with self._engine.begin() as connection:
            connection.execute(
                sa.insert(t.events),
                [{"id": event.id, "type": event.type.value, "owner_id": event.owner_id,
                  "occurred_at": event.occurred_at, "data": dict(event.data)}],
            )  # fmt: skip
            connection.execute(
                sa.insert(_D),
                [{"id": uuid7(), "event_id": event.id, "endpoint_id": endpoint_id, "owner_id": event.owner_id,
                  "event_type": event.type.value, "status": DeliveryStatus.PENDING.value, "attempts": 0,
                  "next_attempt_at": now, "created_at": now}],
            )  # fmt: skip

    def claim_due(self, limit: int, lease_s: float) -> list[uuid.UUID]:
        """Lease up to ``limit`` due pending deliveries (oldest due first) for ``lease_s``."""
        now = utcnow()
        due = (
            sa.select(_D.c.id)
            .where(
                _D.c.status == DeliveryStatus.PENDING.value,
                _D.c.next_attempt_at <= now,
                sa.or_(_D.c.leased_until.is_(None), _D.c.leased_until < now),
            )
            .order_by(_D.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._engine.begin() as connection:
            ids = list(connection.scalars(due))
            if ids:
                connection.execute(
                    sa.update(_D)
                    .where(_D.c.id.in_(ids))
                    .values(leased_until=now + timedelta(seconds=lease_s))
                )
        return ids

    def attempt(self, delivery_id: uuid.UUID) -> tuple[WebhookDelivery, WebhookEndpoint, Event] | None:
        """The pending delivery, its endpoint and its event (None when not pending); one query."""
        event_cols = [c.label(f"ev__{c.name}") for c in t.events.c]
        endpoint_cols = [c.label(f"ep__{c.name}") for c in _E.c]
        query = (
            sa.select(_D, *endpoint_cols, *event_cols)
            .join(_E, _E.c.id == _D.c.endpoint_id)
            .join(t.events, t.events.c.id == _D.c.event_id)
            .where(_D.c.id == delivery_id, _D.c.status == DeliveryStatus.PENDING.value)
        )
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None:
            return None
        values = row._mapping
        endpoint = _Row({c.name: values[f"ep__{c.name}"] for c in _E.c})
        event = _Row({c.name: values[f"ev__{c.name}"] for c in t.events.c})
        return _delivery(row), endpoint_from_row(endpoint), event_from_row(event)

    def settle(self, delivery_id: uuid.UUID, values: Mapping[str, Any]) -> None:
        """Write an attempt's outcome and clear the lease (only while still pending)."""
        with self._engine.begin() as connection:
            connection.execute(
                sa.update(_D)
                .where(_D.c.id == delivery_id, _D.c.status == DeliveryStatus.PENDING.value)
                .values(leased_until=None, **values)
            )

    def disable(self, endpoint_id: uuid.UUID, reason: str) -> None:
        """Disable the endpoint with ``reason``; its pending deliveries are cancelled."""
        with self._engine.begin() as connection:
            connection.execute(
                sa.update(_E)
                .where(_E.c.id == endpoint_id)
                .values(enabled=False, disabled_reason=reason, updated_at=utcnow())
            )
            self._cancel_pending(connection, endpoint_id, reason)

    def mark_failing(self, endpoint_id: uuid.UUID, failing: bool) -> datetime | None:
        """Set ``failing_since`` (kept when already set) or clear it; its value now."""
        with self._engine.begin() as connection:
            if failing:
                connection.execute(
                    sa.update(_E)
                    .where(_E.c.id == endpoint_id, _E.c.failing_since.is_(None))
                    .values(failing_since=utcnow())
                )
            else:
                connection.execute(
                    sa.update(_E)
                    .where(_E.c.id == endpoint_id, _E.c.failing_since.is_not(None))
                    .values(failing_since=None)
                )
            since: datetime | None = connection.scalar(
                sa.select(_E.c.failing_since).where(_E.c.id == endpoint_id)
            )
        return since

    @staticmethod
    def _cancel_pending(connection: sa.Connection, endpoint_id: uuid.UUID, reason: str) -> None:
        connection.execute(
            sa.update(_D)
            .where(_D.c.endpoint_id == endpoint_id, _D.c.status == DeliveryStatus.PENDING.value)
            .values(
                status=DeliveryStatus.CANCELLED.value,
                last_error=reason,
                next_attempt_at=None,
                leased_until=None,
            )
        )
