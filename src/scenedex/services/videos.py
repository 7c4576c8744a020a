"""The video use cases: create (over HTTP), ingest on a worker, read, change scene texts,
delete. The API routes (``api/routes/videos.py``), the CLI (``scenedex video ...``) and the
actors (``ingest_video``, ``delete_video``) call these; they parse, call, and map errors.

Lifecycle (``VideoStatus``): ``create_video`` writes a ``queued`` row and sends
``ingest_video``; ``ingest_queued_video`` (the actor's work) fetches the source from the blob
store (or downloads an allow-listed https URL through the SSRF guard: ``SourcePolicy``,
``Download``), cuts it (the caller's scenes, or scene detection) and writes keyframes and
scenes, then the video is ``embedding`` until its embed job finishes (``mark_ready``). A source
that is not a readable video fails the video (``failed`` + ``error``, no scenes, no retry); so
does a download refused by the guard, over the size limit or answered with a 4xx, while a
timeout, a connection error or a 5xx is transient (the actor retries it).

At-least-once safety: every blob key and scene id is derived from the video id and the scene
ordinal (``keyframe_key``, ``scene_id``), scenes are written in one transaction that first
locks the video row and only while it is ``ingesting``, so a second delivery writes the same
blobs and finds the scenes already there.

Deletion (``delete_video``) removes documents, then rows (the composite foreign keys cascade to
scenes and records), then documents again, then the blobs under ``video_prefix``. A reprocess
racing it cannot leave a document behind: the runner checks after each index write that its
scenes still exist and deletes the documents of those that vanished (``ReprocessRunner``
``_reindex``); whichever of the two writes last, the document goes.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from scenedex.adapters.images import decode_image
from scenedex.adapters.subtitles import Cue, load_cues, transcript_for
from scenedex.domain.blobs import owner_key, upload_key
from scenedex.domain.errors import (
    BadInputError,
    BlobNotFoundError,
    BlobTooLargeError,
    ConflictError,
    InvalidRequestError,
    TransientError,
)
from scenedex.domain.events import EventType, video_event
from scenedex.domain.limits import (
    DURATION_TOLERANCE_S,
)
from scenedex.domain.model import Scene, Video, VideoStatus, new_id
from scenedex.domain.ports import BlobStore, UnitOfWork, UnitOfWorkFactory
from scenedex.services.ingest import keyframe_key, source_key
from scenedex.services.video_records import (
    DeletedVideo,
    VideoDetail,
    delete_video,
    get_video,
    list_videos,
    request_deletion,
    set_scene_texts,
    video_status,
)
from scenedex.services.video_sources import (
    MAX_SCENES,
    TEXT_FIELDS,
    URL_HOSTS_SETTING,
    CreatedVideo,
    Download,
    IngestLimits,
    NewVideo,
    SendMessage,
    SourcePolicy,
    UpstreamScene,
    VideoCutter,
    check_blobs,
    parse_scenes,
    validate,
)

log = logging.getLogger("scenedex.videos")

__all__ = [  # the video use cases, with what they take and return (defined in video_records/_sources)
    "MAX_SCENES",
    "TEXT_FIELDS",
    "URL_HOSTS_SETTING",
    "CreatedVideo",
    "DeletedVideo",
    "Download",
    "IngestLimits",
    "NewVideo",
    "SendMessage",
    "SourcePolicy",
    "UpstreamScene",
    "VideoCutter",
    "VideoDetail",
    "check_blobs",
    "check_scene_times",
    "create_video",
    "delete_video",
    "fail_ingest",
    "get_video",
    "ingest_local_file",
    "ingest_queued_video",
    "list_videos",
    "mark_ready",
    "parse_scenes",
    "request_deletion",
    "scene_id",
    "set_scene_texts",
    "validate",
    "video_status",
]


def create_video(
    new: NewVideo,
    owner_id: uuid.UUID,
    *,
    uow_factory: UnitOfWorkFactory,
    policy: SourcePolicy,
    send_ingest: SendMessage,
    blobs: BlobStore | None = None,
) -> CreatedVideo:
    """Write a ``queued`` video and send ``ingest_video`` for it.

    With an ``external_id`` the owner already used: the same video (``created`` False), and
    ``ingest_video`` is sent again while it is still queued (a lost message heals); raises
    ``ConflictError`` when that video was created from other fields. Raises as ``validate``,
    and, given ``blobs``, as ``check_blobs`` when the video is new (nothing is written then).
    """
    validate(new, policy, owner_id)
    title = new.title or PurePosixPath(urlsplit(new.source_uri).path).stem or "untitled"
    video = Video(
        id=new_id(),
        owner_id=owner_id,
        title=title,
        source_uri=new.source_uri,
        duration_s=0.0,
        status=VideoStatus.QUEUED,
        external_id=new.external_id,
        ingest=new.ingest_json(),
    )
    with uow_factory() as uow:
        stored, created = uow.videos.add_or_get(video)
        if created and blobs is not None:  # a replay finds its video even once the upload is gone
            check_blobs(new, policy, blobs)  # raises: the row is rolled back
        uow.commit()
    if not created and (stored.ingest != video.ingest or (new.title and stored.title != new.title)):
        raise ConflictError(
            f"external_id {new.external_id!r} is video {stored.id}, created with other fields"
        )
    message_id = None
    if created or stored.status is VideoStatus.QUEUED:
        message_id = send_ingest(stored.id, owner_id)
    return CreatedVideo(stored, message_id, created)


def scene_id(video_id: uuid.UUID, ordinal: int) -> uuid.UUID:
    """The id of a video's scene ``ordinal``: derived, so a redelivered ingest writes the same."""
    return uuid.uuid5(video_id, f"scene/{ordinal}")


