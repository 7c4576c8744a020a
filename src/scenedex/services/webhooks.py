"""Webhook use cases: an owner's endpoints (create, list, get, update, delete, rotate the secret,
deliveries, replay) and the workers' side (``dispatch`` the due deliveries as messages,
``deliver`` one).

Scopes: ``owner`` is the caller's owner id; ``None`` is the admins' scope (endpoints receiving
every owner's events, and every endpoint readable). An unknown endpoint and another owner's are
the same ``NotFoundError``.

A delivery attempt (``deliver``): the endpoint's circuit breaker (shared through Redis, as the
dependencies' ones) decides first: while it is open, one attempt per interval is the probe and
the others wait for it without a request; then the body ``{type, timestamp, data}`` is signed
(``adapters.webhook_http``) and POSTed through the SSRF guard; the answer is classified
(``domain.webhooks.classify``) and written on the delivery row. Safe twice: a delivery no longer
pending is skipped, and the id (``webhook-id``) never changes.
"""

from __future__ import annotations

import builtins
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from scenedex.adapters.breakers import CircuitBreaker
from scenedex.adapters.url_fetch import UrlFetchError
from scenedex.adapters.webhook_http import WebhookPoster, sign
from scenedex.domain.errors import InvalidRequestError, NotFoundError
from scenedex.domain.events import Event, EventType
from scenedex.domain.model import utcnow
from scenedex.domain.ports import WebhookStore
from scenedex.domain.webhooks import (
    DeliveryStatus,
    Outcome,
    WebhookDelivery,
    WebhookEndpoint,
    backoff,
    classify,
    new_secret,
    overlap_until,
)
from scenedex.settings import WebhookSettings

log = logging.getLogger("scenedex.webhooks")

MAX_DESCRIPTION = 500
MAX_URL = 2000


class WebhookSender(Protocol):
    def send_webhook(self, delivery_id: uuid.UUID) -> str: ...


@dataclass(frozen=True)
class CreatedWebhook:
    """A new endpoint and its secret (shown once)."""

    endpoint: WebhookEndpoint
    secret: str


def check_event_types(values: Iterable[str], *, admin: bool) -> tuple[str, ...]:
    """The event type filter, each a known type (an owner's endpoint cannot ask for the admins'
    ``reprocess_job.finished``); ``InvalidRequestError`` otherwise. Empty: every type."""
    known = {t.value: t for t in EventType}
    chosen = tuple(dict.fromkeys(values))
    for value in chosen:
        if value not in known:
            raise InvalidRequestError(f"unknown event type {value!r}; known: {', '.join(known)}")
        if known[value].admin_only and not admin:
            raise InvalidRequestError(f"{value} is sent to admin endpoints only")
    return chosen


