"""Events and webhooks: the recorder a unit of work carries (the outbox), the feed's reads, and
the store of webhook endpoints and deliveries the webhook use cases and the workers share."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from scenedex.domain.events import Event
from scenedex.domain.webhooks import WebhookDelivery, WebhookEndpoint


class EventRecorder(Protocol):
    """``uow.events``: record facts with the unit of work's change (and their deliveries)."""

    def add(self, *events: Event) -> None: ...


class EventReader(Protocol):
    def page(
        self,
        owner_id: uuid.UUID | None,
        *,
        after: uuid.UUID | None = None,
        types: Iterable[str] = (),
        limit: int = 100,
    ) -> list[Event]:
        """Events after ``after`` in id order: the owner's (None: all, for admins)."""
        ...

    def prune(self, older_than: datetime) -> int: ...

    def oldest_undelivered_age_s(self) -> float | None: ...


class WebhookStore(Protocol):
    """Endpoints (owner-scoped: ``owner`` None is the admins' scope, which sees every endpoint)
    and deliveries. Every method runs its own transaction."""

    def add_endpoint(self, endpoint: WebhookEndpoint) -> None: ...

    def endpoint(self, owner: uuid.UUID | None, endpoint_id: uuid.UUID) -> WebhookEndpoint | None: ...

    def endpoints(self, owner: uuid.UUID | None) -> list[WebhookEndpoint]: ...

    def update_endpoint(
        self, owner: uuid.UUID | None, endpoint_id: uuid.UUID, values: Mapping[str, Any]
    ) -> WebhookEndpoint | None:
        """Set columns of the endpoint (and ``updated_at``); None when the scope has no such one."""
        ...

    def delete_endpoint(self, owner: uuid.UUID | None, endpoint_id: uuid.UUID) -> bool: ...

    def deliveries(
        self,
        owner: uuid.UUID | None,
        endpoint_id: uuid.UUID,
        *,
        status: str | None = None,
        limit: int = 50,
        before: tuple[datetime, uuid.UUID] | None = None,
    ) -> list[WebhookDelivery]:
        """The endpoint's deliveries, newest first (ties: id), below the ``(created_at, id)``
        key ``before`` when given (a keyset page)."""
        ...

    def replay(self, owner: uuid.UUID | None, endpoint_id: uuid.UUID, since: datetime) -> int:
        """New deliveries of the endpoint's events since ``since`` (in its scope and filter);
        the count."""
        ...

    def add_test_event(self, endpoint_id: uuid.UUID, event: Event) -> None:
        """Record ``event`` with one delivery, to this endpoint only."""
        ...

    def claim_due(self, limit: int, lease_s: float) -> list[uuid.UUID]:
        """Pending deliveries due now whose last message's lease is over (none sent yet, or lost),
        leased for ``lease_s``: the ids to send a message for."""
        ...

    def attempt(self, delivery_id: uuid.UUID) -> tuple[WebhookDelivery, WebhookEndpoint, Event] | None:
        """A pending delivery with its endpoint and event (None: delivered, failed or gone)."""
        ...

    def settle(self, delivery_id: uuid.UUID, values: Mapping[str, Any]) -> None:
        """Write an attempt's outcome (status, attempts, last answer, next try; lease cleared)."""
        ...

    def disable(self, endpoint_id: uuid.UUID, reason: str) -> None:
        """Disable the endpoint saying why; its pending deliveries are cancelled."""
        ...

    def mark_failing(self, endpoint_id: uuid.UUID, failing: bool) -> datetime | None:
        """Remember since when the endpoint fails (``failing``) or forget it; the time."""
        ...