def ingest_queued_video(
    video_id: uuid.UUID,
    *,
    uow_factory: UnitOfWorkFactory,
    blobs: BlobStore,
    cutter: VideoCutter,
    download: Download | None = None,
    limits: IngestLimits | None = None,
) -> Video | None:
    """The ``ingest_video`` actor's work: fetch, cut, keyframes and scenes of a queued video.

    Every blob read is confined to the video owner's prefix (a row written before that check
    existed is held to it too) and capped by ``limits`` (default ``IngestLimits()``) before it
    is read; keyframes the caller named must decode as images; upstream scene times must lie
    within the probed duration (``limits.DURATION_TOLERANCE_S``). Each of these fails the
    video with an error naming what was wrong.

    Returns the video when it is ready to embed (``embedding``: this call or an earlier
    delivery ingested it), None when there is nothing to embed (deleted, failed, ready, or a
    video without an ingest request). A source that cannot be read as a video, or a URL that
    ``download`` refuses (None: URLs are not fetched), fails the video with its error (nothing
    raised: retrying cannot help); storage outages and transient download errors raise.
    """
    with uow_factory() as uow:
        owner_id = uow.videos.owner_of(video_id)
        video = uow.videos.get(owner_id, video_id) if owner_id else None
        if video is None or video.ingest is None:
            return None
        if video.status is VideoStatus.EMBEDDING:
            return video
        if video.status not in (VideoStatus.QUEUED, VideoStatus.INGESTING):
            return None
        uow.videos.update(video.owner_id, video_id, status=VideoStatus.INGESTING, when=_INGESTABLE)
        uow.commit()
    try:
        duration_s, source_copy, scenes = _cut(video, blobs, cutter, download, limits or IngestLimits())
    except BadInputError as error:
        error = BadInputError(_TEMP_PATH.sub("the source", str(error)))
        log.warning("video %s failed: %s", video_id, error)
        with uow_factory() as uow:
            _set_status(uow, video.owner_id, video_id, VideoStatus.FAILED, error=str(error), when=_INGESTABLE)
            uow.commit()
        return None
    with uow_factory() as uow:
        current = uow.videos.lock(video.owner_id, video_id)
        if current is None or current.status is not VideoStatus.INGESTING:
            return current if current is not None and current.status is VideoStatus.EMBEDDING else None
        uow.scenes.replace_for_video(video.owner_id, video_id, scenes)
        uow.videos.update(
            video.owner_id,
            video_id,
            status=VideoStatus.EMBEDDING,
            error=None,
            duration_s=duration_s,
            source_uri=source_copy,
        )
        uow.commit()
    return replace(video, status=VideoStatus.EMBEDDING, duration_s=duration_s, source_uri=source_copy)


_INGESTABLE = (VideoStatus.QUEUED, VideoStatus.INGESTING)
_TEMP_PATH = re.compile(r"\S*scenedex-ingest-[^/\s]+/[^\s:]+")
"""The worker's temporary copy in an error message (the caller knows its own URI instead)."""


