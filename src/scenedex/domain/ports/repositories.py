"""The repositories and the unit of work over them.

Every repository method takes the owner id and reads or writes only that owner's rows; the two
cross-owner lookups needed by admin scopes (``list_owner_ids``, ``VideoRepository.owner_of``)
are named as such."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol

from scenedex.domain.face_clusters import FaceClusterRepository
from scenedex.domain.face_decisions import FaceDecisionRepository
from scenedex.domain.model import (
    EmbeddingRecord,
    Person,
    PersonPhoto,
    PhotoStatus,
    RecordState,
    Scene,
    Video,
    VideoStatus,
)
from scenedex.domain.ports.events import EventRecorder
from scenedex.domain.spec import EmbeddingStepType

RecordKey = tuple[uuid.UUID, str]
"""(subject id, key): the natural key of a derived record within one step."""


class VideoRepository(Protocol):
    def add(self, video: Video) -> None: ...
    def get(self, owner_id: uuid.UUID, video_id: uuid.UUID) -> Video | None: ...

    def list(self, owner_id: uuid.UUID, *, since: datetime | None = None) -> builtins.list[Video]:
        """The owner's videos (updated at or after ``since`` when given), oldest first."""
        ...

    def owner_of(self, video_id: uuid.UUID) -> uuid.UUID | None:
        """Admin lookup across owners: whose video this is (None if it does not exist)."""
        ...

    def add_or_get(self, video: Video) -> tuple[Video, bool]:
        """Insert ``video`` unless its owner has a video with its ``external_id``; returns the
        stored video and whether this call created it."""
        ...

    def lock(self, owner_id: uuid.UUID, video_id: uuid.UUID) -> Video | None:
        """The video, locked against concurrent changes until the unit of work ends."""
        ...

    def update(
        self,
        owner_id: uuid.UUID,
        video_id: uuid.UUID,
        *,
        when: Iterable[VideoStatus] | None = None,
        **values: Any,
    ) -> bool:
        """Set columns (``status``, ``error``, ``duration_s``, ``source_uri``) and
        ``updated_at`` if the video exists and its status is in ``when`` (None: any)."""
        ...

    def page(
        self,
        owner_id: uuid.UUID,
        *,
        status: VideoStatus | None = None,
        limit: int = 50,
        offset: int = 0,
        before: tuple[datetime, uuid.UUID] | None = None,
        newest_first: bool = False,
        updated_since: datetime | None = None,
    ) -> builtins.list[Video]:
        """One page of the owner's videos (with ``status`` when given, updated at or after
        ``updated_since`` when given): ``offset`` skipped, oldest first; or, ``newest_first``,
        the newest below the ``(created_at, id)`` key ``before`` (a keyset page: stable when
        videos are deleted meanwhile)."""
        ...

    def delete(self, owner_id: uuid.UUID, video_id: uuid.UUID) -> bool:
        """Remove the video with its scenes and their derived records; False if absent."""
        ...

    def external_ids(
        self, owner_id: uuid.UUID, video_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, str | None]:
        """The caller's own id (``external_id``, None when not given) of each of the owner's
        videos among ``video_ids``, in one query (search hits); other owners' ids are absent."""
        ...


