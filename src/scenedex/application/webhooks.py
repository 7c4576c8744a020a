"""Wiring of the webhook use cases: the SQL store, the guarded poster (one per process, built on
first use) and each endpoint's circuit breaker on the shared Redis (``webhook:<endpoint id>``,
under the dependencies' key prefix, so ``scenedex doctor`` style tools can read them)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from scenedex.adapters.breakers import BreakerConfig, CircuitBreaker
from scenedex.adapters.db.webhooks import SqlWebhookStore
from scenedex.adapters.webhook_http import WebhookPoster
from scenedex.services.webhooks import Webhooks, WebhookSender
from scenedex.settings import Settings

BREAKER_WINDOW_S = 600.0
"""Failures of an endpoint counted together (its breaker opens at ``breaker_failures`` of them)."""


def build_webhooks(
    engine: sa.Engine, settings: Settings, store: Callable[[], Any], sender: Callable[[], WebhookSender]
) -> Webhooks:
    """``Webhooks`` on ``engine``; ``store()`` gives the key-value store of the breakers (the
    broker's Redis), ``sender()`` the message sender, both on first use."""
    hooks = settings.webhooks
    config = BreakerConfig(
        failure_threshold=hooks.breaker_failures,
        failure_window_s=BREAKER_WINDOW_S,
        open_s=hooks.breaker_open_s,
        max_open_s=hooks.breaker_max_open_s,
        probe_timeout_s=hooks.timeout_s,
    )
    posters: list[WebhookPoster] = []
    lock = threading.Lock()

    def poster() -> WebhookPoster:
        with lock:
            if not posters:
                posters.append(
                    WebhookPoster(timeout_s=hooks.timeout_s, allow_private=hooks.allow_private_addresses)
                )
            return posters[0]

    def breaker(endpoint_id: uuid.UUID) -> CircuitBreaker:
        return CircuitBreaker(f"webhook:{endpoint_id}", store(), config)

    return Webhooks(SqlWebhookStore(engine), poster, hooks, breaker=breaker, sender=sender)
