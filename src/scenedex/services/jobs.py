"""Job reads and commands: the use cases behind the admin API's job routes, the console's job
pages and actions, and ``scenedex jobs``, so each of them calls the same line.

Jobs are the admin's (not owner-scoped). Reads raise ``NotFoundError`` for an unknown job;
commands raise ``InvalidRequestError`` (409 over HTTP, exit 2 on the CLI) when the job's state
refuses them (``domain.coordinator``), ``ActiveJobError`` when a retry's scope is held.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from datetime import datetime

from scenedex.domain.coordinator import JobCoordinator
from scenedex.domain.errors import NotFoundError
from scenedex.domain.jobs import Job, JobStatus, JobSummary, JobTrigger
from scenedex.domain.ports import LiveWorker, MessageProbe, QueueDepth, WorkerFleet
from scenedex.domain.request import ReprocessScope


class Jobs:
    """List, read and act on jobs through the coordinator (its store for reads and cancel) and
    the broker's message probe (resume and resend ask it which messages are lost)."""

    def __init__(
        self, coordinator: JobCoordinator, probe: MessageProbe, fleet: WorkerFleet | None = None
    ) -> None:
        self._coordinator = coordinator
        self._store = coordinator.store
        self._probe = probe
        self._fleet = fleet

    def queue_depths(self, queues: Sequence[str]) -> builtins.list[QueueDepth]:
        """Each work queue's depth (``WorkerFleet``); the broker's errors when it is down."""
        return self._worker_fleet().queue_depths(queues)

    def live_workers(
        self, heartbeat_timeout_ms: int, *, exclude: str | None = None
    ) -> builtins.list[LiveWorker]:
        """Worker processes with a recent heartbeat (``WorkerFleet.live_workers``)."""
        return self._worker_fleet().live_workers(heartbeat_timeout_ms, exclude=exclude)

    def _worker_fleet(self) -> WorkerFleet:
        if self._fleet is None:
            raise RuntimeError("this process was built without a broker: no queues to read")
        return self._fleet

    def list(
        self,
        *,
        limit: int,
        status: JobStatus | None = None,
        scope: ReprocessScope | None = None,
        trigger: JobTrigger | None = None,
        before: tuple[datetime, uuid.UUID] | None = None,
    ) -> builtins.list[Job]:
        """The most recent jobs, most recent first, filtered by status, scope and trigger;
        below the ``(created_at, id)`` key ``before`` when given (the API's cursor)."""
        return self._store.list(limit=limit, status=status, scope=scope, trigger=trigger, before=before)

    def active(self) -> builtins.list[Job]:
        """The jobs queued, running or paused."""
        return self._store.active_jobs()

    def get(self, job_id: uuid.UUID) -> Job:
        """The job; ``NotFoundError`` when there is none."""
        job = self._store.get(job_id)
        if job is None:
            raise NotFoundError(f"job {job_id} not found")
        return job

    def summary(self, job_id: uuid.UUID) -> JobSummary:
        """The job's progress: per-step counts, waiting and failed items, rate and ETA."""
        summary = self._store.summary(job_id)
        if summary is None:
            raise NotFoundError(f"job {job_id} not found")
        return summary

    def pause(self, job_id: uuid.UUID) -> Job:
        """No new item of a queued or running job starts (running items finish)."""
        return self._coordinator.pause(job_id)

    def resume(self, job_id: uuid.UUID) -> tuple[Job, int]:
        """A paused job runs again; returns it and how many messages were sent again."""
        return self._coordinator.resume(job_id, self._probe)

    def resend(self, job_id: uuid.UUID) -> tuple[Job, int]:
        """Send again the messages of a running job the broker lost; returns the job and how
        many were sent."""
        resent = self._coordinator.resend_lost(job_id, self._probe)
        return self.get(job_id), resent

    def retry(self, job_id: uuid.UUID) -> tuple[Job, int]:
        """Run the job's failed video items again; returns the job and how many."""
        return self._coordinator.retry_failed(job_id)

    def cancel(self, job_id: uuid.UUID) -> Job:
        """Cancel an active job: items not yet run are cancelled."""
        return self._store.cancel(job_id)