def _cut(
    video: Video, blobs: BlobStore, cutter: VideoCutter, download: Download | None, limits: IngestLimits
) -> tuple[float, str, list[Scene]]:
    """Duration, URI of the source copy, and the scenes (keyframes written) of ``video``."""
    assert video.ingest is not None
    source_uri: str = video.ingest["source_uri"]
    upstream = NewVideo.scenes_from(video.ingest)
    subtitles_uri = video.ingest.get("subtitles_uri")
    suffix = PurePosixPath(urlsplit(source_uri).path).suffix.lower()[:8] or ".bin"
    fetch = _Fetcher(blobs, download, limits, video.owner_id)
    with tempfile.TemporaryDirectory(prefix="scenedex-ingest-") as tmp:
        path = fetch(source_uri, Path(tmp) / f"source{suffix}", "source")
        if path.stat().st_size == 0:
            raise BadInputError(f"source {source_uri} is empty (0 bytes)")
        cues: Sequence[Cue] = ()
        if subtitles_uri:
            subtitles = (
                Path(tmp) / f"subtitles{PurePosixPath(urlsplit(subtitles_uri).path).suffix.lower()[:8]}"
            )
            cues = load_cues(fetch(subtitles_uri, subtitles, "subtitles"))
        if upstream is None:
            detected = cutter.detect(path)
            duration_s = detected.duration_s
            cuts = [
                (
                    UpstreamScene(c.start_s, c.end_s, transcript=transcript_for(c.start_s, c.end_s, cues)),
                    c.keyframe_jpeg,
                )
                for c in detected.scenes
            ]
        else:
            missing = [s for s in upstream if s.keyframe_uri is None]
            middles = [(s.start_s + s.end_s) / 2 for s in missing]
            duration_s, frames = cutter.frames_at(path, middles)
            check_scene_times(upstream, duration_s)
            grabbed = dict(zip((id(s) for s in missing), frames, strict=True))
            cuts = [
                (
                    replace(s, transcript=s.transcript or transcript_for(s.start_s, s.end_s, cues)),
                    grabbed[id(s)] if s.keyframe_uri is None else fetch.image(s.keyframe_uri, Path(tmp), i),
                )
                for i, s in enumerate(upstream)
            ]
        source_copy = blobs.write_file(source_key(video.owner_id, video.id, suffix), path)
    scenes = [_scene(video, blobs, ordinal, cut, jpeg) for ordinal, (cut, jpeg) in enumerate(cuts)]
    return duration_s, source_copy, scenes


def _scene(video: Video, blobs: BlobStore, ordinal: int, cut: UpstreamScene, jpeg: bytes) -> Scene:
    if not jpeg:
        raise BadInputError(f"scene {ordinal}: the keyframe is empty (0 bytes)")
    return Scene(
        id=scene_id(video.id, ordinal),
        video_id=video.id,
        owner_id=video.owner_id,
        ordinal=ordinal,
        start_s=cut.start_s,
        end_s=cut.end_s,
        keyframe_uri=blobs.write(keyframe_key(video.owner_id, video.id, ordinal), jpeg),
        keyframe_sha256=hashlib.sha256(jpeg).hexdigest(),
        transcript=cut.transcript,
        visual_description=cut.visual_description,
        summary=cut.summary,
    )


def check_scene_times(scenes: Sequence[UpstreamScene], duration_s: float) -> None:
    """Raises ``BadInputError`` naming the first scene that starts at or after the probed
    ``duration_s`` (seconds) or ends more than ``DURATION_TOLERANCE_S`` past it."""
    for i, scene in enumerate(scenes):
        if scene.start_s >= duration_s or scene.end_s > duration_s + DURATION_TOLERANCE_S:
            raise BadInputError(
                f"scenes[{i}] [{scene.start_s:g}, {scene.end_s:g}) s lies outside the video, which is "
                f"{duration_s:.3f} s long"
            )


@dataclass(frozen=True)
class _Fetcher:
    """Fetches what an ingest reads into local files: blobs under the owner's prefix within
    their caps (``IngestLimits``), or http(s) URLs outside the store through ``download``."""

    blobs: BlobStore
    download: Download | None
    limits: IngestLimits
    owner_id: uuid.UUID

    def __call__(self, uri: str, path: Path, what: str) -> Path:
        """``path``, holding the bytes at ``uri``. Errors name ``what``: ``BadInputError``
        (missing, another owner's, refused, too large) or ``TransientError`` (retry)."""
        blob_root = self.blobs.root_uri.rstrip("/") + "/"
        if urlsplit(uri).scheme not in ("http", "https") or uri.startswith(blob_root):
            if owner_key(self.blobs.root_uri, self.owner_id, uri) is None:
                raise BadInputError(f"{what}: no object at {uri} for this owner")
            try:
                self.blobs.read_to_file(uri, path, self.limits.cap(what))
            except BlobNotFoundError:
                raise BadInputError(f"{what}: no object at {uri} for this owner") from None
            except BlobTooLargeError as error:
                raise BadInputError(f"{what}: {error}") from None
            except BadInputError:
                raise BadInputError(f"{what}: no object at {uri} for this owner") from None
            return path
        if self.download is None:
            raise BadInputError(f"{what}: URL sources are not fetched here ({uri})")
        try:
            self.download(uri, path)
        except BadInputError as error:
            raise BadInputError(f"{what}: {error}") from None
        except TransientError as error:
            raise TransientError(f"{what}: {error}") from None
        if what != "source" and path.stat().st_size > self.limits.cap(what):
            raise BadInputError(f"{what}: {uri} is larger than the limit of {self.limits.cap(what)} bytes")
        return path

    def image(self, uri: str, folder: Path, ordinal: int) -> bytes:
        """The bytes of scene ``ordinal``'s keyframe at ``uri``, checked to decode as an image
        within ``max_image_bytes`` / ``max_image_pixels``; ``BadInputError`` naming the scene."""
        what = f"scenes[{ordinal}].keyframe_uri"
        data = self(uri, folder / f"keyframe-{ordinal}", "keyframe").read_bytes()
        try:
            decode_image(data, max_bytes=self.limits.max_image_bytes, max_pixels=self.limits.max_image_pixels)
        except BadInputError as error:
            raise BadInputError(f"{what}: {uri} is not a usable image: {error}") from None
        return data


