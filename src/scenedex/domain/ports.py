"""The interfaces the runner is given (constructor injection). Adapters implement them;
unit tests implement them with fakes (``tests/fakes.py``).

Every repository method takes the owner id and reads or writes only that owner's rows; the two
cross-owner lookups needed by admin scopes (``list_owner_ids``, ``VideoRepository.owner_of``)
are named as such.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

import numpy as np

from scenedex.domain.blobs import BlobStore as BlobStore
from scenedex.domain.errors import BadInputError
from scenedex.domain.face_clusters import FaceClusterRepository
from scenedex.domain.face_decisions import FaceDecisionRepository
from scenedex.domain.jobs import ItemKind, ItemStatus, Job, JobItem, JobStatus, JobSummary, JobTrigger
from scenedex.domain.model import (
    DetectedFace,
    EmbeddingRecord,
    Person,
    PersonPhoto,
    PhotoStatus,
    RecordState,
    Scene,
    SceneDocument,
    SearchHit,
    SearchQuery,
    Video,
    VideoStatus,
)
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.domain.spec import EmbeddingStepType

RecordKey = tuple[uuid.UUID, str]
"""(subject id, key): the natural key of a derived record within one step."""


class ImageEmbedder(Protocol):
    """CLIP-style image embedder."""

    @property
    def model_id(self) -> str:
        """Identity of architecture and weights, e.g. ``open_clip:ViT-B-32:laion2b_s34b_b79k``;
        must be known without loading the weights."""
        ...

    @property
    def preprocessing_id(self) -> str:
        """Identity of decode and preprocessing (size, resize, normalisation)."""
        ...

    def embed_images(self, images: Sequence[bytes]) -> list[np.ndarray | BadInputError]:
        """Embed encoded images (JPEG/PNG bytes). Per item: a ``(d,)`` float32 L2-normalised
        vector, or the ``BadInputError`` that item failed with (corrupt, empty, oversized)."""
        ...

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """CLIP text-tower embeddings, ``(n, d)`` float32 L2-normalised (text-to-image search)."""
        ...


class TextEmbedder(Protocol):
    """Sentence embedder for scene text channels."""

    @property
    def model_id(self) -> str: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, d)`` float32, L2-normalised, one row per text (texts are non-empty)."""
        ...


class FaceEmbedder(Protocol):
    """Face detector plus 128-d face descriptor."""

    @property
    def model_id(self) -> str: ...

    @property
    def detection_id(self) -> str:
        """Identity of detection settings (detector, upsampling, jitters)."""
        ...

    def detect_faces(self, images: Sequence[bytes]) -> list[list[DetectedFace] | BadInputError]:
        """Per image: the faces found (unmatched; may be empty) or the item's error."""
        ...


class VideoFrames(Protocol):
    def frames_at(self, source_uri: str, times_s: Sequence[float]) -> list[bytes]:
        """One JPEG per time (seconds) of a stored source video; ``BadInputError`` when it is
        gone or undecodable, ``DependencyUnavailableError`` when the store is down."""
        ...


class SearchIndex(Protocol):
    """Where scene documents are indexed for search."""

    def upsert(self, documents: Sequence[SceneDocument]) -> Mapping[uuid.UUID, str]:
        """Insert or replace documents by scene id (idempotent). Returns the documents the
        index rejected, scene id -> reason (empty when every document was written): a rejected
        document fails its scene, not the run. A document the index already holds in a newer
        version is not a rejection. Raises when nothing could be written (unreachable index)."""
        ...

    def states(
        self, owner_id: uuid.UUID, scene_ids: Iterable[uuid.UUID] | None
    ) -> dict[uuid.UUID, RecordState]:
        """Fingerprint and input hash of the owner's indexed documents among ``scene_ids``
        (``None``: all of the owner's documents, read set-wise for planning large scopes)."""
        ...

    def delete(self, owner_id: uuid.UUID, scene_ids: Iterable[uuid.UUID]) -> None:
        """Remove the owner's documents for ``scene_ids`` (missing ones are ignored)."""
        ...

    def search(self, owner_id: uuid.UUID, query: SearchQuery, k: int) -> builtins.list[SearchHit]:
        """The owner's ``k`` nearest scenes for ``query``, best first (filtered by owner before
        ranking, so k hits come back whenever the owner has k comparable documents)."""
        ...


@runtime_checkable
class IndexGeneration(Protocol):
    """Optional on a ``SearchIndex`` whose documents can vanish wholesale (an index created anew)."""

    def generation(self) -> str | None:
        """Id of the index ``states`` reads, new when it is created anew (None: there is none);
        raises ``TransientError`` when the index cannot be reached."""
        ...


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
        self, owner_id: uuid.UUID, *, status: VideoStatus | None = None, limit: int = 50, offset: int = 0
    ) -> builtins.list[Video]:
        """One page of the owner's videos (with ``status`` when given), oldest first."""
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

    def list_photos(self, owner_id: uuid.UUID) -> builtins.list[PersonPhoto]: ...

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


# -- jobs ----------------------------------------------------------------------------


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

    def unsent_video_items(self, job_id: uuid.UUID, limit: int) -> builtins.list[JobItem]:
        """Up to ``limit`` queued video items without a message, the owners interleaved
        (round robin, owners in id order)."""
        ...

    def unfinished_items(self, job_id: uuid.UUID) -> builtins.list[JobItem]: ...

    def waiting_counts(self) -> dict[str, int]:
        """Items ``waiting`` over all jobs, by what they wait on (a dependency, or ``retry``)."""
        ...

    def set_message_ids(
        self, job_id: uuid.UUID, message_ids: Sequence[tuple[ItemKind, uuid.UUID, str]]
    ) -> None: ...

    def set_plan_message_id(self, job_id: uuid.UUID, message_id: str) -> None: ...

    def summary(self, job_id: uuid.UUID) -> JobSummary | None: ...

    def active_jobs(self) -> builtins.list[Job]:
        """Queued, running and paused jobs, oldest first."""
        ...


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