class Webhooks:
    """The endpoints of a scope and their deliveries, on ``store``; ``poster`` checks URLs and
    sends; ``breaker(endpoint_id)`` is the endpoint's circuit breaker; ``sender`` the message
    sender (built on first use)."""

    def __init__(
        self,
        store: WebhookStore,
        poster: Callable[[], WebhookPoster],
        settings: WebhookSettings,
        *,
        breaker: Callable[[uuid.UUID], CircuitBreaker],
        sender: Callable[[], WebhookSender],
    ) -> None:
        self._store = store
        self._poster = poster
        self._settings = settings
        self._breaker = breaker
        self._sender = sender
        self.observe: Callable[[str], None] | None = None
        """Told the outcome of every ``deliver`` (the worker's metrics), when set."""

    def _check_url(self, url: str) -> str:
        url = url.strip()
        if len(url) > MAX_URL:
            raise InvalidRequestError(f"the URL is longer than {MAX_URL} characters")
        try:
            self._poster().check(url)
        except UrlFetchError as error:
            raise InvalidRequestError(f"webhook URL refused: {error}") from None
        return url

    def create(
        self,
        owner: uuid.UUID | None,
        url: str,
        *,
        types: Iterable[str] = (),
        description: str = "",
        enabled: bool = True,
    ) -> CreatedWebhook:
        """A new endpoint of ``owner`` (None: an admin endpoint); ``InvalidRequestError`` for a
        URL the guard refuses (not https, private address, unresolvable) or an unknown type."""
        if len(description) > MAX_DESCRIPTION:
            raise InvalidRequestError(f"the description is longer than {MAX_DESCRIPTION} characters")
        endpoint = WebhookEndpoint(
            id=uuid.uuid4(),
            owner_id=owner,
            url=self._check_url(url),
            event_types=check_event_types(types, admin=owner is None),
            description=description,
            enabled=enabled,
            secret=new_secret(),
        )
        self._store.add_endpoint(endpoint)
        return CreatedWebhook(endpoint, endpoint.secret)

    def list(self, owner: uuid.UUID | None) -> list[WebhookEndpoint]:
        """The scope's endpoints (admins: all, failing and disabled first)."""
        return self._store.endpoints(owner)

    def get(self, owner: uuid.UUID | None, endpoint_id: uuid.UUID) -> WebhookEndpoint:
        """The endpoint; ``NotFoundError`` when the scope has none of that id."""
        endpoint = self._store.endpoint(owner, endpoint_id)
        if endpoint is None:
            raise NotFoundError(f"webhook {endpoint_id} not found")
        return endpoint

    def update(
        self, owner: uuid.UUID | None, endpoint_id: uuid.UUID, changes: Mapping[str, Any]
    ) -> WebhookEndpoint:
        """Change ``url``, ``event_types``, ``description`` or ``enabled`` (re-enabling clears
        why it was disabled and its failing time); checked as at creation."""
        current = self.get(owner, endpoint_id)
        values: dict[str, Any] = {}
        if "url" in changes:
            values["url"] = self._check_url(changes["url"])
        if "event_types" in changes:
            values["event_types"] = check_event_types(changes["event_types"], admin=current.owner_id is None)
        if "description" in changes:
            if len(changes["description"]) > MAX_DESCRIPTION:
                raise InvalidRequestError(f"the description is longer than {MAX_DESCRIPTION} characters")
            values["description"] = changes["description"]
        if "enabled" in changes:
            values["enabled"] = bool(changes["enabled"])
            if values["enabled"]:
                values.update(disabled_reason=None, failing_since=None)
            else:
                values["disabled_reason"] = "disabled by its owner"
        if values.get("enabled"):
            self._breaker(endpoint_id).reset()
        updated = self._store.update_endpoint(owner, endpoint_id, values)
        if updated is None:
            raise NotFoundError(f"webhook {endpoint_id} not found")
        return updated

    def delete(self, owner: uuid.UUID | None, endpoint_id: uuid.UUID) -> None:
        """Remove the endpoint and its deliveries; ``NotFoundError`` when absent."""
        if not self._store.delete_endpoint(owner, endpoint_id):
            raise NotFoundError(f"webhook {endpoint_id} not found")

    def rotate(
        self, owner: uuid.UUID | None, endpoint_id: uuid.UUID, overlap_s: float | None = None
    ) -> CreatedWebhook:
        """A new secret (shown once); the old one keeps signing beside it for ``overlap_s``
        (default ``SCENEDEX_WEBHOOKS__SECRET_OVERLAP_S``) so receivers can switch without a gap."""
        current = self.get(owner, endpoint_id)
        overlap = self._settings.secret_overlap_s if overlap_s is None else overlap_s
        secret = new_secret()
        values = {
            "secret": secret,
            "previous_secret": current.secret if overlap > 0 else None,
            "previous_expires_at": overlap_until(utcnow(), overlap) if overlap > 0 else None,
        }
        updated = self._store.update_endpoint(owner, endpoint_id, values)
        if updated is None:
            raise NotFoundError(f"webhook {endpoint_id} not found")
        return CreatedWebhook(updated, secret)

    def deliveries(
        self,
        owner: uuid.UUID | None,
        endpoint_id: uuid.UUID,
        *,
        status: str | None = None,
        limit: int = 50,
        before: tuple[datetime, uuid.UUID] | None = None,
    ) -> builtins.list[WebhookDelivery]:
        """The endpoint's deliveries, newest first, with their last answer and error; below the
        ``(created_at, id)`` key ``before`` when given (the API's cursor)."""
        self.get(owner, endpoint_id)
        if status is not None and status not in {s.value for s in DeliveryStatus}:
            raise InvalidRequestError(f"unknown delivery status {status!r}")
        return self._store.deliveries(owner, endpoint_id, status=status, limit=limit, before=before)

    def replay(self, owner: uuid.UUID | None, endpoint_id: uuid.UUID, since: datetime) -> int:
        """Deliver again every event since ``since`` the endpoint wants; the count."""
        endpoint = self.get(owner, endpoint_id)
        if not endpoint.enabled:
            raise InvalidRequestError(f"webhook {endpoint_id} is disabled; enable it before a replay")
        return self._store.replay(owner, endpoint_id, since)

    def send_test(self, owner: uuid.UUID | None, endpoint_id: uuid.UUID) -> uuid.UUID:
        """Record a ``webhook.test`` event (the endpoint's owner's) with a delivery to this
        endpoint only; the event id. ``InvalidRequestError`` for a disabled endpoint."""
        endpoint = self.get(owner, endpoint_id)
        if not endpoint.enabled:
            raise InvalidRequestError(f"webhook {endpoint_id} is disabled; enable it to test it")
        data = {"endpoint_id": str(endpoint_id), "message": "a test event from scenedex"}
        event = Event(EventType.WEBHOOK_TEST, endpoint.owner_id, data)
        self._store.add_test_event(endpoint_id, event)
        return event.id

    # The workers' side.

    def dispatch(self) -> int:
        """Send a message for each due delivery (new, retry due, or whose message was lost:
        its lease ran out); the count."""
        sender = self._sender()
        ids = self._store.claim_due(self._settings.dispatch_batch, self._settings.lease_s)
        for delivery_id in ids:
            sender.send_webhook(delivery_id)
        return len(ids)

    def deliver(self, delivery_id: uuid.UUID) -> str:
        """One attempt of a delivery; what happened (``delivered``, ``retry``, ``gone``,
        ``refused``, ``held`` behind the open breaker, ``skipped``: not pending)."""
        outcome = self._deliver(delivery_id)
        if self.observe is not None:
            self.observe(outcome)
        return outcome

    def _deliver(self, delivery_id: uuid.UUID) -> str:
        found = self._store.attempt(delivery_id)
        if found is None:
            return "skipped"
        delivery, endpoint, event = found
        now = utcnow()
        breaker = self._breaker(endpoint.id)
        probing = False
        if breaker.is_open():
            probing = breaker.claim_probe()
            if not probing:
                wait = max(1.0, breaker.retry_in())
                self._store.settle(delivery_id, {"next_attempt_at": now + timedelta(seconds=wait)})
                return "held"
        body = json.dumps(event.payload(), separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "webhook-id": delivery.webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": sign(endpoint.signing_secrets(now), delivery.webhook_id, now, body),
        }
        result = self._poster().post(endpoint.url, body, headers)
        outcome = classify(result.status, result.refused)
        self._record(replace(delivery, attempts=delivery.attempts + 1), endpoint, outcome, result, now)
        if outcome is Outcome.RETRY:
            error = result.error or "failed"
            breaker.probe_result(RuntimeError(error)) if probing else breaker.record_failure(error)
        elif outcome is not Outcome.REFUSED:
            breaker.probe_result(None) if probing else breaker.record_success()
        return outcome.value

    def _record(
        self,
        delivery: WebhookDelivery,
        endpoint: WebhookEndpoint,
        outcome: Outcome,
        result: Any,
        now: datetime,
    ) -> None:
        values: dict[str, Any] = {
            "attempts": delivery.attempts,
            "last_status": result.status,
            "last_error": result.error,
            "last_attempt_at": now,
            "next_attempt_at": None,
        }
        if outcome is Outcome.DELIVERED:
            self._store.settle(
                delivery.id, {**values, "status": DeliveryStatus.DELIVERED.value, "delivered_at": now}
            )
            self._store.mark_failing(endpoint.id, False)
            return
        if outcome is not Outcome.RETRY:
            self._store.settle(delivery.id, {**values, "status": DeliveryStatus.FAILED.value})
            if outcome is Outcome.GONE:
                self._disable(endpoint, f"the receiver answered 410 Gone at {now.isoformat()}")
            return
        wait = backoff(delivery.attempts, tuple(self._settings.retry_schedule_s))
        if wait is None:
            values["status"] = DeliveryStatus.FAILED.value
        else:
            values["next_attempt_at"] = now + timedelta(seconds=wait)
        self._store.settle(delivery.id, values)
        since = self._store.mark_failing(endpoint.id, True)
        if since is not None and (now - since).total_seconds() > self._settings.disable_after_s:
            self._disable(endpoint, f"failing since {since.isoformat()} (last: {result.error})")

    def _disable(self, endpoint: WebhookEndpoint, reason: str) -> None:
        log.warning("webhook %s (%s) disabled: %s", endpoint.id, endpoint.url, reason)
        self._store.disable(endpoint.id, reason)
