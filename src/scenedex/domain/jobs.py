"""Reprocess jobs: durable job state for at-least-once workers.

A job is one ``ReprocessRequest`` run by workers. The database holds the truth (the broker only
carries ids): a job row (scope, request, spec version, trigger, status, plan cursor) and one
item per unit of work: a ``persons`` item per owner (person photo and query embeddings, run by
the planner) and a ``video`` item per video (the scene steps, one message each).

``JobCoordinator`` holds the rules every delivery follows, whatever the broker does:

- planning is resumable: owners are planned in id order and the cursor (last owner fully
  planned) is stored with that owner's items, so a re-delivered planner goes on where it
  stopped; items are inserted idempotently and re-sending one is harmless;
- an item is claimed by incrementing its delivery counter; after ``max_deliveries`` claims
  (a message that keeps killing its worker) it fails as a poison item instead of looping;
- a finished item stores its per-step counts (set, never incremented), so a duplicate delivery
  cannot double them; the job's counts are the sum over its items;
- the job finishes when its last item does, decided in the database under a lock on the job
  row, so two workers finishing the last two items cannot both miss (or both make) the end.
"""

from __future__ import annotations

import builtins
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from scenedex.domain.errors import InvalidRequestError, NotFoundError, PermanentError
from scenedex.domain.model import utcnow
from scenedex.domain.reprocess import (
    ItemError,
    ProgressListener,
    ReprocessProgress,
    ReprocessRequest,
    ReprocessRunner,
    ReprocessScope,
)
from scenedex.domain.spec import EmbeddingStepType
from scenedex.domain.logcontext import log_context

log = logging.getLogger("scenedex.jobs")

DEFAULT_MAX_DELIVERIES = 5
"""Claims of one item before it is failed as poison (a crash loop); above dramatiq's retries
(3) so that ordinary retried errors never count as poison."""

MAX_ERRORS_PER_ITEM = 50
"""Item errors kept on an item row (the count of failures is always exact)."""


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PARTIALLY_FAILED = "partially_failed"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        return self in (JobStatus.QUEUED, JobStatus.RUNNING)


class ItemStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self not in (ItemStatus.QUEUED, ItemStatus.RUNNING)


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


@dataclass(frozen=True)
class JobSummary:
    """A job with its items counted by status and its per-step counts summed over items."""

    job: Job
    items_by_status: dict[ItemStatus, int]
    steps: dict[str, dict[str, int]]
    failed_items: list[JobItem]

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
        "subject_id", "error", "deliveries", "errors"}]}``. Throughput is finished items per
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
        }


class ActiveJobError(InvalidRequestError):
    """A job for the same scope is already queued or running (``active_job_id``)."""

    def __init__(self, active: Job) -> None:
        super().__init__(
            f"job {active.id} is already {active.status.value} for scope {scope_key(active.request)}"
        )
        self.active_job_id = active.id


