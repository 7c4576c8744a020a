"""The reads of the SQL ``JobStore`` (``JobReader``: a job, the recent ones, the active ones, the
waiting counts, a job's summary) and the row mappers the writer shares; ``SqlJobStore``
(``adapters.db.jobs``) adds the transitions and the sweeper's reads and writes."""

from __future__ import annotations

import builtins
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from scenedex.adapters.db import tables as t
from scenedex.adapters.db.pages import after
from scenedex.domain.jobs import (
    ACTIVE_JOB_STATUSES,
    STEP_NAMES,
    UNFINISHED_ITEM_STATUSES,
    ItemKind,
    ItemStatus,
    Job,
    JobItem,
    JobStatus,
    JobSummary,
    JobTrigger,
    WaitingGroup,
)
from scenedex.domain.request import ReprocessRequest, ReprocessScope

_UNFINISHED = tuple(status.value for status in UNFINISHED_ITEM_STATUSES)
_ACTIVE = tuple(status.value for status in ACTIVE_JOB_STATUSES)
_RUNNABLE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


class SqlJobReader:
    """Reads of the ``reprocess_jobs`` and ``reprocess_job_items`` tables."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def get(self, job_id: uuid.UUID) -> Job | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(t.reprocess_jobs).where(t.reprocess_jobs.c.id == job_id)
            ).first()
        return _job(row) if row else None

    def list(
        self,
        *,
        limit: int = 20,
        status: JobStatus | None = None,
        scope: ReprocessScope | None = None,
        trigger: JobTrigger | None = None,
        before: tuple[datetime, uuid.UUID] | None = None,
    ) -> list[Job]:
        jobs = t.reprocess_jobs.c
        query = sa.select(t.reprocess_jobs)
        if status is not None:
            query = query.where(jobs.status == status.value)
        if scope is not None:
            query = query.where(jobs.scope == scope.value)
        if trigger is not None:
            query = query.where(jobs.trigger == trigger.value)
        query = after(query, [(jobs.created_at, True), (jobs.id, True)], before, limit)
        with self.engine.connect() as connection:
            return [_job(row) for row in connection.execute(query)]

    def active_jobs(self) -> builtins.list[Job]:
        query = sa.select(t.reprocess_jobs).where(t.reprocess_jobs.c.status.in_(_ACTIVE))
        with self.engine.connect() as connection:
            return [_job(row) for row in connection.execute(query.order_by(t.reprocess_jobs.c.created_at))]

    def waiting_counts(self) -> dict[str, int]:
        """See ``JobStore.waiting_counts``."""
        items = t.reprocess_job_items.c
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(items.waiting_on, sa.func.count().label("n"))
                .where(items.status == ItemStatus.WAITING.value)
                .group_by(items.waiting_on)
            )
            return {row.waiting_on: row.n for row in rows}

    def summary(self, job_id: uuid.UUID) -> JobSummary | None:
        job = self.get(job_id)
        if job is None:
            return None
        items = t.reprocess_job_items.c
        with self.engine.connect() as connection:
            by_status = {
                ItemStatus(row.status): row.n
                for row in connection.execute(
                    sa.select(items.status, sa.func.count().label("n"))
                    .where(items.job_id == job_id)
                    .group_by(items.status)
                )
            }
            steps: dict[str, dict[str, int]] = {}
            for (counts,) in connection.execute(
                sa.select(items.counts).where(items.job_id == job_id, items.counts.is_not(None))
            ):
                for step, numbers in (counts or {}).items():
                    total = steps.setdefault(step, {"planned": 0, "computed": 0, "skipped": 0, "failed": 0})
                    for name, value in numbers.items():
                        total[name] = total.get(name, 0) + value
            failed = [
                _item(row)
                for row in connection.execute(
                    sa.select(t.reprocess_job_items)
                    .where(items.job_id == job_id, items.status == ItemStatus.FAILED.value)
                    .order_by(items.finished_at)
                    .limit(100)
                )
            ]
            waiting = [
                WaitingGroup(row.waiting_on, row.n, _aware(row.since), row.error)
                for row in connection.execute(
                    sa.select(
                        items.waiting_on,
                        sa.func.count().label("n"),
                        sa.func.min(items.waiting_since).label("since"),
                        sa.func.max(items.error).label("error"),
                    )
                    .where(items.job_id == job_id, items.status == ItemStatus.WAITING.value)
                    .group_by(items.waiting_on)
                    .order_by(sa.func.min(items.waiting_since))
                )
            ]
        in_spec_order = {name: steps[name] for name in STEP_NAMES if name in steps}
        return JobSummary(job, by_status, in_spec_order, failed, waiting)


def _job(row: sa.Row[Any]) -> Job:
    data = row._mapping
    request = ReprocessRequest(
        scope=ReprocessScope(data["scope"]),
        video_id=data["video_id"],
        owner_id=data["owner_id"],
        force=data["force"],
        since=_aware(data["since"]),
    )
    return Job(
        id=data["id"],
        request=request,
        spec_version=data["spec_version"],
        trigger=JobTrigger(data["trigger"]),
        status=JobStatus(data["status"]),
        created_at=_aware(data["created_at"]),
        plan_cursor=data["plan_cursor"],
        planned_at=_aware(data["planned_at"]),
        started_at=_aware(data["started_at"]),
        finished_at=_aware(data["finished_at"]),
        error=data["error"],
        plan_message_id=data["plan_message_id"],
    )


def _item(row: sa.Row[Any]) -> JobItem:
    data = row._mapping
    return JobItem(
        job_id=data["job_id"],
        kind=ItemKind(data["kind"]),
        subject_id=data["subject_id"],
        owner_id=data["owner_id"],
        status=ItemStatus(data["status"]),
        deliveries=data["deliveries"],
        error=data["error"],
        counts=data["counts"] or {},
        errors=data["errors"] or [],
        message_id=data["message_id"],
        started_at=_aware(data["started_at"]),
        finished_at=_aware(data["finished_at"]),
        waiting_on=data["waiting_on"],
        waiting_since=_aware(data["waiting_since"]),
    )


def _aware(value: Any) -> Any:
    """SQLite returns naive datetimes for timezone-aware columns: they were stored as UTC."""
    if value is not None and getattr(value, "tzinfo", 1) is None:
        from datetime import UTC

        return value.replace(tzinfo=UTC)
    return value
