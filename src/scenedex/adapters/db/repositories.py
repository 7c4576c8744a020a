"""SQL repositories and the unit of work (one SQLAlchemy session per unit).

Every method filters by ``owner_id``; the two admin lookups across owners are named as such.
Writes of derived records are upserts by natural key (idempotent under redelivery).
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from scenedex.adapters.db import tables as t
from scenedex.adapters.db.engine import upsert, vector_from_bytes, vector_to_bytes
from scenedex.adapters.db.face_repositories import SqlFaceClusterRepository, SqlFaceDecisionRepository
from scenedex.adapters.db.outbox import SqlEventRecorder
from scenedex.adapters.db.person_repository import SqlPersonRepository
from scenedex.adapters.db.video_pages import video_page
from scenedex.domain.model import (
    EmbeddingRecord,
    PhotoStatus,
    RecordState,
    Scene,
    Video,
    VideoStatus,
    utcnow,
)
from scenedex.domain.ports import RecordKey
from scenedex.domain.spec import EmbeddingStepType

_IN_CHUNK = 500  # ids per IN (...) list, well under SQLite's bound-parameter limit


_SCENE_COLUMNS = tuple(c for c in t.scenes.c if c.name != "current_under")
"""The columns of a ``Scene`` (the digest ``current_under`` is the runner's, read in SQL only)."""


def _scene(row: sa.Row[Any]) -> Scene:
    return Scene(**{c.name: row._mapping[c.name] for c in _SCENE_COLUMNS})


def _chunks(ids: Iterable[uuid.UUID]) -> Iterable[list[uuid.UUID]]:
    ids = list(dict.fromkeys(ids))
    for start in range(0, len(ids), _IN_CHUNK):
        yield ids[start : start + _IN_CHUNK]


class SqlVideoRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, video: Video) -> None:
        self._session.execute(sa.insert(t.videos), [_row(video)])

    def get(self, owner_id: uuid.UUID, video_id: uuid.UUID) -> Video | None:
        row = self._session.execute(
            sa.select(t.videos).where(t.videos.c.owner_id == owner_id, t.videos.c.id == video_id)
        ).first()
        return _video(row) if row else None

    def list(self, owner_id: uuid.UUID, *, since: datetime | None = None) -> list[Video]:
        query = sa.select(t.videos).where(t.videos.c.owner_id == owner_id)
        if since is not None:
            query = query.where(t.videos.c.updated_at >= since)
        rows = self._session.execute(query.order_by(t.videos.c.created_at, t.videos.c.id))
        return [_video(row) for row in rows]

    def owner_of(self, video_id: uuid.UUID) -> uuid.UUID | None:
        return self._session.scalar(sa.select(t.videos.c.owner_id).where(t.videos.c.id == video_id))

    def external_ids(
        self, owner_id: uuid.UUID, video_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, str | None]:
        cols = t.videos.c
        found: dict[uuid.UUID, str | None] = {}
        for chunk in _chunks(video_ids):  # one query for up to 500 videos (a search's hits)
            rows = self._session.execute(
                sa.select(cols.id, cols.external_id).where(cols.owner_id == owner_id, cols.id.in_(chunk))
            )
            found.update({row.id: row.external_id for row in rows})
        return found

    def add_or_get(self, video: Video) -> tuple[Video, bool]:
        """Insert ``video`` unless the owner has one with its ``external_id``; returns the
        stored video and whether this call created it (concurrent creates: one wins)."""
        if video.external_id is None:
            self.add(video)
            return video, True
        insert = postgresql.insert if self._session.get_bind().dialect.name == "postgresql" else sqlite.insert
        stmt = insert(t.videos).on_conflict_do_nothing(
            index_elements=["owner_id", "external_id"], index_where=t.videos.c.external_id.is_not(None)
        )
        created = self._session.execute(stmt, _row(video)).rowcount == 1  # type: ignore[attr-defined]
        row = self._session.execute(
            sa.select(t.videos).where(
                t.videos.c.owner_id == video.owner_id, t.videos.c.external_id == video.external_id
            )
        ).one()
        return _video(row), created

    def lock(self, owner_id: uuid.UUID, video_id: uuid.UUID) -> Video | None:
        """The video, its row locked until the unit of work ends (Postgres; SQLite locks the
        database on write)."""
        row = self._session.execute(
            sa.select(t.videos)
            .where(t.videos.c.owner_id == owner_id, t.videos.c.id == video_id)
            .with_for_update()
        ).first()
        return _video(row) if row else None

    def update(
        self,
        owner_id: uuid.UUID,
        video_id: uuid.UUID,
        *,
        when: Iterable[VideoStatus] | None = None,
        **values: Any,
    ) -> bool:
        """Set ``values`` (column names: ``status``, ``error``, ``duration_s``, ...) and
        ``updated_at``, if the video exists (and its status is in ``when``); True if it did."""
        cols = t.videos.c
        query = sa.update(t.videos).where(cols.owner_id == owner_id, cols.id == video_id)
        if when is not None:
            query = query.where(cols.status.in_([s.value for s in when]))
        values = {k: v.value if isinstance(v, VideoStatus) else v for k, v in values.items()}
        result = self._session.execute(query.values(updated_at=values.pop("updated_at", utcnow()), **values))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def page(self, owner_id: uuid.UUID, **options: Any) -> builtins.list[Video]:
        """``video_pages.video_page`` on this session: by offset oldest first, or newest first."""
        return [_video(row) for row in video_page(self._session, owner_id, **options)]

    def delete(self, owner_id: uuid.UUID, video_id: uuid.UUID) -> bool:
        """Remove the video; the composite foreign keys cascade to its scenes and their records."""
        result = self._session.execute(
            sa.delete(t.videos).where(t.videos.c.owner_id == owner_id, t.videos.c.id == video_id)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


class SqlSceneRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add_many(self, scenes: Sequence[Scene]) -> None:
        if scenes:
            self._session.execute(sa.insert(t.scenes), [_row(scene) for scene in scenes])

    def replace_for_video(self, owner_id: uuid.UUID, video_id: uuid.UUID, scenes: Sequence[Scene]) -> None:
        """The video's scenes become ``scenes`` (the old ones and their records are removed)."""
        self._session.execute(
            sa.delete(t.scenes).where(t.scenes.c.owner_id == owner_id, t.scenes.c.video_id == video_id)
        )
        self.add_many(scenes)

    def set_texts(
        self, owner_id: uuid.UUID, video_id: uuid.UUID, ordinal: int, texts: Mapping[str, str]
    ) -> Scene | None:
        """Set the scene's text columns in ``texts`` (``transcript``, ``visual_description``,
        ``summary``); the scene as it is now, or None when the owner's video has no such scene."""
        cols = t.scenes.c
        where = (cols.owner_id == owner_id, cols.video_id == video_id, cols.ordinal == ordinal)
        if texts:
            # A new source: the records are no longer known to be current (the digest goes).
            values = {"updated_at": utcnow(), "current_under": None, **texts}
            self._session.execute(sa.update(t.scenes).where(*where).values(**values))
        row = self._session.execute(sa.select(*_SCENE_COLUMNS).where(*where)).first()
        return _scene(row) if row else None

    def get(self, owner_id: uuid.UUID, scene_id: uuid.UUID) -> Scene | None:
        row = self._session.execute(
            sa.select(*_SCENE_COLUMNS).where(t.scenes.c.owner_id == owner_id, t.scenes.c.id == scene_id)
        ).first()
        return _scene(row) if row else None

    def list_for_video(self, owner_id: uuid.UUID, video_id: uuid.UUID) -> list[Scene]:
        rows = self._session.execute(
            sa.select(*_SCENE_COLUMNS)
            .where(t.scenes.c.owner_id == owner_id, t.scenes.c.video_id == video_id)
            .order_by(t.scenes.c.ordinal)
        )
        return [_scene(row) for row in rows]

    def list_for_videos(self, owner_id: uuid.UUID, video_ids: Iterable[uuid.UUID] | None) -> list[Scene]:
        query = sa.select(*_SCENE_COLUMNS).where(t.scenes.c.owner_id == owner_id)
        order = (t.scenes.c.video_id, t.scenes.c.ordinal)
        if video_ids is None:
            return [_scene(row) for row in self._session.execute(query.order_by(*order)).all()]
        scenes: list[Scene] = []
        for chunk in _chunks(video_ids):
            rows = self._session.execute(query.where(t.scenes.c.video_id.in_(chunk)).order_by(*order))
            scenes.extend(_scene(row) for row in rows)
        return scenes

    def not_current_under(
        self, owner_id: uuid.UUID, video_ids: Iterable[uuid.UUID] | None, context: str
    ) -> tuple[list[Scene], int]:
        """One statement per chunk of videos (one snapshot): the scenes whose digest is not
        ``context`` UNION ALL one row counting those whose digest is."""
        cols = t.scenes.c
        scenes: list[Scene] = []
        current = 0
        for chunk in [None] if video_ids is None else _chunks(video_ids):
            where = [cols.owner_id == owner_id] + ([] if chunk is None else [cols.video_id.in_(chunk)])
            stale = sa.select(*_SCENE_COLUMNS, sa.null().label("n_current")).where(
                *where, cols.current_under.is_distinct_from(context)
            )
            count = sa.select(
                *(sa.null().label(c.name) for c in _SCENE_COLUMNS), sa.func.count().label("n_current")
            ).where(*where, cols.current_under == context)
            for row in self._session.execute(sa.union_all(stale, count)).all():
                if row.n_current is None:
                    scenes.append(_scene(row))
                else:
                    current += row.n_current
        scenes.sort(key=lambda s: (str(s.video_id), s.ordinal))
        return scenes, current

    def mark_current(self, owner_id: uuid.UUID, scenes: Sequence[Scene], context: str) -> set[uuid.UUID]:
        """Per chunk: one ``UPDATE ... RETURNING`` on ``(id, updated_at)`` pairs."""
        cols = t.scenes.c
        stamped: set[uuid.UUID] = set()
        for start in range(0, len(scenes), _IN_CHUNK):
            chunk = scenes[start : start + _IN_CHUNK]
            versions = sa.tuple_(cols.id, cols.updated_at).in_([(s.id, s.updated_at) for s in chunk])
            stamped.update(
                self._session.scalars(
                    sa.update(t.scenes)
                    .where(cols.owner_id == owner_id, cols.id.in_([s.id for s in chunk]), versions)
                    .values(current_under=context)
                    .returning(cols.id)
                )
            )
        return stamped

    def clear_current(self, owner_id: uuid.UUID, scene_ids: Iterable[uuid.UUID]) -> None:
        cols = t.scenes.c
        for chunk in _chunks(scene_ids):
            self._session.execute(
                sa.update(t.scenes)
                .where(cols.owner_id == owner_id, cols.id.in_(chunk), cols.current_under.is_not(None))
                .values(current_under=None)
            )

    def existing(self, owner_id: uuid.UUID, scene_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        found: set[uuid.UUID] = set()
        for chunk in _chunks(scene_ids):
            query = sa.select(t.scenes.c.id).where(t.scenes.c.owner_id == owner_id, t.scenes.c.id.in_(chunk))
            found.update(self._session.execute(query).scalars())
        return found


class SqlEmbeddingRecordRepository:
    """Derived records in one table per step (``tables.RECORD_TABLES``)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def states(
        self, step: EmbeddingStepType, owner_id: uuid.UUID, subject_ids: Iterable[uuid.UUID] | None
    ) -> dict[RecordKey, RecordState]:
        table, subject = self._table(step)
        cols = [subject, table.c.key, table.c.fingerprint, table.c.input_hash]
        return {
            (row[0], row.key): RecordState(row.fingerprint, row.input_hash)
            for row in self._select(table, subject, cols, owner_id, subject_ids)
        }

    def get(
        self, step: EmbeddingStepType, owner_id: uuid.UUID, subject_ids: Iterable[uuid.UUID]
    ) -> dict[RecordKey, EmbeddingRecord]:
        table, subject = self._table(step)
        records = {}
        for row in self._select(table, subject, list(table.columns), owner_id, subject_ids):
            data = row._mapping
            records[(data[subject.name], data["key"])] = EmbeddingRecord(
                owner_id=data["owner_id"],
                subject_id=data[subject.name],
                key=data["key"],
                vector=vector_from_bytes(data["vector"], data["vector_shape"]),
                model_id=data["model_id"],
                spec_version=data["spec_version"],
                fingerprint=data["fingerprint"],
                input_hash=data["input_hash"],
                payload=data["payload"],
                updated_at=data["updated_at"],
            )
        return records

    def upsert(self, step: EmbeddingStepType, records: Sequence[EmbeddingRecord]) -> None:
        table, subject = self._table(step)
        rows = []
        for record in records:
            vector, shape = vector_to_bytes(record.vector)
            rows.append(
                {
                    subject.name: record.subject_id,
                    "key": record.key,
                    "owner_id": record.owner_id,
                    "vector": vector,
                    "vector_shape": shape,
                    "payload": dict(record.payload),
                    "model_id": record.model_id,
                    "spec_version": record.spec_version,
                    "fingerprint": record.fingerprint,
                    "input_hash": record.input_hash,
                    "updated_at": record.updated_at,
                }
            )
        upsert(self._session, table, rows, keep_on_update=())

    def _select(
        self,
        table: sa.Table,
        subject: sa.Column[Any],
        columns: list[Any],
        owner_id: uuid.UUID,
        subject_ids: Iterable[uuid.UUID] | None,
    ) -> Iterable[sa.Row[Any]]:
        # ``.all()`` fetches in bulk (one fetchall); iterating the result fetches row by row,
        # which was a third of a no-op plan over 100k scenes.
        if subject_ids is None:
            yield from self._session.execute(sa.select(*columns).where(table.c.owner_id == owner_id)).all()
            return
        for chunk in _chunks(subject_ids):
            yield from self._session.execute(
                sa.select(*columns).where(table.c.owner_id == owner_id, subject.in_(chunk))
            ).all()

    @staticmethod
    def _table(step: EmbeddingStepType) -> tuple[sa.Table, sa.Column[Any]]:
        table = t.RECORD_TABLES[step]
        return table, next(iter(c for c in table.primary_key.columns if c.name != "key"))


class SqlUnitOfWork:
    """One transaction: repositories share one session; leaving the block without
    ``commit()`` rolls back."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    def __enter__(self) -> SqlUnitOfWork:
        self.session = self._session_factory()
        self.videos = SqlVideoRepository(self.session)
        self.scenes = SqlSceneRepository(self.session)
        self.persons = SqlPersonRepository(self.session)
        self.records = SqlEmbeddingRecordRepository(self.session)
        self.face_decisions = SqlFaceDecisionRepository(self.session)
        self.face_clusters = SqlFaceClusterRepository(self.session)
        self.events = SqlEventRecorder(self.session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.session.rollback()
        self.session.close()

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()

    def list_owner_ids(self) -> list[uuid.UUID]:
        owners = sa.union(sa.select(t.videos.c.owner_id), sa.select(t.persons.c.owner_id))
        return sorted(self.session.scalars(sa.select(owners.subquery().c.owner_id)))


class SqlUnitOfWorkFactory:
    """Callable making a fresh ``SqlUnitOfWork`` per message or request."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self._sessions)


def _row(entity: Any) -> dict[str, Any]:
    row = dict(vars(entity))
    for key, value in row.items():
        if isinstance(value, VideoStatus | PhotoStatus):
            row[key] = value.value
    return row


def _video(row: sa.Row[Any]) -> Video:
    data = dict(row._mapping)
    data["status"] = VideoStatus(data["status"])
    return Video(**data)
