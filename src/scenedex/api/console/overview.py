"""What the console's overview shows, each from the place that already knows it:

- the spec (``Services.spec``) and what changed since the previous one: the job history
  records the spec version each job ran under, and the dry-run plan counts records stale by
  ``fingerprint_changed``, i.e. written under another fingerprint of that step;
- per step, current / stale (by reason) / missing: ``ReprocessRunner.plan``, what
  ``scenedex reprocess --dry-run`` prints; it reads every record state, so it is cached here
  per scope (all owners, or one) until the admin asks for a refresh;
- queue depths and live workers, read from dramatiq's Redis keys (``tasks.broker.NAMESPACE``);
- dependency health: ``scenedex doctor``'s checks (``dependency_health``, one function, so
  that other states such as circuit breakers can join the list).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from scenedex.domain.progress import StaleReason
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.domain.spec import ReprocessSpec
from scenedex.settings import Settings
from scenedex.tasks.broker import NAMESPACE

HEALTH_TIMEOUT_S = 1.0
"""Seconds each network dependency gets to answer a health check (the overview waits for it)."""
JOB_HISTORY_SCANNED = 200
"""Most recent jobs searched for one that ran under another spec version."""


@dataclass(frozen=True)
class CachedPlan:
    """A dry-run plan (``ReprocessPlan.to_dict()``) and when it was computed."""

    plan: dict[str, Any]
    computed_at: datetime
    seconds: float


@dataclass
class PlanCache:
    """Dry-run plans by scope (``None``: all owners), computed on first view and on refresh.
    Shared by the request threads of one API process."""

    plans: dict[uuid.UUID | None, CachedPlan] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(
        self, owner_id: uuid.UUID | None, compute: Callable[[], dict[str, Any]], *, refresh: bool = False
    ) -> CachedPlan:
        """The cached plan of the scope, computed now if there is none (or ``refresh``)."""
        with self.lock:
            cached = self.plans.get(owner_id)
        if cached is not None and not refresh:
            return cached
        started = time.monotonic()
        plan = compute()
        cached = CachedPlan(plan, datetime.now(UTC), time.monotonic() - started)
        with self.lock:
            self.plans[owner_id] = cached
        return cached


def plan_request(owner_id: uuid.UUID | None) -> ReprocessRequest:
    """The dry-run request of the overview's scope: one owner, or all."""
    if owner_id is None:
        return ReprocessRequest(ReprocessScope.ALL)
    return ReprocessRequest(ReprocessScope.OWNER, owner_id=owner_id)


@dataclass(frozen=True)
class SpecChange:
    """What is known about the previous spec: the latest job that ran under another version
    (None: none in the history) and the steps with records under another fingerprint."""

    previous_version: str | None
    previous_job_at: datetime | None
    changed_steps: tuple[str, ...]


def spec_change(spec: ReprocessSpec, jobs: Sequence[Any], plan: dict[str, Any]) -> SpecChange:
    """``jobs`` (most recent first) and ``plan`` (a dry run under ``spec``) read for what changed."""
    previous = next((job for job in jobs if job.spec_version != spec.version), None)
    changed = tuple(
        step["step"]
        for step in plan["steps"]
        if step["stale_by_reason"].get(StaleReason.FINGERPRINT.value, 0) > 0
    )
    return SpecChange(
        previous.spec_version if previous else None, previous.created_at if previous else None, changed
    )


@dataclass(frozen=True)
class QueueDepth:
    """One dramatiq queue: messages ready, delayed (its ``.DQ`` queue), held in all (ready,
    delayed and in flight: the ``.msgs`` hashes) and dead-lettered (``.XQ``)."""

    queue: str
    ready: int
    delayed: int
    held: int
    dead: int


def queue_depths(client: Any, queues: Sequence[str]) -> list[QueueDepth]:
    """The depth of each of ``queues`` from dramatiq's Redis keys (one round trip)."""
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        base = f"{NAMESPACE}:{queue}"
        pipe.llen(base)
        pipe.llen(f"{base}.DQ")
        pipe.hlen(f"{base}.msgs")
        pipe.hlen(f"{base}.DQ.msgs")
        pipe.zcard(f"{base}.XQ")
    values = pipe.execute()
    return [
        QueueDepth(queue, ready, delayed, held + delayed_held, dead)
        for queue, (ready, delayed, held, delayed_held, dead) in zip(
            queues, (values[i : i + 5] for i in range(0, len(values), 5)), strict=True
        )
    ]


@dataclass(frozen=True)
class LiveWorker:
    """A dramatiq broker (one per worker process) whose last heartbeat is recent enough."""

    broker_id: str
    seconds_ago: float


def live_workers(client: Any, heartbeat_timeout_ms: int, *, exclude: str | None = None) -> list[LiveWorker]:
    """Brokers with a heartbeat in the last ``heartbeat_timeout_ms`` (dramatiq's sorted set
    ``__heartbeats__``, scored in ms; every fetch of a worker is a heartbeat, about one a
    second per queue). A process that only sends messages (this API, the CLI) heartbeats when
    it sends: ``exclude`` leaves out this process's own broker."""
    now_ms = time.time() * 1000
    entries = client.zrangebyscore(
        f"{NAMESPACE}:__heartbeats__", now_ms - heartbeat_timeout_ms, "+inf", withscores=True
    )
    workers = []
    for member, score in entries:
        broker_id = member.decode() if isinstance(member, bytes) else str(member)
        if broker_id != exclude:
            workers.append(LiveWorker(broker_id, max(now_ms - score, 0) / 1000))
    return sorted(workers, key=lambda worker: worker.seconds_ago)


@dataclass(frozen=True)
class HealthLine:
    """One dependency's state: ``status`` ok, warn or fail, what was found, how to fix it."""

    name: str
    status: str
    detail: str
    fix: str | None = None


def dependency_health(settings: Settings) -> list[HealthLine]:
    """What ``scenedex doctor`` checks (database, migrations, Redis, the workers' circuit
    breakers, search index, models, storage, embedding service), never loading a model."""
    from scenedex.application.health import run_checks

    return [
        HealthLine(check.name, check.status.value, check.detail, check.fix)
        for check in run_checks(settings, timeout=HEALTH_TIMEOUT_S)
    ]