class JobStore(Protocol):
    """Job state in the database. Every method is one transaction."""

    def create(self, request: ReprocessRequest, spec_version: str, trigger: JobTrigger) -> Job:
        """Insert a queued job; raises ``ActiveJobError`` when its scope already has an active job."""
        ...

    def get(self, job_id: uuid.UUID) -> Job | None: ...

    def list(
        self,
        *,
        limit: int = 20,
        status: JobStatus | None = None,
        scope: ReprocessScope | None = None,
        trigger: JobTrigger | None = None,
    ) -> builtins.list[Job]:
        """Most recent first, filtered by whichever of status, scope and trigger are given."""
        ...

    def start(self, job_id: uuid.UUID) -> Job | None:
        """queued -> running (sets ``started_at``); the job if it is active, else None."""
        ...

    def add_items(self, job_id: uuid.UUID, items: Sequence[tuple[ItemKind, uuid.UUID, uuid.UUID]]) -> None:
        """Insert queued items ``(kind, subject_id, owner_id)``; existing ones are left as they are."""
        ...

    def set_cursor(self, job_id: uuid.UUID, owner_id: uuid.UUID) -> None: ...

    def mark_planned(self, job_id: uuid.UUID) -> Job | None:
        """Set ``planned_at`` and finish the job if no item is left; the job if this call
        finished it, else None."""
        ...

    def claim_item(self, job_id: uuid.UUID, kind: ItemKind, subject_id: uuid.UUID) -> JobItem | None:
        """If the job is active and the item unfinished: deliveries += 1, status running,
        return it; else None (duplicate or cancelled delivery)."""
        ...

    def finish_item(
        self,
        job_id: uuid.UUID,
        kind: ItemKind,
        subject_id: uuid.UUID,
        status: ItemStatus,
        *,
        counts: dict[str, dict[str, int]] | None = None,
        errors: Sequence[dict[str, Any]] = (),
        error: str | None = None,
    ) -> Job | None:
        """Set the item's final state (only if it is unfinished), then, under a lock on the job
        row, finish the job when it is planned and this was its last unfinished item. Returns
        the job if this call finished it, else None."""
        ...

    def fail(self, job_id: uuid.UUID, error: str) -> None:
        """The job failed as a whole (e.g. its scope vanished); unfinished items are cancelled."""
        ...

    def cancel(self, job_id: uuid.UUID) -> Job:
        """Cancel an active job and its unfinished items; raises ``NotFoundError`` /
        ``InvalidRequestError`` (already finished)."""
        ...

    def retry_failed(self, job_id: uuid.UUID) -> tuple[Job, builtins.list[JobItem]]:
        """Put the job's failed video items back to queued (deliveries, errors and counts
        reset) and make the job running and unfinished again; returns the job and the reset
        items. Raises ``NotFoundError`` (unknown job), ``InvalidRequestError`` (cancelled, or no
        failed video item) and ``ActiveJobError`` (a finished job whose scope has another
        active job now)."""
        ...

    def unfinished_items(self, job_id: uuid.UUID) -> builtins.list[JobItem]: ...

    def set_message_ids(
        self, job_id: uuid.UUID, message_ids: Sequence[tuple[ItemKind, uuid.UUID, str]]
    ) -> None: ...

    def set_plan_message_id(self, job_id: uuid.UUID, message_id: str) -> None: ...

    def summary(self, job_id: uuid.UUID) -> JobSummary | None: ...

    def active_jobs(self) -> builtins.list[Job]: ...


class JobEvents(Protocol):
    """Told what happened, for metrics (``scenedex.worker.metrics``)."""

    def item_finished(
        self, kind: ItemKind, status: ItemStatus, counts: dict[str, dict[str, int]]
    ) -> None: ...

    def job_finished(self, job: Job) -> None: ...


class _NoEvents:
    def item_finished(self, kind: ItemKind, status: ItemStatus, counts: dict[str, dict[str, int]]) -> None:
        pass

    def job_finished(self, job: Job) -> None:
        pass


class MessageSender(Protocol):
    """Sends job messages to the broker; each method returns the message id it sent."""

    def send_plan(self, job_id: uuid.UUID) -> str: ...

    def send_video(self, job_id: uuid.UUID, video_id: uuid.UUID) -> str: ...


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


