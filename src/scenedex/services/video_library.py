"""The owner's videos as one use-case object (``Videos``), for the API routes, the CLI and the
actors alike: create (queued, ingested on a worker), list, read, replace a scene's texts, embed,
delete; and the workers' side of an upload: its ingest, its embed step (a video-scope job of
trigger ``ingest``, planned and run inline) and its deletion. The work itself is in
``services.videos``; this object holds the parts each call needs, so an entry point's call is
one line."""

from __future__ import annotations

import builtins
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scenedex.domain.coordinator import JobCoordinator
from scenedex.domain.errors import TransientError
from scenedex.domain.jobs import ActiveJobError, JobTrigger
from scenedex.domain.logcontext import log_context
from scenedex.domain.model import Scene, Video, VideoStatus, utcnow
from scenedex.domain.ports import BlobStore, SearchIndex, UnitOfWorkFactory
from scenedex.domain.reprocess import ReprocessRunner
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.services import videos
from scenedex.services.enqueue import enqueue_embed_video
from scenedex.services.videos import (
    CreatedVideo,
    DeletedVideo,
    IngestLimits,
    NewVideo,
    SendMessage,
    SourcePolicy,
    UpstreamScene,
    VideoCutter,
    VideoDetail,
)

log = logging.getLogger("scenedex.worker")


@dataclass(frozen=True)
class VideoSenders:
    """The messages the video use cases send (``TaskSender``'s): ingest, embed, delete."""

    ingest: SendMessage
    embed: SendMessage
    delete: SendMessage


