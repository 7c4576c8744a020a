"""The events of a job's end, recorded by the job store in the transaction that ends it, and the
persons' searchability they follow.

- ``reprocess_job.finished`` (admins only): the job's id, scope, trigger, final status, error
  and its items' counts by status.
- ``person.searchable``, one per person, when a job that matched every scene of an owner again
  (its ``persons`` item for that owner succeeded, and the job did not fail or get cancelled)
  covers the person's last change: ``changed_at`` (created, photos added or removed) at or
  before the job started (its planner reads the persons after that). The person's
  ``searchable_at`` is set in the same transaction, so the person resource and the event agree.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from scenedex.adapters.db import tables as t
from scenedex.adapters.db.outbox import record
from scenedex.domain.events import Event, EventType, person_event
from scenedex.domain.jobs import ItemKind, ItemStatus, JobStatus
from scenedex.domain.model import Person, utcnow

_SEARCHABLE_AFTER = (JobStatus.SUCCEEDED.value, JobStatus.PARTIALLY_FAILED.value)


def person_changed(session: Session, owner_id: uuid.UUID, person_id: uuid.UUID) -> None:
    """The person's matching changed (photos added or removed: ``PersonRepository``; a face
    confirmed as or rejected for it: ``FaceDecisionRepository.add_many``): it is not searchable
    until a job matches its owner's scenes again (``changed_at`` and ``updated_at`` now)."""
    cols = t.persons.c
    session.execute(
        sa.update(t.persons)
        .where(cols.owner_id == owner_id, cols.id == person_id)
        .values(changed_at=(now := utcnow()), updated_at=now)
    )


def record_job_end(connection: sa.Connection, job_id: uuid.UUID) -> None:
    """Record the end of job ``job_id`` (already set to its final status on ``connection``)."""
    jobs, items = t.reprocess_jobs.c, t.reprocess_job_items.c
    job = connection.execute(sa.select(t.reprocess_jobs).where(jobs.id == job_id)).one_or_none()
    if job is None:
        return
    counts = {
        f"{row.kind}_{row.status}": row.n
        for row in connection.execute(
            sa.select(items.kind, items.status, sa.func.count().label("n"))
            .where(items.job_id == job_id)
            .group_by(items.kind, items.status)
        )
    }
    data = {
        "id": str(job.id),
        "status": job.status,
        "scope": job.scope,
        "owner_id": str(job.owner_id) if job.owner_id else None,
        "video_id": str(job.video_id) if job.video_id else None,
        "trigger": job.trigger,
        "spec_version": job.spec_version,
        "error": job.error,
        "counts": {
            status.value: sum(n for key, n in counts.items() if key.endswith(f"_{status.value}"))
            for status in (ItemStatus.SUCCEEDED, ItemStatus.FAILED, ItemStatus.CANCELLED)
        },
    }
    events = [Event(EventType.REPROCESS_JOB_FINISHED, None, data)]
    if job.status in _SEARCHABLE_AFTER and job.started_at is not None:
        events += _searchable(connection, job_id, job.started_at)
    record(connection, events)


def _searchable(connection: sa.Connection, job_id: uuid.UUID, started_at: object) -> list[Event]:
    items, persons = t.reprocess_job_items.c, t.persons.c
    owners = list(
        connection.scalars(
            sa.select(items.subject_id).where(
                items.job_id == job_id,
                items.kind == ItemKind.PERSONS.value,
                items.status == ItemStatus.SUCCEEDED.value,
            )
        )
    )
    if not owners:
        return []
    covered = sa.and_(
        persons.owner_id.in_(owners),
        persons.changed_at <= started_at,
        sa.or_(persons.searchable_at.is_(None), persons.searchable_at < persons.changed_at),
    )
    rows = connection.execute(sa.select(t.persons).where(covered).with_for_update()).all()
    if not rows:
        return []
    now = utcnow()
    connection.execute(
        sa.update(t.persons)
        .where(persons.id.in_([r.id for r in rows]))
        .values(searchable_at=now, updated_at=now)
    )
    return [
        person_event(
            EventType.PERSON_SEARCHABLE,
            Person(**{**row._mapping, "searchable_at": now, "updated_at": now}),
            job_id=str(job_id),
        )
        for row in rows
    ]