def mark_ready(
    owner_id: uuid.UUID, video_id: uuid.UUID, since: datetime, *, uow_factory: UnitOfWorkFactory
) -> bool:
    """``embedding`` -> ``ready`` after an embed run that started at ``since``, unless the video
    changed after that (texts changed mid-run: the next embed marks it). True if it did."""
    with uow_factory() as uow:
        video = uow.videos.lock(owner_id, video_id)
        if video is None or video.status is not VideoStatus.EMBEDDING or video.updated_at > since:
            return False
        _set_status(uow, owner_id, video_id, VideoStatus.READY)
        uow.commit()
        return True


_STATUS_EVENTS = {VideoStatus.READY: EventType.VIDEO_READY, VideoStatus.FAILED: EventType.VIDEO_FAILED}


def _set_status(
    uow: UnitOfWork, owner_id: uuid.UUID, video_id: uuid.UUID, status: VideoStatus, **values: Any
) -> None:
    """Set the video's status (``values``: other columns, ``when``) and, when it changed,
    record its ``video.ready`` / ``video.failed`` event in the same unit of work."""
    if uow.videos.update(owner_id, video_id, status=status, **values):
        video = uow.videos.get(owner_id, video_id)
        if video is not None:
            uow.events.add(video_event(_STATUS_EVENTS[status], video))


def fail_ingest(video_id: uuid.UUID, error: str, *, uow_factory: UnitOfWorkFactory) -> None:
    """A video whose ingest gave up (retries exhausted) is ``failed`` with ``error``."""
    with uow_factory() as uow:
        owner_id = uow.videos.owner_of(video_id)
        if owner_id is not None:
            _set_status(uow, owner_id, video_id, VideoStatus.FAILED, error=error, when=_INGESTABLE)
            uow.commit()


def ingest_local_file(
    path: Path,
    owner_id: uuid.UUID,
    scenes: tuple[UpstreamScene, ...] | None = None,
    *,
    uow_factory: UnitOfWorkFactory,
    blobs: BlobStore,
    cutter: VideoCutter,
    title: str | None = None,
    subtitles: Path | None = None,
    limits: IngestLimits | None = None,
) -> VideoDetail:
    """``scenedex ingest`` (and the demo): the HTTP create and the worker's ingest, run here on
    a local file (uploaded to the blob store, removed again once the video holds its copy), with
    ``scenes`` the caller's cut (None: PySceneDetect's, as for an upload without scenes). The one
    ingest path: the same checks and the same deterministic scene ids (``scene_id``) as an upload.
    Returns the video and its scenes (``embedding``, ready for its embed job; ``failed`` with its
    error for an unreadable file). Raises ``InvalidRequestError`` for a missing file."""
    uploads: list[str] = []
    for what, file in (("video", path), ("subtitles", subtitles)):
        if file is not None and not file.is_file():
            raise InvalidRequestError(f"{what} file not found: {file}")
    for file in [f for f in (path, subtitles) if f is not None]:
        with file.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        uploads.append(blobs.write_file(upload_key(owner_id, f"{digest}{file.suffix.lower()}"), file))
    new = NewVideo(
        source_uri=uploads[0],
        title=title or path.stem,
        subtitles_uri=uploads[1] if subtitles is not None else None,
        scenes=scenes,
    )
    try:
        created = create_video(
            new,
            owner_id,
            uow_factory=uow_factory,
            policy=SourcePolicy(blobs.root_uri, limits=limits or IngestLimits()),
            send_ingest=lambda v, o: "",
        )
        ingest_queued_video(
            created.video.id, uow_factory=uow_factory, blobs=blobs, cutter=cutter, limits=limits
        )
    finally:
        for uri in uploads:
            blobs.delete(uri)
    return get_video(owner_id, created.video.id, uow_factory=uow_factory)