class Videos:
    """The video use cases on one process's adapters. ``runner``, ``coordinator`` and
    ``senders`` are built on first use (a process that only reads videos builds none)."""

    def __init__(
        self,
        *,
        uow_factory: UnitOfWorkFactory,
        blobs: BlobStore,
        search_index: SearchIndex,
        policy: Callable[[], SourcePolicy],
        limits: Callable[[], IngestLimits],
        cutter: Callable[[], VideoCutter],
        download: Callable[[], Any],
        runner: Callable[[], ReprocessRunner],
        coordinator: Callable[[], JobCoordinator],
        senders: Callable[[], VideoSenders],
    ) -> None:
        self._uow_factory = uow_factory
        self._blobs = blobs
        self._index = search_index
        self._policy = policy
        self._limits = limits
        self._cutter = cutter
        self._download = download
        self._runner = runner
        self._coordinator = coordinator
        self._senders = senders

    # -- the owner's requests (HTTP, CLI) ---------------------------------------------------

    def create(self, owner_id: uuid.UUID, new: NewVideo) -> CreatedVideo:
        """A ``queued`` video with ``ingest_video`` sent (``videos.create_video``: the source
        policy, the blobs the caller names checked)."""
        return videos.create_video(
            new,
            owner_id,
            uow_factory=self._uow_factory,
            policy=self._policy(),
            send_ingest=self._senders().ingest,
            blobs=self._blobs,
        )

    def list(
        self,
        owner_id: uuid.UUID,
        *,
        status: VideoStatus | None = None,
        limit: int = 50,
        offset: int = 0,
        **keyset: Any,
    ) -> builtins.list[Video]:
        """The owner's videos, oldest first by ``offset``; or newest first below a key
        (``keyset``: ``newest_first=True``, ``before=(created_at, id)``; ``updated_since``)."""
        return videos.list_videos(
            owner_id, uow_factory=self._uow_factory, status=status, limit=limit, offset=offset, **keyset
        )

    def get(self, owner_id: uuid.UUID, video_id: uuid.UUID) -> VideoDetail:
        """The owner's video with its scenes; ``NotFoundError`` for another owner's or none."""
        return videos.get_video(owner_id, video_id, uow_factory=self._uow_factory)

    def set_texts(
        self, owner_id: uuid.UUID, video_id: uuid.UUID, ordinal: int, texts: Mapping[str, str]
    ) -> tuple[Scene, str | None]:
        """Replace a scene's texts; the embed message that recomputes what changed."""
        return videos.set_scene_texts(
            owner_id,
            video_id,
            ordinal,
            texts,
            uow_factory=self._uow_factory,
            send_embed=self._senders().embed,
        )

    def owners(self) -> builtins.list[uuid.UUID]:
        """Every owner with videos or persons (an admin's scope pickers)."""
        with self._uow_factory() as uow:
            return sorted(uow.list_owner_ids(), key=str)

    def titles(self, owner_id: uuid.UUID, video_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
        """The titles of the owner's videos ``video_ids`` (the id for one that is gone)."""
        titles = {}
        with self._uow_factory() as uow:
            for video_id in set(video_ids):
                video = uow.videos.get(owner_id, video_id)
                titles[video_id] = video.title if video is not None else str(video_id)
        return titles

    def embed(self, owner_id: uuid.UUID, video_id: uuid.UUID) -> str:
        """Send ``embed_video`` for the owner's video (``NotFoundError`` for another's)."""
        return enqueue_embed_video(video_id, owner_id, runner=self._runner(), send=self._senders().embed)

    def embed_ingested(self, owner_id: uuid.UUID, video_id: uuid.UUID) -> str:
        """Send ``embed_video`` for a video this process just ingested (no ownership to check,
        no spec needed: ``scenedex ingest``)."""
        return self._senders().embed(video_id, owner_id)

    def delete_here(self, owner_id: uuid.UUID, video_id: uuid.UUID) -> DeletedVideo:
        """Mark the owner's video deleted and remove it everywhere in this process
        (``scenedex video delete``): no message is sent."""
        videos.request_deletion(
            owner_id, video_id, uow_factory=self._uow_factory, send_delete=lambda v, o: ""
        )
        return self.delete(owner_id, video_id)

    def request_deletion(self, owner_id: uuid.UUID, video_id: uuid.UUID) -> str:
        """Mark the owner's video deleted and send ``delete_video``; returns the message id."""
        return videos.request_deletion(
            owner_id, video_id, uow_factory=self._uow_factory, send_delete=self._senders().delete
        )

    def ingest_file(
        self,
        owner_id: uuid.UUID,
        path: Path,
        *,
        scenes: tuple[UpstreamScene, ...] | None = None,
        title: str | None = None,
        subtitles: Path | None = None,
    ) -> VideoDetail:
        """``scenedex ingest`` and the demo: the HTTP create and the worker's ingest, run here on
        a local file (``videos.ingest_local_file``: the upload's checks and scene ids), with the
        caller's ``scenes`` or PySceneDetect's. The video is ``embedding`` (its embed job marks it
        ``ready``), or ``failed`` with its error."""
        return videos.ingest_local_file(
            path,
            owner_id,
            scenes,
            uow_factory=self._uow_factory,
            blobs=self._blobs,
            cutter=self._cutter(),
            title=title,
            subtitles=subtitles,
            limits=self._limits(),
        )

    # -- the workers' side ------------------------------------------------------------------

    def ingest(self, video_id: uuid.UUID) -> Video | None:
        """Fetch, cut, keyframes and scenes of a queued video (``videos.ingest_queued_video``);
        the video when it is ready to embed, else None."""
        return videos.ingest_queued_video(
            video_id,
            uow_factory=self._uow_factory,
            blobs=self._blobs,
            cutter=self._cutter(),
            download=self._download(),
            limits=self._limits(),
        )

    def fail_ingest(self, video_id: uuid.UUID, error: str) -> None:
        """Fail the video with ``error`` (its ingest gave up)."""
        videos.fail_ingest(video_id, error, uow_factory=self._uow_factory)

    def delete(self, owner_id: uuid.UUID, video_id: uuid.UUID) -> DeletedVideo:
        """Remove the video everywhere: search documents, rows, blobs (``videos.delete_video``)."""
        return videos.delete_video(
            owner_id, video_id, uow_factory=self._uow_factory, blobs=self._blobs, index=self._index
        )

    def run_embed(
        self, owner_id: uuid.UUID, video_id: uuid.UUID, on_job: Callable[[uuid.UUID], None] = lambda _: None
    ) -> None:
        """The embed step of an upload: create and run (inline) the video's ``ingest`` job; a
        video ``embedding`` is ``ready`` after it (unless it changed meanwhile). An ``ingest`` job
        of this video left active by an earlier delivery (held during an outage, or killed) is
        continued instead; another active job covers the video (nothing to do), unless the video
        waits for its embed (``embedding``: ``TransientError``, retried once that job is over).
        ``on_job`` hears the job's id before it runs (the actor's held item)."""
        coordinator = self._coordinator()
        runner = self._runner()
        request = ReprocessRequest(ReprocessScope.VIDEO, video_id=video_id, owner_id=owner_id)
        started = utcnow()
        try:
            job = coordinator.store.create(request, runner.spec.version, JobTrigger.INGEST)
        except ActiveJobError as active:
            earlier = coordinator.store.get(active.active_job_id)
            if earlier is not None and earlier.trigger is JobTrigger.INGEST and earlier.status.runnable:
                job = earlier
                log.info("video %s: continuing its ingest job %s", video_id, job.id)
            elif (
                videos.video_status(owner_id, video_id, uow_factory=self._uow_factory)
                is VideoStatus.EMBEDDING
            ):
                raise TransientError(f"video {video_id}: {active}; retried once it is over") from None
            else:
                log.info("video %s: %s", video_id, active)
                return
        on_job(job.id)
        with log_context(job_id=job.id):
            coordinator.plan(job.id, inline=True)
            videos.mark_ready(owner_id, video_id, started, uow_factory=self._uow_factory)

    def _status(self, owner_id: uuid.UUID, video_id: uuid.UUID) -> VideoStatus | None:
        return videos.video_status(owner_id, video_id, uow_factory=self._uow_factory)
