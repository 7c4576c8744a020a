"""``JobStore`` on SQLAlchemy Core (Postgres and SQLite): one transaction per method.

Concurrency: item claims are single ``UPDATE ... WHERE status IN (queued, running)``
statements (atomic on both databases); finishing an item locks the job row (``SELECT ... FOR
UPDATE`` on Postgres; SQLite serialises writers) before deciding whether the job is over.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from scenedex.adapters.db import tables as t
from scenedex.adapters.db.job_events import record_job_end
from scenedex.adapters.db.job_reads import _ACTIVE, _RUNNABLE, _UNFINISHED, SqlJobReader, _item, _job
from scenedex.domain.errors import InvalidRequestError, NotFoundError
from scenedex.domain.jobs import (
    ActiveJobError,
    ItemKind,
    ItemStatus,
    Job,
    JobItem,
    JobStatus,
    JobTrigger,
    scope_key,
)
from scenedex.domain.model import utcnow
from scenedex.domain.request import ReprocessRequest


class SqlJobStore(SqlJobReader):
    """Job state in the ``reprocess_jobs`` and ``reprocess_job_items`` tables: the reads of
    ``SqlJobReader``, the transitions (``JobWriter``) and the sweeper's (``JobSweeper``)."""

    # -- jobs -------------------------------------------------------------------------------

    def create(self, request: ReprocessRequest, spec_version: str, trigger: JobTrigger) -> Job:
        now = utcnow()
        row: dict[str, Any] = {
            "id": uuid.uuid4(),
            "scope": request.scope.value,
            "scope_key": scope_key(request),
            "owner_id": request.owner_id,
            "video_id": request.video_id,
            "force": request.force,
            "since": request.since,
            "spec_version": spec_version,
            "trigger": trigger.value,
            "status": JobStatus.QUEUED.value,
            "created_at": now,
            "updated_at": now,
        }
        try:
            with self.engine.begin() as connection:
                connection.execute(sa.insert(t.reprocess_jobs), [row])
        except IntegrityError:
            active = self._active_for(row["scope_key"])
            if active is None:  # finished in between: try once more
                return self.create(request, spec_version, trigger)
            raise ActiveJobError(active) from None
        job = self.get(row["id"])
        assert job is not None
        return job

    def _active_for(self, key: str) -> Job | None:
        jobs = t.reprocess_jobs.c
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(t.reprocess_jobs).where(jobs.scope_key == key, jobs.status.in_(_ACTIVE))
            ).first()
        return _job(row) if row else None

    def start(self, job_id: uuid.UUID) -> Job | None:
        jobs = t.reprocess_jobs.c
        now = utcnow()
        with self.engine.begin() as connection:
            connection.execute(
                sa.update(t.reprocess_jobs)
                .where(jobs.id == job_id, jobs.status == JobStatus.QUEUED.value)
                .values(status=JobStatus.RUNNING.value, started_at=now, updated_at=now)
            )
        job = self.get(job_id)
        return job if job is not None and job.status.runnable else None

    def set_cursor(self, job_id: uuid.UUID, owner_id: uuid.UUID) -> None:
        self._update_job(job_id, plan_cursor=owner_id)

    def set_plan_message_id(self, job_id: uuid.UUID, message_id: str) -> None:
        self._update_job(job_id, plan_message_id=message_id)

    def _update_job(self, job_id: uuid.UUID, **values: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                sa.update(t.reprocess_jobs)
                .where(t.reprocess_jobs.c.id == job_id)
                .values(**values, updated_at=utcnow())
            )

    def mark_planned(self, job_id: uuid.UUID) -> Job | None:
        with self.engine.begin() as connection:
            self._lock_job(connection, job_id)
            connection.execute(
                sa.update(t.reprocess_jobs)
                .where(t.reprocess_jobs.c.id == job_id, t.reprocess_jobs.c.planned_at.is_(None))
                .values(planned_at=utcnow(), updated_at=utcnow())
            )
            finished = self._finish_job_if_done(connection, job_id)
        return self.get(job_id) if finished else None

    def fail(self, job_id: uuid.UUID, error: str) -> None:
        now = utcnow()
        with self.engine.begin() as connection:
            self._lock_job(connection, job_id)
            self._cancel_items(connection, job_id, now)
            ended = connection.execute(
                sa.update(t.reprocess_jobs)
                .where(t.reprocess_jobs.c.id == job_id, t.reprocess_jobs.c.status.in_(_ACTIVE))
                .values(status=JobStatus.FAILED.value, error=error, finished_at=now, updated_at=now)
            )
            if ended.rowcount:
                record_job_end(connection, job_id)

    def cancel(self, job_id: uuid.UUID) -> Job:
        now = utcnow()
        with self.engine.begin() as connection:
            status = self._lock_job(connection, job_id)
            if status is None:
                raise NotFoundError(f"job {job_id} not found")
            if status not in _ACTIVE:
                raise InvalidRequestError(f"job {job_id} is already {status}; nothing to cancel")
            self._cancel_items(connection, job_id, now)
            connection.execute(
                sa.update(t.reprocess_jobs)
                .where(t.reprocess_jobs.c.id == job_id)
                .values(status=JobStatus.CANCELLED.value, finished_at=now, updated_at=now)
            )
            record_job_end(connection, job_id)
        job = self.get(job_id)
        assert job is not None
        return job

    def pause(self, job_id: uuid.UUID) -> Job:
        """See ``JobStore.pause``."""
        self._switch(job_id, _RUNNABLE, JobStatus.PAUSED, "pause")
        job = self.get(job_id)
        assert job is not None
        return job

    def unpause(self, job_id: uuid.UUID) -> Job:
        """See ``JobStore.unpause``: a paused job becomes running (queued if it never started)."""
        job = self.get(job_id)
        target = JobStatus.RUNNING if job is not None and job.started_at is not None else JobStatus.QUEUED
        self._switch(job_id, (JobStatus.PAUSED.value,), target, "resume")
        job = self.get(job_id)
        assert job is not None
        return job

    def _switch(self, job_id: uuid.UUID, allowed: tuple[str, ...], target: JobStatus, verb: str) -> None:
        with self.engine.begin() as connection:
            status = self._lock_job(connection, job_id)
            if status is None:
                raise NotFoundError(f"job {job_id} not found")
            if status not in allowed:
                raise InvalidRequestError(f"job {job_id} is {status}; cannot {verb} it")
            connection.execute(
                sa.update(t.reprocess_jobs)
                .where(t.reprocess_jobs.c.id == job_id)
                .values(status=target.value, updated_at=utcnow())
            )

    @staticmethod
    def _cancel_items(connection: sa.Connection, job_id: uuid.UUID, now: Any) -> None:
        items = t.reprocess_job_items.c
        connection.execute(
            sa.update(t.reprocess_job_items)
            .where(items.job_id == job_id, items.status.in_(_UNFINISHED))
            .values(status=ItemStatus.CANCELLED.value, finished_at=now, updated_at=now)
        )

    # -- items ------------------------------------------------------------------------------

    def add_items(self, job_id: uuid.UUID, items: Sequence[tuple[ItemKind, uuid.UUID, uuid.UUID]]) -> None:
        if not items:
            return
        now = utcnow()
        rows = [
            {
                "job_id": job_id,
                "kind": kind.value,
                "subject_id": subject_id,
                "owner_id": owner_id,
                "status": ItemStatus.QUEUED.value,
                "deliveries": 0,
                "updated_at": now,
            }
            for kind, subject_id, owner_id in items
        ]
        with self.engine.begin() as connection:
            insert = _insert(connection)(t.reprocess_job_items).on_conflict_do_nothing()
            connection.execute(insert, rows)

    def set_message_ids(
        self, job_id: uuid.UUID, message_ids: Sequence[tuple[ItemKind, uuid.UUID, str]]
    ) -> None:
        if not message_ids:
            return
        items = t.reprocess_job_items.c
        statement = (
            sa.update(t.reprocess_job_items)
            .where(
                items.job_id == job_id,
                items.kind == sa.bindparam("b_kind"),
                items.subject_id == sa.bindparam("b_subject"),
            )
            .values(message_id=sa.bindparam("b_message"))
        )
        with self.engine.begin() as connection:
            connection.execute(
                statement,
                [{"b_kind": k.value, "b_subject": s, "b_message": m} for k, s, m in message_ids],
            )

    def claim_item(self, job_id: uuid.UUID, kind: ItemKind, subject_id: uuid.UUID) -> JobItem | None:
        items = t.reprocess_job_items.c
        jobs = t.reprocess_jobs.c
        now = utcnow()
        active_job = sa.exists().where(jobs.id == job_id, jobs.status.in_(_RUNNABLE))
        with self.engine.begin() as connection:
            claimed = connection.execute(
                sa.update(t.reprocess_job_items)
                .where(
                    *_item_key(job_id, kind, subject_id),
                    items.status.in_(_UNFINISHED),
                    active_job,
                )
                .values(
                    status=ItemStatus.RUNNING.value,
                    deliveries=items.deliveries + 1,
                    started_at=sa.func.coalesce(items.started_at, now),
                    waiting_on=None,
                    waiting_since=None,
                    updated_at=now,
                )
            ).rowcount
            if not claimed:
                return None
            row = connection.execute(
                sa.select(t.reprocess_job_items).where(*_item_key(job_id, kind, subject_id))
            ).one()
        return _item(row)

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
        """See ``JobStore.hold_item``. ``waiting_since`` keeps its value while the item waits on
        the same thing."""
        items = t.reprocess_job_items.c
        now = utcnow()
        since = sa.case(
            (
                sa.and_(items.status == ItemStatus.WAITING.value, items.waiting_on == waiting_on),
                items.waiting_since,
            ),
            else_=now,
        )
        deliveries = items.deliveries - 1 if refund_delivery else items.deliveries
        with self.engine.begin() as connection:
            connection.execute(
                sa.update(t.reprocess_job_items)
                .where(*_item_key(job_id, kind, subject_id), items.status.in_(_UNFINISHED))
                .values(
                    status=ItemStatus.WAITING.value,
                    waiting_on=waiting_on,
                    waiting_since=sa.func.coalesce(since, now),
                    error=error,
                    deliveries=sa.case((items.deliveries > 0, deliveries), else_=0),
                    updated_at=now,
                )
            )

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
        items = t.reprocess_job_items.c
        now = utcnow()
        with self.engine.begin() as connection:
            self._lock_job(connection, job_id)
            connection.execute(
                sa.update(t.reprocess_job_items)
                .where(
                    *_item_key(job_id, kind, subject_id),
                    items.status.in_(_UNFINISHED),
                )
                .values(
                    status=status.value,
                    counts=counts,
                    errors=list(errors),
                    error=error,
                    finished_at=now,
                    waiting_on=None,
                    waiting_since=None,
                    updated_at=now,
                )
            )
            finished = self._finish_job_if_done(connection, job_id)
        return self.get(job_id) if finished else None

    def retry_failed(self, job_id: uuid.UUID) -> tuple[Job, list[JobItem]]:
        """See ``JobStore.retry_failed``. One transaction under the job row's lock; making a
        finished job active again can violate the partial unique index on active scopes, which
        is reported as ``ActiveJobError`` with the job that holds the scope."""
        items = t.reprocess_job_items.c
        now = utcnow()
        failed_video = (
            items.job_id == job_id,
            items.kind == ItemKind.VIDEO.value,
            items.status == ItemStatus.FAILED.value,
        )
        try:
            with self.engine.begin() as connection:
                status = self._lock_job(connection, job_id)
                if status is None:
                    raise NotFoundError(f"job {job_id} not found")
                if status == JobStatus.CANCELLED.value:
                    raise InvalidRequestError(f"job {job_id} is cancelled; nothing to retry")
                subjects = list(
                    connection.execute(sa.select(items.subject_id).where(*failed_video)).scalars()
                )
                if not subjects:
                    raise InvalidRequestError(f"job {job_id} has no failed video item to retry")
                connection.execute(
                    sa.update(t.reprocess_job_items)
                    .where(*failed_video)
                    .values(
                        status=ItemStatus.QUEUED.value,
                        deliveries=0,
                        message_id=None,
                        error=None,
                        errors=None,
                        counts=None,
                        started_at=None,
                        finished_at=None,
                        updated_at=now,
                    )
                )
                if status not in _ACTIVE:
                    connection.execute(
                        sa.update(t.reprocess_jobs)
                        .where(t.reprocess_jobs.c.id == job_id)
                        .values(status=JobStatus.RUNNING.value, finished_at=None, error=None, updated_at=now)
                    )
        except IntegrityError:
            job = self.get(job_id)
            active = self._active_for(scope_key(job.request)) if job else None
            if active is None:  # the other job finished in between: try once more
                return self.retry_failed(job_id)
            raise ActiveJobError(active) from None
        job = self.get(job_id)
        assert job is not None
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(t.reprocess_job_items).where(
                    items.job_id == job_id,
                    items.kind == ItemKind.VIDEO.value,
                    items.subject_id.in_(subjects),
                    items.status.in_(_UNFINISHED),
                )
            )
            return job, [_item(row) for row in rows]

    def unsent_video_items(self, job_id: uuid.UUID, limit: int) -> list[JobItem]:
        """See ``JobStore.unsent_video_items``: the owners' items interleaved (each owner's
        first unsent item, then each owner's second...), so an ``all`` job serves its owners in
        turn instead of draining the largest first. One window query (``ROW_NUMBER() OVER
        (PARTITION BY owner_id)``, Postgres and SQLite >= 3.25)."""
        items = t.reprocess_job_items.c
        turn = sa.func.row_number().over(partition_by=items.owner_id, order_by=items.subject_id).label("turn")
        unsent = (
            sa.select(t.reprocess_job_items, turn)
            .where(
                items.job_id == job_id,
                items.kind == ItemKind.VIDEO.value,
                items.status == ItemStatus.QUEUED.value,
                items.message_id.is_(None),
            )
            .subquery()
        )
        query = sa.select(unsent).order_by(unsent.c.turn, unsent.c.owner_id).limit(limit)
        with self.engine.connect() as connection:
            return [_item(row) for row in connection.execute(query)]

    def unfinished_items(self, job_id: uuid.UUID) -> list[JobItem]:
        items = t.reprocess_job_items.c
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(t.reprocess_job_items).where(items.job_id == job_id, items.status.in_(_UNFINISHED))
            )
            return [_item(row) for row in rows]

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _lock_job(connection: sa.Connection, job_id: uuid.UUID) -> str | None:
        """The job's status, with its row locked until the transaction ends (Postgres)."""
        query = sa.select(t.reprocess_jobs.c.status).where(t.reprocess_jobs.c.id == job_id)
        if connection.dialect.name == "postgresql":
            query = query.with_for_update()
        return connection.execute(query).scalar_one_or_none()

    @staticmethod
    def _finish_job_if_done(connection: sa.Connection, job_id: uuid.UUID) -> bool:
        """Planned, active and no unfinished item left: succeeded, failed (every video item
        failed) or partially_failed (some did). True when this call finished the job."""
        jobs = t.reprocess_jobs.c
        items = t.reprocess_job_items.c
        job = connection.execute(
            sa.select(jobs.status, jobs.planned_at).where(jobs.id == job_id)
        ).one_or_none()
        if job is None or job.status not in _ACTIVE or job.planned_at is None:
            return False
        counts = {
            row.status: row.n
            for row in connection.execute(
                sa.select(items.status, sa.func.count().label("n"))
                .where(items.job_id == job_id)
                .group_by(items.status)
            )
        }
        if any(counts.get(s, 0) for s in _UNFINISHED):
            return False
        failed = counts.get(ItemStatus.FAILED.value, 0)
        succeeded = counts.get(ItemStatus.SUCCEEDED.value, 0)
        if not failed:
            status = JobStatus.SUCCEEDED
        elif succeeded:
            status = JobStatus.PARTIALLY_FAILED
        else:
            status = JobStatus.FAILED
        now = utcnow()
        connection.execute(
            sa.update(t.reprocess_jobs)
            .where(jobs.id == job_id)
            .values(status=status.value, finished_at=now, updated_at=now)
        )
        record_job_end(connection, job_id)
        return True


def _item_key(job_id: uuid.UUID, kind: ItemKind, subject_id: uuid.UUID) -> tuple[Any, ...]:
    """WHERE conditions naming one item by its primary key."""
    items = t.reprocess_job_items.c
    return (items.job_id == job_id, items.kind == kind.value, items.subject_id == subject_id)


def _insert(connection: sa.Connection) -> Any:
    from sqlalchemy.dialects import postgresql, sqlite

    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
