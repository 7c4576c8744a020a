"""The job ports: the job store (reader, writer, sweeper), job events, the message sender and
the broker's message probe."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from scenedex.domain.jobs import ItemKind, ItemStatus, Job, JobItem, JobStatus, JobSummary, JobTrigger
from scenedex.domain.request import ReprocessRequest, ReprocessScope


class JobReader(Protocol):
    """Reads of job state (the admin API, the console, ``scenedex jobs``, the metrics)."""

    def get(self, job_id: uuid.UUID) -> Job | None: ...

    def list(
        self,
        *,
        limit: int = 20,
        status: JobStatus | None = None,
        scope: ReprocessScope | None = None,
        trigger: JobTrigger | None = None,
        before: tuple[datetime, uuid.UUID] | None = None,
    ) -> builtins.list[Job]:
        """Most recent first (ties: id), filtered by whichever of status, scope and trigger are
        given; below the ``(created_at, id)`` key ``before`` when given (a keyset page)."""
        ...

    def summary(self, job_id: uuid.UUID) -> JobSummary | None: ...

    def active_jobs(self) -> builtins.list[Job]:
        """Queued, running and paused jobs, oldest first."""
        ...

    def waiting_counts(self) -> dict[str, int]:
        """Items ``waiting`` over all jobs, by what they wait on (a dependency, or ``retry``)."""
        ...


class JobWriter(Protocol):
    """The transitions of jobs and items: created, planned, claimed, held, finished, failed,
    cancelled, retried, paused and resumed. Every method is one transaction."""

    def create(self, request: ReprocessRequest, spec_version: str, trigger: JobTrigger) -> Job:
        """Insert a queued job; raises ``ActiveJobError`` when its scope already has an active job."""
        ...

    def start(self, job_id: uuid.UUID) -> Job | None:
        """queued -> running (sets ``started_at``); the job if it is runnable (queued or
        running, not paused), else None."""
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
        """If the job is runnable (not paused) and the item unfinished (queued, running or
        waiting): deliveries += 1, status running, ``waiting_on`` cleared, return it; else None
        (duplicate, cancelled or paused delivery)."""
        ...

    def hold_item(
        self,
        job_id: uuid.UUID,
        kind: ItemKind,
        subject_id: uuid.UUID,
        waiting_on: str,
        error: str | None,
        *,
        refund_delivery: bool,
    ) -> None:
        """An unfinished item's message was delayed: status ``waiting`` on ``waiting_on`` (a
        dependency's name, or ``jobs.RETRY``) since now (kept while it waits on the same
        thing), ``error`` the last error. ``refund_delivery``: the claim of this delivery did
        not count (a hold spends no delivery)."""
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

    def pause(self, job_id: uuid.UUID) -> Job:
        """queued or running -> paused. Raises ``NotFoundError`` / ``InvalidRequestError`` (not
        queued or running)."""
        ...

    def unpause(self, job_id: uuid.UUID) -> Job:
        """paused -> running (queued if it never started). Raises ``NotFoundError`` /
        ``InvalidRequestError`` (not paused)."""
        ...

    def set_plan_message_id(self, job_id: uuid.UUID, message_id: str) -> None: ...


class JobSweeper(Protocol):
    """What the sweeper and ``resend`` read and record: the items whose messages may be lost
    and the broker ids of the messages sent for them."""

    def unsent_video_items(self, job_id: uuid.UUID, limit: int) -> builtins.list[JobItem]:
        """Up to ``limit`` queued video items without a message, the owners interleaved
        (round robin, owners in id order)."""
        ...

    def unfinished_items(self, job_id: uuid.UUID) -> builtins.list[JobItem]: ...

    def set_message_ids(
        self, job_id: uuid.UUID, message_ids: Sequence[tuple[ItemKind, uuid.UUID, str]]
    ) -> None: ...


class JobStore(JobReader, JobWriter, JobSweeper, Protocol):
    """Job state in the database (``adapters.db.jobs.SqlJobStore``): reader, writer and sweeper
    in one. Every method is one transaction."""


class JobEvents(Protocol):
    """Told what happened, for metrics (``scenedex.worker.metrics``)."""

    def item_finished(
        self, kind: ItemKind, status: ItemStatus, counts: dict[str, dict[str, int]]
    ) -> None: ...

    def job_finished(self, job: Job) -> None: ...


class MessageSender(Protocol):
    """Sends job messages to the broker; each method returns the message id it sent."""

    def send_plan(self, job_id: uuid.UUID) -> str: ...

    def send_video(self, job_id: uuid.UUID, video_id: uuid.UUID) -> str: ...


class MessageProbe(Protocol):
    """True when the broker still holds the message (queued, delayed for retry, or in flight);
    None (never sent) counts as lost."""

    def __call__(self, message_id: str | None) -> bool: ...


@dataclass(frozen=True)
class QueueDepth:
    """One work queue: messages ready, delayed, held in all (ready, delayed and in flight) and
    dead-lettered."""

    queue: str
    ready: int
    delayed: int
    held: int
    dead: int


@dataclass(frozen=True)
class LiveWorker:
    """A worker process (its broker id) whose last heartbeat is ``seconds_ago`` old."""

    broker_id: str
    seconds_ago: float


class WorkerFleet(Protocol):
    """What the broker knows of the work queues and the worker processes (the console's
    overview): read-only, one round trip each; raises the broker's connection errors."""

    def queue_depths(self, queues: Sequence[str]) -> list[QueueDepth]: ...

    def live_workers(self, heartbeat_timeout_ms: int, *, exclude: str | None = None) -> list[LiveWorker]:
        """Workers with a heartbeat in the last ``heartbeat_timeout_ms``, most recent first,
        without ``exclude`` (this process's own broker id)."""
        ...
