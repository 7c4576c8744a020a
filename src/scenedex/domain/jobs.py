"""Reprocess jobs: the durable job and item types for at-least-once workers.

A job is one ``ReprocessRequest`` run by workers. The database holds the truth (the broker only
carries ids): a job row (scope, request, spec version, trigger, status, plan cursor) and one
item per unit of work: a ``persons`` item per owner (person photo and query embeddings, run by
the planner) and a ``video`` item per video (the scene steps, one message each). The rules every
delivery follows are ``scenedex.domain.coordinator.JobCoordinator``'s; the store, sender and
probe ports are in ``scenedex.domain.ports``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from scenedex.domain.errors import InvalidRequestError
from scenedex.domain.model import utcnow
from scenedex.domain.progress import ItemError, ReprocessProgress
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.domain.spec import EmbeddingStepType

DEFAULT_MAX_DELIVERIES = 5
"""Claims of one item before it is failed as poison (a crash loop); above dramatiq's retries
(3) so that ordinary retried errors never count as poison."""

MAX_ERRORS_PER_ITEM = 50
"""Item errors kept on an item row (the count of failures is always exact)."""


class JobStatus(StrEnum):
    """``queued`` -> ``running`` (<-> ``paused``) -> ``succeeded`` | ``failed`` |
    ``partially_failed`` | ``cancelled``. A paused job holds its scope (no second job for it)
    but starts no item; its running items finish."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PARTIALLY_FAILED = "partially_failed"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        """Not over yet (queued, running or paused): the job holds its scope."""
        return self in ACTIVE_JOB_STATUSES

    @property
    def runnable(self) -> bool:
        """Items may start (queued or running; not paused)."""
        return self in (JobStatus.QUEUED, JobStatus.RUNNING)


ACTIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED)


class ItemStatus(StrEnum):
    """``queued`` -> ``running`` -> ``succeeded`` | ``failed`` | ``cancelled``; ``waiting``: its
    message is delayed, held while a dependency is down (``JobItem.waiting_on`` names it) or
    waiting for a retry after a transient error (``waiting_on`` = ``RETRY``)."""

    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self not in UNFINISHED_ITEM_STATUSES


UNFINISHED_ITEM_STATUSES = (ItemStatus.QUEUED, ItemStatus.RUNNING, ItemStatus.WAITING)

RETRY = "retry"
"""``JobItem.waiting_on`` of an item whose message waits for Dramatiq's retry backoff."""


class JobTrigger(StrEnum):
    CLI = "cli"
    API = "api"
    SCHEDULER = "scheduler"
    INGEST = "ingest"


class ItemKind(StrEnum):
    PERSONS = "persons"
    VIDEO = "video"


def scope_key(request: ReprocessRequest) -> str:
    """The key at most one active job may hold: ``all``, ``owner:<uuid>`` or ``video:<uuid>``."""
    if request.scope is ReprocessScope.VIDEO:
        return f"video:{request.video_id}"
    if request.scope is ReprocessScope.OWNER:
        return f"owner:{request.owner_id}"
    return "all"


