"""The owner's videos as records: read one (``get_video``) or a page (``list_videos``), replace a
scene's texts (``set_scene_texts``), the status of one (``video_status``), and deletion
(``request_deletion`` over HTTP and the CLI, ``delete_video`` on a worker or inline).
``services.videos`` re-exports these names.

Deletion removes documents, then rows (the composite foreign keys cascade to scenes and records),
then documents again, then the blobs under ``video_prefix``; see ``services.videos``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scenedex.domain.errors import (
    InvalidRequestError,
    NotFoundError,
)
from scenedex.domain.events import EventType, video_event
from scenedex.domain.model import Scene, Video, VideoStatus
from scenedex.domain.ports import BlobStore, SearchIndex, UnitOfWork, UnitOfWorkFactory
from scenedex.services.ingest import video_prefix
from scenedex.services.video_sources import TEXT_FIELDS, SendMessage

log = logging.getLogger("scenedex.videos")


@dataclass(frozen=True)
class VideoDetail:
    """A video with its scenes in ordinal order."""

    video: Video
    scenes: tuple[Scene, ...]


def get_video(owner_id: uuid.UUID, video_id: uuid.UUID, *, uow_factory: UnitOfWorkFactory) -> VideoDetail:
    """The owner's video with its scenes; ``NotFoundError`` for unknown or another owner's ids."""
    with uow_factory() as uow:
        video = _owned_video(uow, owner_id, video_id)
        return VideoDetail(video, tuple(uow.scenes.list_for_video(owner_id, video_id)))


def _owned_video(uow: UnitOfWork, owner_id: uuid.UUID, video_id: uuid.UUID) -> Video:
    """The owner's video; ``NotFoundError`` for unknown or another owner's ids."""
    video = uow.videos.get(owner_id, video_id)
    if video is None:
        raise NotFoundError(f"video {video_id} not found")
    return video


def list_videos(
    owner_id: uuid.UUID,
    *,
    uow_factory: UnitOfWorkFactory,
    status: VideoStatus | None = None,
    limit: int = 50,
    offset: int = 0,
    **keyset: Any,
) -> list[Video]:
    """One page of the owner's videos, oldest first (or ``keyset``: ``newest_first`` and
    ``before``, ``VideoRepository.page``)."""
    with uow_factory() as uow:
        return uow.videos.page(owner_id, status=status, limit=limit, offset=offset, **keyset)


def set_scene_texts(
    owner_id: uuid.UUID,
    video_id: uuid.UUID,
    ordinal: int,
    texts: Mapping[str, str],
    *,
    uow_factory: UnitOfWorkFactory,
    send_embed: SendMessage,
) -> tuple[Scene, str | None]:
    """Replace the given texts of one scene (``transcript``, ``visual_description``,
    ``summary``). When one changed, the video is ``embedding`` again and ``embed_video`` is
    sent: its runner recomputes exactly the changed channels' records and the scene's document
    (their input hashes changed; nothing else did). Returns the scene and the message id
    (None: nothing changed). ``NotFoundError`` for an unknown video or scene."""
    unknown = set(texts) - set(TEXT_FIELDS)
    if unknown:
        raise InvalidRequestError(f"unknown text fields: {sorted(unknown)}")
    with uow_factory() as uow:
        video = uow.videos.lock(owner_id, video_id)
        before = uow.scenes.set_texts(owner_id, video_id, ordinal, {}) if video else None
        if video is None or before is None:
            raise NotFoundError(f"scene {ordinal} of video {video_id} not found")
        changed = {k: v for k, v in texts.items() if getattr(before, k) != v}
        if not changed:
            return before, None
        scene = uow.scenes.set_texts(owner_id, video_id, ordinal, changed)
        assert scene is not None
        # updated_at moves too: an embed run that started before does not mark it ready.
        uow.videos.update(owner_id, video_id, status=VideoStatus.EMBEDDING)
        uow.commit()
    return scene, send_embed(video_id, owner_id)


def request_deletion(
    owner_id: uuid.UUID, video_id: uuid.UUID, *, uow_factory: UnitOfWorkFactory, send_delete: SendMessage
) -> str:
    """Check the owner's video exists and send ``delete_video``; returns the message id.
    ``NotFoundError`` for unknown or another owner's ids (a video already deleted)."""
    with uow_factory() as uow:
        _owned_video(uow, owner_id, video_id)
    return send_delete(video_id, owner_id)


@dataclass(frozen=True)
class DeletedVideo:
    """What ``delete_video`` found: whether the row existed, its scenes and blobs removed."""

    video_existed: bool
    scenes: int
    blobs: int


def delete_video(
    owner_id: uuid.UUID,
    video_id: uuid.UUID,
    *,
    uow_factory: UnitOfWorkFactory,
    blobs: BlobStore,
    index: SearchIndex,
) -> DeletedVideo:
    """Remove the owner's video everywhere: search documents (every index the adapter knows),
    rows (scenes and derived records cascade), documents again (a reprocess that wrote one
    between), blobs under the video's prefix. Idempotent: a second call finds nothing (and
    still clears the prefix, in case a first call died after the rows). The scenes' digest
    (``domain.digest``) is cleared before their documents go: should the rows outlive them (a
    call that dies in between), the next reprocess assesses those scenes and writes them again.
    ``video.deleted`` is recorded with the rows' deletion (documents already gone)."""
    with uow_factory() as uow:
        scene_ids = [s.id for s in uow.scenes.list_for_video(owner_id, video_id)]
        uow.scenes.clear_current(owner_id, scene_ids)
        uow.commit()
    index.delete(owner_id, scene_ids)
    with uow_factory() as uow:
        video = uow.videos.get(owner_id, video_id)
        existed = uow.videos.delete(owner_id, video_id)
        if existed and video is not None:
            uow.events.add(video_event(EventType.VIDEO_DELETED, video, scenes=len(scene_ids)))
        uow.commit()
    index.delete(owner_id, scene_ids)
    removed = blobs.delete_prefix(video_prefix(owner_id, video_id))
    return DeletedVideo(existed, len(scene_ids), removed)


def video_status(
    owner_id: uuid.UUID, video_id: uuid.UUID, *, uow_factory: UnitOfWorkFactory
) -> VideoStatus | None:
    """The video's status (None: the owner has no such video)."""
    with uow_factory() as uow:
        video = uow.videos.get(owner_id, video_id)
        return video.status if video else None
