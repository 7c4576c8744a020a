"""The SQL repository of an owner's persons and their reference photos.

Every method filters by ``owner_id``. ``updated_at`` moves with every change the person
resource shows (``Person``): a rename and a photo's status here, a change of matching in
``job_events.person_changed``, searchable again in ``job_events``.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from scenedex.adapters.db import tables as t
from scenedex.adapters.db.job_events import person_changed
from scenedex.adapters.db.pages import after
from scenedex.domain.model import Person, PersonPhoto, PhotoStatus, utcnow

_IN_CHUNK = 500  # ids per IN (...) list, well under SQLite's bound-parameter limit


class SqlPersonRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, person: Person) -> None:
        self._session.execute(sa.insert(t.persons), [dict(vars(person))])

    def add_photo(self, photo: PersonPhoto) -> None:
        self._session.execute(sa.insert(t.person_photos), [{**vars(photo), "status": photo.status.value}])
        person_changed(self._session, photo.owner_id, photo.person_id)

    def get(self, owner_id: uuid.UUID, person_id: uuid.UUID) -> Person | None:
        row = self._session.execute(
            sa.select(t.persons).where(t.persons.c.owner_id == owner_id, t.persons.c.id == person_id)
        ).first()
        return Person(**row._mapping) if row else None

    def lock(self, owner_id: uuid.UUID, person_id: uuid.UUID) -> Person | None:
        """The person, its row locked until the unit of work ends (Postgres; SQLite locks the
        database on write)."""
        row = self._session.execute(
            sa.select(t.persons)
            .where(t.persons.c.owner_id == owner_id, t.persons.c.id == person_id)
            .with_for_update()
        ).first()
        return Person(**row._mapping) if row else None

    def list(self, owner_id: uuid.UUID) -> list[Person]:
        rows = self._session.execute(
            sa.select(t.persons)
            .where(t.persons.c.owner_id == owner_id)
            .order_by(t.persons.c.created_at, t.persons.c.id)
        )
        return [Person(**row._mapping) for row in rows]

    def page(
        self,
        owner_id: uuid.UUID,
        *,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None = None,
        updated_since: datetime | None = None,
    ) -> tuple[builtins.list[Person], int]:
        """Up to ``limit`` persons newest first, below the ``(created_at, id)`` key ``before``
        (None: from the newest), only those with ``updated_at >= updated_since`` when given; and
        how many persons the owner has with that filter (one count: persons are few per owner)."""
        cols = t.persons.c
        where = [cols.owner_id == owner_id]
        if updated_since is not None:
            where.append(cols.updated_at >= updated_since)
        query = after(
            sa.select(t.persons).where(*where), [(cols.created_at, True), (cols.id, True)], before, limit
        )
        total = self._session.scalar(sa.select(sa.func.count()).select_from(t.persons).where(*where))
        return [Person(**row._mapping) for row in self._session.execute(query)], int(total or 0)

    def list_photos(
        self, owner_id: uuid.UUID, person_ids: Iterable[uuid.UUID] | None = None
    ) -> builtins.list[PersonPhoto]:
        """The owner's photos oldest first (of ``person_ids`` only, when given)."""
        photos = t.person_photos.c
        query = sa.select(t.person_photos).where(photos.owner_id == owner_id)
        order = (photos.created_at, photos.id)
        if person_ids is None:
            return [_photo(row) for row in self._session.execute(query.order_by(*order))]
        wanted = list(dict.fromkeys(person_ids))
        found: builtins.list[PersonPhoto] = []
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = query.where(photos.person_id.in_(wanted[start : start + _IN_CHUNK]))
            found.extend(_photo(row) for row in self._session.execute(chunk.order_by(*order)))
        return sorted(found, key=lambda p: (p.created_at, p.id))

    def set_photo_status(
        self, owner_id: uuid.UUID, photo_id: uuid.UUID, status: PhotoStatus, error: str | None
    ) -> None:
        photos = t.person_photos.c
        person_id = self._session.scalar(
            sa.update(t.person_photos)
            .where(photos.owner_id == owner_id, photos.id == photo_id)
            .values(status=status.value, error=error)
            .returning(photos.person_id)
        )
        if person_id is not None:
            self._touch(owner_id, person_id)

    def rename(self, owner_id: uuid.UUID, person_id: uuid.UUID, name: str) -> bool:
        result = self._session.execute(
            sa.update(t.persons)
            .where(t.persons.c.owner_id == owner_id, t.persons.c.id == person_id)
            .values(name=name, updated_at=utcnow())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def delete(self, owner_id: uuid.UUID, person_id: uuid.UUID) -> bool:
        # The composite foreign keys cascade to the photos and every derived record.
        result = self._session.execute(
            sa.delete(t.persons).where(t.persons.c.owner_id == owner_id, t.persons.c.id == person_id)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def delete_photo(self, owner_id: uuid.UUID, person_id: uuid.UUID, photo_id: uuid.UUID) -> bool:
        photos = t.person_photos.c
        result = self._session.execute(
            sa.delete(t.person_photos).where(
                photos.owner_id == owner_id, photos.person_id == person_id, photos.id == photo_id
            )
        )
        if deleted := bool(result.rowcount):  # type: ignore[attr-defined]
            person_changed(self._session, owner_id, person_id)
        return deleted

    def _touch(self, owner_id: uuid.UUID, person_id: uuid.UUID) -> None:
        cols = t.persons.c
        self._session.execute(
            sa.update(t.persons)
            .where(cols.owner_id == owner_id, cols.id == person_id)
            .values(updated_at=utcnow())
        )


def _photo(row: sa.Row[Any]) -> PersonPhoto:
    data = dict(row._mapping)
    data["status"] = PhotoStatus(data["status"])
    return PersonPhoto(**data)
