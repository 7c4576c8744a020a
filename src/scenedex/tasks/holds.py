"""Holding work while a dependency is down, instead of failing it.

Every work actor runs its body through ``run_guarded``:

1. If a breaker of a dependency this process uses is open (``BreakerBoard.open_among``), the
   message is **held** before anything runs: sent again with a delay, its retry count kept
   (``retries``; dramatiq's ``Retries`` reads it from the message options) and a ``holds``
   count added, and its job item (if any) shows ``waiting`` on the dependency. No delivery, no
   retry, no request to the dependency is spent.
2. If the body raises a dependency error (``dependency_of``: ``DependencyUnavailableError``
   from the adapters, SQLAlchemy/psycopg connection errors, redis-py connection errors) the
   error counts on that dependency's breaker; once the breaker is open the message is held as
   above (and the item's delivery refunded). Below the threshold it is an ordinary transient
   error: dramatiq retries it with backoff and the item shows ``waiting`` on ``retry``; on the
   last attempt it is held all the same, so an outage never fails an item.
3. Bad input stays what it was: a ``PermanentError`` fails its item, a per-record
   ``BadInputError`` fails its record.

A held message comes back after ``hold_min_s x 2^holds`` (at least the time until the
breaker's next probe), at most ``hold_max_s``, with 0-20 % jitter so that held messages do not
return in one wave (``settings.BreakerSettings``).
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dramatiq.middleware import CurrentMessage

from scenedex.domain.errors import DATABASE, REDIS, DependencyUnavailableError
from scenedex.domain.jobs import RETRY

if TYPE_CHECKING:
    from scenedex.application import JobRuntime

log = logging.getLogger("scenedex.worker")


@dataclass
class HeldItem:
    """The job item a message works on, once known (``embed_video`` learns its job id inside
    the body); None fields: no item to show as waiting."""

    job_id: uuid.UUID | None = None
    video_id: uuid.UUID | None = None


def dependency_of(error: BaseException) -> str | None:
    """The dependency whose outage ``error`` (or an error it was raised from) reports, else None.

    ``DependencyUnavailableError`` names its own; SQLAlchemy's ``OperationalError``,
    ``InterfaceError`` and invalidated connections, and psycopg's ``OperationalError`` are the
    ``database``'s; redis-py's ``ConnectionError`` and ``TimeoutError`` are ``redis``'s.
    """
    import redis.exceptions
    import sqlalchemy.exc

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DependencyUnavailableError):
            return current.dependency
        if isinstance(current, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            return DATABASE
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
            return DATABASE
        if type(current).__module__.startswith("psycopg") and type(current).__name__ == "OperationalError":
            return DATABASE
        if isinstance(current, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
            return REDIS
        current = current.__cause__ or current.__context__
    return None


def run_guarded(
    rt: JobRuntime, actor: Any, body: Callable[[HeldItem], None], item: HeldItem | None = None
) -> None:
    """Run ``body(item)`` for the current message of ``actor`` unless a dependency is down;
    hold the message (and the item) when one is or goes down. Outside a worker (no current
    message) the body just runs. Errors that are not outages propagate."""
    item = item or HeldItem()
    message = CurrentMessage.get_current_message()
    board = rt.breakers
    if message is None:
        body(item)
        return
    blocked = board.open_among(board.names)
    if blocked is not None:
        status = blocked.status()
        hold(
            rt, actor, message, blocked.name, status.last_error or "circuit breaker open", item, refund=False
        )
        return
    try:
        body(item)
    except Exception as error:
        dependency = dependency_of(error)
        if dependency is None:
            _note_retry(rt, actor, message, item, error)
            raise
        opened = board.record_failure(dependency, error)
        if not opened and not _last_attempt(actor, message):
            _note_retry(rt, actor, message, item, error)
            raise
        # an open breaker, or an outage on the last attempt: an outage never fails an item
        hold(rt, actor, message, dependency, str(error), item, refund=True)
        return
    board.record_success(board.names)


def _last_attempt(actor: Any, message: Any) -> bool:
    return int(message.options.get("retries", 0)) >= int(actor.options.get("max_retries", 0))


def hold(
    rt: JobRuntime,
    actor: Any,
    message: Any,
    dependency: str,
    error: str,
    item: HeldItem,
    *,
    refund: bool,
) -> None:
    """Send ``message`` again with a delay (retry count kept, ``holds`` + 1) and show its item
    ``waiting`` on ``dependency``. The item update is best effort: with the database down it is
    skipped (the message is what matters; the sweeper knows its new id, see
    ``tasks.runtime.WorkerRuntime.after_enqueue``)."""
    settings = rt.settings.breakers
    holds = int(message.options.get("holds", 0))
    breaker = rt.breakers.breakers.get(dependency)
    wait = breaker.retry_in() if breaker is not None else 0.0
    backoff = settings.hold_min_s * 2 ** min(holds, 16)  # capped: a day-long outage is thousands of holds
    delay_s = min(settings.hold_max_s, max(backoff, wait)) * random.uniform(1.0, 1.2)
    actor.send_with_options(
        args=tuple(message.args),
        kwargs=dict(message.kwargs),
        delay=int(delay_s * 1000),
        retries=int(message.options.get("retries", 0)),
        holds=holds + 1,
    )
    log.warning(
        "%s held %.1f s: %s is down (%s)",
        message.actor_name,
        delay_s,
        dependency,
        error.splitlines()[0][:300],
    )
    if item.job_id is not None and item.video_id is not None and dependency != DATABASE:
        try:
            rt.coordinator.hold(item.job_id, item.video_id, dependency, error[:500], refund_delivery=refund)
        except Exception as failure:  # the database went down too: the item shows its old state
            log.warning("item %s/%s not marked waiting: %s", item.job_id, item.video_id, failure)


def _note_retry(rt: JobRuntime, actor: Any, message: Any, item: HeldItem, error: Exception) -> None:
    """A transient error that dramatiq will retry: the item shows ``waiting`` on ``retry``
    (not ``running``) until the retry claims it. Nothing for the last attempt or a
    ``throws`` error (the item is failed instead)."""
    if item.job_id is None or item.video_id is None:
        return
    if isinstance(error, actor.options.get("throws", ())) or _last_attempt(actor, message):
        return
    try:
        rt.coordinator.hold(item.job_id, item.video_id, RETRY, str(error)[:500], refund_delivery=False)
    except Exception as failure:
        log.warning("item %s/%s not marked waiting for its retry: %s", item.job_id, item.video_id, failure)
