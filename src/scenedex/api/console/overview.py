"""What the console's overview shows, each from the place that already knows it:

- the spec (``Services.spec``) and what changed since the previous one: the job history
  records the spec version each job ran under, and the dry-run plan counts records stale by
  ``fingerprint_changed``, i.e. written under another fingerprint of that step;
- per step, current / stale (by reason) / missing: ``ReprocessRunner.plan``, what
  ``scenedex reprocess --dry-run`` prints; it reads every record state, so it is cached here
  per scope (all owners, or one) until the admin asks for a refresh;
- queue depths and live workers: ``app.jobs.queue_depths``/``live_workers`` (the ``WorkerFleet``
  port, read from dramatiq's Redis keys by ``tasks.fleet``);
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
