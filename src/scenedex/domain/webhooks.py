"""Webhook endpoints and their deliveries: the rules, without I/O.

An endpoint belongs to an owner (``owner_id``) or, with no owner, to the admins (it receives
every owner's events and the admins' own). Each event creates one delivery row per enabled
endpoint whose ``event_types`` match (none: every type), in the event's transaction; the workers
send it (``services.webhooks``) in the Standard Webhooks format: the delivery id is the
``webhook-id`` on every attempt, so a receiver can drop duplicates (delivery is at least once).

Outcome of an attempt (``classify``): 2xx delivered; 410 Gone disables the endpoint (the
receiver asks us to stop); any other answer, a timeout or a connection error is retried after
``backoff`` (exponential with full jitter over the schedule); a URL refused by the SSRF guard at
delivery fails the delivery at once. After the last step of the schedule the delivery is
``failed``; an endpoint whose deliveries have failed for ``disable_after`` is disabled, saying why.
"""

from __future__ import annotations

import base64
import random
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from scenedex.domain.model import utcnow

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
"""256-bit secrets: HMAC-SHA256's block-size guidance (RFC 2104: at least the output length)."""

DEFAULT_RETRY_SCHEDULE_S: tuple[float, ...] = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 36000, 36000)
"""Waits after attempts 1, 2, ... (seconds): 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h,
10 h, 10 h: 35.7 h in all before the 12th and last attempt, at least 28.6 h with the jitter
(Stripe retries for 3 days, Svix over ~28 h with a similar doubling). ``backoff`` jitters each."""


JITTER = 0.2
"""The share of each wait that is random."""


def new_secret() -> str:
    """A fresh signing secret ``whsec_<base64 of 32 random bytes>`` (shown once)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def backoff(attempts: int, schedule: tuple[float, ...], rng: random.Random | None = None) -> float | None:
    """Seconds to wait after ``attempts`` failed attempts (1-based): the schedule's step
    jittered down to 80 % of it (retries of many deliveries to one receiver spread out, and the
    schedule's total stays over 24 h); None when the schedule is exhausted (the delivery fails)."""
    if attempts < 1 or attempts > len(schedule):
        return None
    step = schedule[attempts - 1]
    return step * (1 - JITTER) + (rng or random).uniform(0, step * JITTER)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Outcome(StrEnum):
    """What an attempt's answer means (``classify``)."""

    DELIVERED = "delivered"
    GONE = "gone"  # 410: the endpoint is disabled
    RETRY = "retry"
    REFUSED = "refused"  # the URL is refused by the SSRF guard: no retry


def classify(status: int | None, refused: bool = False) -> Outcome:
    """The outcome of an attempt that got HTTP ``status`` (None: timeout or connection error)."""
    if refused:
        return Outcome.REFUSED
    if status is not None and 200 <= status < 300:
        return Outcome.DELIVERED
    if status == 410:
        return Outcome.GONE
    return Outcome.RETRY


@dataclass(frozen=True)
class WebhookEndpoint:
    """A receiver of events. ``owner_id`` None: an admin endpoint (every owner's events).
    ``secret`` signs; ``previous_secret`` also signs until ``previous_expires_at`` (rotation)."""

    id: uuid.UUID
    owner_id: uuid.UUID | None
    url: str
    event_types: tuple[str, ...] = ()
    description: str = ""
    enabled: bool = True
    disabled_reason: str | None = None
    secret: str = field(default="", repr=False)
    previous_secret: str | None = field(default=None, repr=False)
    previous_expires_at: datetime | None = None
    failing_since: datetime | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)

    def wants(self, event_type: str, event_owner: uuid.UUID | None) -> bool:
        """Whether an event of ``event_type`` of ``event_owner`` goes to this endpoint: enabled,
        the type in its filter (an empty filter takes every type), and the owner's own events
        (an admin endpoint takes every owner's and the admins')."""
        if not self.enabled or (self.event_types and event_type not in self.event_types):
            return False
        return self.owner_id is None or (event_owner is not None and event_owner == self.owner_id)

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets that sign now: the current one, and the previous one within its overlap."""
        keys = [self.secret]
        if self.previous_secret and self.previous_expires_at and now < self.previous_expires_at:
            keys.append(self.previous_secret)
        return keys


@dataclass(frozen=True)
class WebhookDelivery:
    """One event to one endpoint: ``id`` is the ``webhook-id`` of every attempt."""

    id: uuid.UUID
    event_id: uuid.UUID
    endpoint_id: uuid.UUID
    owner_id: uuid.UUID | None
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None = None
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    created_at: datetime = field(default_factory=utcnow)

    @property
    def webhook_id(self) -> str:
        """The ``webhook-id`` header: ``msg_`` and the delivery id (hex)."""
        return f"msg_{self.id.hex}"


def overlap_until(now: datetime, overlap_s: float) -> datetime:
    """When a rotated-out secret stops signing."""
    return now + timedelta(seconds=overlap_s)