class JobCoordinator:
    """Creates, plans, runs and resumes jobs on a ``JobStore``, a runner and a sender.

    ``page_size``: video items written and sent per page while planning (one transaction each).
    """

    def __init__(
        self,
        store: JobStore,
        sender: MessageSender,
        runner: ReprocessRunner | None = None,
        *,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        page_size: int = 500,
        events: JobEvents | None = None,
    ) -> None:
        self.events: JobEvents = events or _NoEvents()
        self.store = store
        self.sender = sender
        self._runner = runner
        self.max_deliveries = max_deliveries
        self.page_size = page_size

    @property
    def runner(self) -> ReprocessRunner:
        if self._runner is None:
            raise RuntimeError("this JobCoordinator was built without a runner (enqueue only)")
        return self._runner

    # -- enqueue (API services, CLI, scheduler) -----------------------------------------------

    def enqueue(self, request: ReprocessRequest, spec_version: str, trigger: JobTrigger) -> Job:
        """Create the job and send its planner message; raises ``ActiveJobError``."""
        job = self.store.create(request, spec_version, trigger)
        self.store.set_plan_message_id(job.id, self.sender.send_plan(job.id))
        return job

    # -- planner ------------------------------------------------------------------------------

    def plan(self, job_id: uuid.UUID, *, inline: bool = False) -> None:
        """Write the job's items owner by owner from its cursor, run each owner's person steps
        (its ``persons`` item) and send one message per video item, then mark it planned.
        With ``inline`` the video items run here instead of being sent (``embed_video``).
        A scope that no longer exists fails the job (permanent)."""
        with log_context(job_id=job_id):
            job = self.store.start(job_id)
            if job is None:
                log.info("job %s is not active; planner message ignored", job_id)
                return
            try:
                scopes = self.runner.resolve(job.request)
            except NotFoundError as error:
                self.store.fail(job_id, str(error))
                return
            for scope in sorted(scopes, key=lambda s: s.owner_id):
                if job.plan_cursor is not None and scope.owner_id <= job.plan_cursor:
                    continue
                self._run_persons_item(job, scope.owner_id)
                videos = [v.id for v in scope.videos]
                for start in range(0, len(videos), self.page_size):
                    page = videos[start : start + self.page_size]
                    self.store.add_items(job_id, [(ItemKind.VIDEO, v, scope.owner_id) for v in page])
                    if inline:
                        continue
                    sent = [(ItemKind.VIDEO, v, self.sender.send_video(job_id, v)) for v in page]
                    self.store.set_message_ids(job_id, sent)
                self.store.set_cursor(job_id, scope.owner_id)
            if (finished := self.store.mark_planned(job_id)) is not None:
                self.events.job_finished(finished)
            if inline:
                for item in self.store.unfinished_items(job_id):
                    if item.kind is ItemKind.VIDEO:
                        self.run_video(job_id, item.subject_id)

    def _run_persons_item(self, job: Job, owner_id: uuid.UUID) -> None:
        with log_context(owner_id=owner_id):
            self.store.add_items(job.id, [(ItemKind.PERSONS, owner_id, owner_id)])
            item = self.store.claim_item(job.id, ItemKind.PERSONS, owner_id)
            if item is None:
                return
            progress = ReprocessProgress(self.runner.spec.version)
            self.runner.run_persons(owner_id, progress, force=job.request.force)
            self._finish(job.id, ItemKind.PERSONS, owner_id, progress)

    # -- items --------------------------------------------------------------------------------

    def run_video(
        self, job_id: uuid.UUID, video_id: uuid.UUID, listener: ProgressListener | None = None
    ) -> JobItem | None:
        """Run one video item (scene steps). Returns the claimed item, or None when there was
        nothing to do (job no longer active, item already finished: a duplicate delivery).
        An item claimed more than ``max_deliveries`` times fails as poison without running.
        Transient errors propagate (the broker retries); a vanished video fails its item."""
        with log_context(job_id=job_id, video_id=video_id) as context:
            item = self.store.claim_item(job_id, ItemKind.VIDEO, video_id)
            if item is None:
                log.info(
                    "job %s video %s: nothing to do (finished, cancelled or duplicate)", job_id, video_id
                )
                return None
            context.update(owner_id=item.owner_id)
            if item.deliveries > self.max_deliveries:
                message = (
                    f"poison item: delivered {item.deliveries} times without finishing "
                    f"(limit {self.max_deliveries}); the worker probably crashed on it"
                )
                log.error("job %s video %s: %s", job_id, video_id, message)
                self._finished(
                    ItemKind.VIDEO,
                    ItemStatus.FAILED,
                    {},
                    self.store.finish_item(
                        job_id, ItemKind.VIDEO, video_id, ItemStatus.FAILED, error=message
                    ),
                )
                return item
            job = self.store.get(job_id)
            assert job is not None
            progress = ReprocessProgress(self.runner.spec.version)
            try:
                self.runner.run_video(
                    item.owner_id, video_id, progress, force=job.request.force, listener=listener
                )
            except PermanentError as error:
                self.fail_item(job_id, ItemKind.VIDEO, video_id, str(error))
                return item
            self._finish(job_id, ItemKind.VIDEO, video_id, progress)
            return item

    def fail_item(self, job_id: uuid.UUID, kind: ItemKind, subject_id: uuid.UUID, error: str) -> None:
        """Fail an item for good (permanent error, retries exhausted)."""
        log.error("job %s %s %s failed: %s", job_id, kind.value, subject_id, error)
        job = self.store.finish_item(job_id, kind, subject_id, ItemStatus.FAILED, error=error)
        self._finished(kind, ItemStatus.FAILED, {}, job)

    def _finish(
        self, job_id: uuid.UUID, kind: ItemKind, subject_id: uuid.UUID, progress: ReprocessProgress
    ) -> None:
        status = ItemStatus.SUCCEEDED if progress.ok else ItemStatus.FAILED
        error = None if progress.ok else f"{progress.failed} record(s) failed"
        counts = progress_counts(progress)
        job = self.store.finish_item(
            job_id,
            kind,
            subject_id,
            status,
            counts=counts,
            errors=error_dicts(progress.errors),
            error=error,
        )
        self._finished(kind, status, counts, job)

    def _finished(
        self, kind: ItemKind, status: ItemStatus, counts: dict[str, dict[str, int]], job: Job | None
    ) -> None:
        self.events.item_finished(kind, status, counts)
        if job is not None:
            self.events.job_finished(job)

    # -- recovery -----------------------------------------------------------------------------

    def resume(self, job_id: uuid.UUID, message_exists: MessageProbe) -> int:
        """Re-send what an active job lost: its planner message if it is not fully planned,
        and every unfinished video item whose message the broker no longer holds (Redis
        flushed or restarted without persistence). Returns the number of messages sent.
        Raises ``NotFoundError`` for an unknown job, ``InvalidRequestError`` for a finished one."""
        job = self.store.get(job_id)
        if job is None:
            raise NotFoundError(f"job {job_id} not found")
        if not job.status.active:
            raise InvalidRequestError(f"job {job_id} is {job.status.value}; nothing to resume")
        sent = 0
        if job.planned_at is None and not message_exists(job.plan_message_id):
            self.store.set_plan_message_id(job_id, self.sender.send_plan(job_id))
            sent += 1
        resend = [
            item
            for item in self.store.unfinished_items(job_id)
            if item.kind is ItemKind.VIDEO and not message_exists(item.message_id)
        ]
        if resend:
            ids = [
                (ItemKind.VIDEO, i.subject_id, self.sender.send_video(job_id, i.subject_id)) for i in resend
            ]
            self.store.set_message_ids(job_id, ids)
            sent += len(ids)
        if sent:
            log.warning("job %s: re-sent %d lost message(s)", job_id, sent)
        return sent

    def retry_failed(self, job_id: uuid.UUID) -> tuple[Job, int]:
        """Run a job's failed video items again: they go back to queued (a finished job
        becomes running again) and their messages are re-sent. Returns the job and the number
        of messages sent. Failed ``persons`` items are not retried (the next job runs them).
        If sending fails midway, the sweeper re-sends the rest (queued items without a
        message). Raises ``NotFoundError``, ``InvalidRequestError`` (cancelled job, nothing
        failed) and ``ActiveJobError`` (another job now holds the scope)."""
        job, items = self.store.retry_failed(job_id)
        sent = [(ItemKind.VIDEO, i.subject_id, self.sender.send_video(job_id, i.subject_id)) for i in items]
        self.store.set_message_ids(job_id, sent)
        log.info("job %s: retrying %d failed item(s)", job_id, len(sent))
        return job, len(sent)

    def sweep(self, message_exists: MessageProbe) -> dict[uuid.UUID, int]:
        """``resume`` every active job; messages re-sent per job (jobs with none left out)."""
        resent = {}
        for job in self.store.active_jobs():
            try:
                with log_context(job_id=job.id):
                    count = self.resume(job.id, message_exists)
            except (NotFoundError, InvalidRequestError):
                continue  # finished meanwhile
            if count:
                resent[job.id] = count
        return resent


class MessageProbe(Protocol):
    """True when the broker still holds the message (queued, delayed for retry, or in flight);
    None (never sent) counts as lost."""

    def __call__(self, message_id: str | None) -> bool: ...


STEP_NAMES = tuple(step.value for step in EmbeddingStepType)