@dataclass(frozen=True)
class Job:
    """A job row. ``plan_cursor``: the last owner whose items are all written (None: none yet)."""

    id: uuid.UUID
    request: ReprocessRequest
    spec_version: str
    trigger: JobTrigger
    status: JobStatus
    created_at: datetime
    plan_cursor: uuid.UUID | None = None
    planned_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    plan_message_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able job row: ``{"job_id", "status", "scope", "owner_id", "video_id", "force",
        "since", "trigger", "spec_version", "created_at", "started_at", "finished_at",
        "planned", "error"}`` (timestamps ISO 8601)."""
        return {
            "job_id": str(self.id),
            "status": self.status.value,
            "scope": self.request.scope.value,
            "owner_id": str(self.request.owner_id) if self.request.owner_id else None,
            "video_id": str(self.request.video_id) if self.request.video_id else None,
            "force": self.request.force,
            "since": self.request.since.isoformat() if self.request.since else None,
            "trigger": self.trigger.value,
            "spec_version": self.spec_version,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "planned": self.planned_at is not None,
            "error": self.error,
        }


@dataclass(frozen=True)
class JobItem:
    """One unit of a job: the persons of an owner or one video (``subject_id``: owner or video id)."""

    job_id: uuid.UUID
    kind: ItemKind
    subject_id: uuid.UUID
    owner_id: uuid.UUID
    status: ItemStatus
    deliveries: int = 0
    error: str | None = None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    message_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    waiting_on: str | None = None
    waiting_since: datetime | None = None


@dataclass(frozen=True)
class WaitingGroup:
    """Items of a job in ``waiting`` on one dependency (or ``RETRY``): how many, since when (the
    oldest), and the last error seen."""

    waiting_on: str
    items: int
    since: datetime
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "waiting_on": self.waiting_on,
            "items": self.items,
            "since": self.since.isoformat(),
            "error": self.error,
        }


@dataclass(frozen=True)
class JobSummary:
    """A job with its items counted by status, its per-step counts summed over items, its
    failed items and its waiting items grouped by what they wait on."""

    job: Job
    items_by_status: dict[ItemStatus, int]
    steps: dict[str, dict[str, int]]
    failed_items: list[JobItem]
    waiting: list[WaitingGroup] = field(default_factory=list)

    @property
    def items_total(self) -> int:
        return sum(self.items_by_status.values())

    @property
    def items_done(self) -> int:
        return sum(n for status, n in self.items_by_status.items() if status.finished)

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """JSON-able progress: ``Job.to_dict()`` plus ``{
        "items": {"total", "done", "failed", "by_status"}, "steps": {step: {"planned",
        "computed", "skipped", "failed"}}, "items_per_s", "eta_s", "failed_items": [{"kind",
        "subject_id", "error", "deliveries", "errors"}], "waiting": [{"waiting_on", "items",
        "since", "error"}]}``. Throughput is finished items per
        second since the job started; ETA (seconds) = unfinished items / throughput, None
        until an item has finished or once the job is over."""
        job = self.job
        end = job.finished_at or now or utcnow()
        elapsed = (end - job.started_at).total_seconds() if job.started_at else 0.0
        rate = self.items_done / elapsed if elapsed > 0 and self.items_done else None
        remaining = self.items_total - self.items_done
        return {
            **job.to_dict(),
            "items": {
                "total": self.items_total,
                "done": self.items_done,
                "failed": self.items_by_status.get(ItemStatus.FAILED, 0),
                "by_status": {status.value: n for status, n in self.items_by_status.items()},
            },
            "steps": self.steps,
            "items_per_s": round(rate, 3) if rate else None,
            "eta_s": round(remaining / rate, 1) if rate and remaining and job.status.active else None,
            "failed_items": [
                {
                    "kind": item.kind.value,
                    "subject_id": str(item.subject_id),
                    "error": item.error,
                    "deliveries": item.deliveries,
                    "errors": item.errors,
                }
                for item in self.failed_items
            ],
            "waiting": [group.to_dict() for group in self.waiting],
        }


class ActiveJobError(InvalidRequestError):
    """A job for the same scope is already queued or running (``active_job_id``)."""

    def __init__(self, active: Job) -> None:
        super().__init__(
            f"job {active.id} is already {active.status.value} for scope {scope_key(active.request)}"
        )
        self.active_job_id = active.id


def progress_counts(progress: ReprocessProgress) -> dict[str, dict[str, int]]:
    """``{step: {"planned", "computed", "skipped", "failed"}}`` of a finished run."""
    return {
        step.value: {
            "planned": c.planned,
            "computed": c.computed,
            "skipped": c.skipped,
            "failed": c.failed,
        }
        for step, c in progress.steps.items()
    }


def error_dicts(errors: Iterable[ItemError]) -> list[dict[str, Any]]:
    return [
        {
            "step": e.step.value,
            "item_id": str(e.item_id),
            "video_id": str(e.video_id) if e.video_id else None,
            "message": e.message,
        }
        for e in list(errors)[:MAX_ERRORS_PER_ITEM]
    ]


STEP_NAMES = tuple(step.value for step in EmbeddingStepType)