class SceneRepository(Protocol):
    def add_many(self, scenes: Sequence[Scene]) -> None: ...

    def replace_for_video(self, owner_id: uuid.UUID, video_id: uuid.UUID, scenes: Sequence[Scene]) -> None:
        """The video's scenes become ``scenes`` (old scenes and their records removed)."""
        ...

    def set_texts(
        self, owner_id: uuid.UUID, video_id: uuid.UUID, ordinal: int, texts: Mapping[str, str]
    ) -> Scene | None:
        """Set text columns of the video's scene ``ordinal``; the scene now, or None if absent."""
        ...

    def get(self, owner_id: uuid.UUID, scene_id: uuid.UUID) -> Scene | None:
        """The owner's scene (None for an unknown id or another owner's scene)."""
        ...

    def list_for_video(self, owner_id: uuid.UUID, video_id: uuid.UUID) -> list[Scene]:
        """The video's scenes in ordinal order."""
        ...

    def list_for_videos(
        self, owner_id: uuid.UUID, video_ids: Iterable[uuid.UUID] | None
    ) -> builtins.list[Scene]:
        """The owner's scenes of ``video_ids`` (``None``: of all its videos), by video then
        ordinal; one query per chunk of ids, or one query for the whole owner."""
        ...

    def not_current_under(
        self, owner_id: uuid.UUID, video_ids: Iterable[uuid.UUID] | None, context: str
    ) -> tuple[builtins.list[Scene], int]:
        """Scenes of ``video_ids`` (None: all) whose digest is not ``context`` (by video, ordinal),
        and how many have it, in one snapshot (``domain.digest``)."""
        ...

    def mark_current(self, owner_id: uuid.UUID, scenes: Sequence[Scene], context: str) -> set[uuid.UUID]:
        """Set the digest of ``scenes`` still as read (same ``updated_at``) to ``context``; the ids
        stamped (rows locked until the unit of work ends)."""
        ...

    def clear_current(self, owner_id: uuid.UUID, scene_ids: Iterable[uuid.UUID]) -> None:
        """Forget the digest of the owner's ``scene_ids`` (their records may be changing)."""
        ...

    def existing(self, owner_id: uuid.UUID, scene_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """Which of ``scene_ids`` are the owner's scenes now (ids only, one query per chunk)."""
        ...


class PersonRepository(Protocol):
    def add(self, person: Person) -> None: ...

    def add_photo(self, photo: PersonPhoto) -> None: ...

    def get(self, owner_id: uuid.UUID, person_id: uuid.UUID) -> Person | None: ...

    def lock(self, owner_id: uuid.UUID, person_id: uuid.UUID) -> Person | None:
        """The person, its row locked until the unit of work ends (``SELECT ... FOR UPDATE``):
        adding photos and deleting the person take it, so one waits for the other."""
        ...

    def list(self, owner_id: uuid.UUID) -> builtins.list[Person]: ...

    def page(
        self,
        owner_id: uuid.UUID,
        *,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None = None,
        updated_since: datetime | None = None,
    ) -> tuple[builtins.list[Person], int]:
        """Up to ``limit`` of the owner's persons, newest first, below the ``(created_at, id)``
        key ``before`` (a keyset page), only those updated at or after ``updated_since`` when
        given; and how many persons pass that filter in all."""
        ...

    def list_photos(
        self, owner_id: uuid.UUID, person_ids: Iterable[uuid.UUID] | None = None
    ) -> builtins.list[PersonPhoto]:
        """The owner's photos, oldest first (of ``person_ids`` only, when given)."""
        ...

    def set_photo_status(
        self, owner_id: uuid.UUID, photo_id: uuid.UUID, status: PhotoStatus, error: str | None
    ) -> None: ...

    def rename(self, owner_id: uuid.UUID, person_id: uuid.UUID, name: str) -> bool:
        """Set the person's name; False when the owner has no such person."""
        ...

    def delete(self, owner_id: uuid.UUID, person_id: uuid.UUID) -> bool:
        """Remove the person with its photos and their derived records (person photo and query
        embeddings); False when the owner has no such person."""
        ...

    def delete_photo(self, owner_id: uuid.UUID, person_id: uuid.UUID, photo_id: uuid.UUID) -> bool:
        """Remove one photo of the person with its derived record; False when the owner's
        person has no such photo."""
        ...


class EmbeddingRecordRepository(Protocol):
    """Derived records of every step, keyed by (step, subject id, key)."""

    def states(
        self, step: EmbeddingStepType, owner_id: uuid.UUID, subject_ids: Iterable[uuid.UUID] | None
    ) -> dict[RecordKey, RecordState]:
        """Fingerprint and input hash of the owner's records of ``step`` among ``subject_ids``
        (``None``: all of the owner's records of that step, in one query)."""
        ...

    def get(
        self, step: EmbeddingStepType, owner_id: uuid.UUID, subject_ids: Iterable[uuid.UUID]
    ) -> dict[RecordKey, EmbeddingRecord]: ...

    def upsert(self, step: EmbeddingStepType, records: Sequence[EmbeddingRecord]) -> None:
        """Insert or replace by natural key; every record's owner must own its subject."""
        ...


class UnitOfWork(Protocol):
    """One transaction over the repositories; use as a context manager, then ``commit()``."""

    videos: VideoRepository
    scenes: SceneRepository
    persons: PersonRepository
    records: EmbeddingRecordRepository
    face_decisions: FaceDecisionRepository
    face_clusters: FaceClusterRepository
    events: EventRecorder
    """The outbox: events recorded here commit (or roll back) with the change."""

    def __enter__(self) -> UnitOfWork: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def list_owner_ids(self) -> list[uuid.UUID]:
        """Admin lookup across owners: every owner that has videos or persons."""
        ...


UnitOfWorkFactory = Callable[[], UnitOfWork]
