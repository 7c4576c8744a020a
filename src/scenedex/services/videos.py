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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol
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
    NotFoundError,
    PayloadTooLargeError,
    TransientError,
)
from scenedex.domain.limits import (
    DEFAULT_MAX_IMAGE_BYTES,
    DURATION_TOLERANCE_S,
    MAX_MEDIA_SECONDS,
    MAX_SUBTITLES_BYTES,
)
from scenedex.domain.model import Scene, Video, VideoStatus, new_id
from scenedex.domain.ports import BlobStore, SearchIndex, UnitOfWork, UnitOfWorkFactory
from scenedex.services.ingest import keyframe_key, source_key, video_prefix

if TYPE_CHECKING:  # importing the detector would load OpenCV
    from scenedex.adapters.video import VideoScenes

log = logging.getLogger("scenedex.videos")

TEXT_FIELDS = ("transcript", "visual_description", "summary")
MAX_SCENES = 10_000
"""Most upstream scenes in one create (a 3-hour film cut every second is 10 800)."""

SendMessage = Callable[[uuid.UUID, uuid.UUID], str]
"""Sends an actor's message ``(video_id, owner_id)``; returns the message id."""

Download = Callable[[str, Path], int]
"""Streams a URL into a local file through the SSRF guard, returns its size
(``adapters.url_fetch.UrlDownloader``); raises ``BadInputError`` (refused, too large, 4xx) or
``TransientError`` (timeout, connection error, 5xx)."""

URL_HOSTS_SETTING = "SCENEDEX_INGEST__ALLOWED_URL_HOSTS"


class VideoCutter(Protocol):
    """Scene detection and frame grabs (``adapters.video.PySceneDetectSceneDetector``)."""

    def detect(self, path: str | Path) -> VideoScenes: ...

    def frames_at(self, path: str | Path, times_s: Sequence[float]) -> tuple[float, list[bytes]]:
        """The video's duration and one JPEG per time in ``times_s`` (in order)."""
        ...


@dataclass(frozen=True)
class UpstreamScene:
    """A scene as the caller's pipeline cut it: ``[start_s, end_s)`` seconds, its texts, and
    optionally its keyframe (a blob-store URI; else the frame at the scene's middle)."""

    start_s: float
    end_s: float
    keyframe_uri: str | None = None
    transcript: str = ""
    visual_description: str = ""
    summary: str = ""


@dataclass(frozen=True)
class NewVideo:
    """A create request: where the source is, and optionally the caller's own cut."""

    source_uri: str
    title: str | None = None
    external_id: str | None = None
    subtitles_uri: str | None = None
    scenes: tuple[UpstreamScene, ...] | None = None

    def ingest_json(self) -> dict[str, Any]:
        """What ``ingest_video`` needs, stored on the row (and compared on a repeated create)."""
        return {
            "source_uri": self.source_uri,
            "subtitles_uri": self.subtitles_uri,
            "scenes": None if self.scenes is None else [vars(s) for s in self.scenes],
        }

    @staticmethod
    def scenes_from(ingest: Mapping[str, Any]) -> tuple[UpstreamScene, ...] | None:
        """The upstream scenes of a stored ``ingest_json`` (None: the worker detects them)."""
        scenes = ingest.get("scenes")
        return None if scenes is None else tuple(UpstreamScene(**s) for s in scenes)


@dataclass(frozen=True)
class IngestLimits:
    """The caps of every blob an ingest reads (bytes), checked from the object's size before a
    byte is read and again while streaming: the source (``SCENEDEX_INGEST__MAX_SOURCE_BYTES``),
    keyframes given by the caller (``SCENEDEX_MAX_IMAGE_BYTES``, decoded under
    ``max_image_pixels`` before they are stored), subtitles (``limits.MAX_SUBTITLES_BYTES``)."""

    max_source_bytes: int = 2 * 1024**3
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_image_pixels: int = 50_000_000
    max_subtitles_bytes: int = MAX_SUBTITLES_BYTES

    def cap(self, what: str) -> int:
        """The cap (bytes) of a ``source``, ``subtitles`` or ``keyframe`` read."""
        if what == "source":
            return self.max_source_bytes
        return self.max_subtitles_bytes if what == "subtitles" else self.max_image_bytes


@dataclass(frozen=True)
class SourcePolicy:
    """Where sources may come from: the caller's own part of the blob store
    (``owners/{owner_id}/...`` under ``storage_root``: ``domain.blobs.owner_key``, the one
    policy image search uses too), or https URLs on ``allowed_hosts``
    (``SCENEDEX_INGEST__ALLOWED_URL_HOSTS``, lower case; empty: none), http too with
    ``allow_http`` (tests). The worker checks both again (``ingest_queued_video``)."""

    storage_root: str
    allowed_hosts: tuple[str, ...] = ()
    allow_http: bool = False
    limits: IngestLimits = field(default_factory=IngestLimits)

    def check(self, uri: str, what: str, owner_id: uuid.UUID) -> bool:
        """True when ``uri`` names a blob ``owner_id`` may read, False for an allowed URL.
        Raises ``NotFoundError`` for a store URI outside the owner's prefix (another owner's,
        not canonical: the answer a missing blob gets, ``check_blob``), ``InvalidRequestError``
        for anything else that may not be fetched."""
        root = self.storage_root.rstrip("/") + "/"
        if uri.startswith(root):
            if owner_key(self.storage_root, owner_id, uri) is None:
                raise NotFoundError(f"{what}: no object at {uri} for this owner")
            return True
        parts = urlsplit(uri)
        if parts.scheme in ("http", "https"):
            host = (parts.hostname or "").lower()
            if parts.scheme == "http" and not self.allow_http:
                raise InvalidRequestError(f"{what} must be an https URL (not http), got {uri!r}")
            if not host or host not in self.allowed_hosts:
                raise InvalidRequestError(
                    f"{what}: host {host!r} is not allowed for URL sources; an operator allows it by "
                    f"adding it to {URL_HOSTS_SETTING} (or upload the file to the blob store, {root}...)"
                )
            return False
        raise InvalidRequestError(
            f"{what} must name an object in the blob store ({root}owners/<owner_id>/...) or an "
            f"https URL on an allowed host, got {uri!r}"
        )

    def check_blob(self, blobs: BlobStore, uri: str, what: str, label: str) -> None:
        """Raises ``NotFoundError`` when nothing readable is at the (owner-checked) ``uri``
        (the same answer as another owner's blob), ``PayloadTooLargeError`` when it is over
        the cap of a ``what`` (``IngestLimits.cap``); a store outage propagates."""
        try:
            size = blobs.size(uri)
        except BadInputError:
            raise NotFoundError(f"{label}: no object at {uri} for this owner") from None
        if size > self.limits.cap(what):
            raise PayloadTooLargeError(
                f"{label}: {uri} is {size} bytes, larger than the limit of {self.limits.cap(what)} bytes"
            )


@dataclass(frozen=True)
class CreatedVideo:
    """The created (or, for a known ``external_id``, existing) video and the ``ingest_video``
    message sent for it (None: none was sent)."""

    video: Video
    message_id: str | None
    created: bool


def validate(new: NewVideo, policy: SourcePolicy, owner_id: uuid.UUID) -> None:
    """Raises ``InvalidRequestError`` for a URI the policy refuses, or scenes out of order,
    overlapping, empty, with negative or non-finite times or past ``MAX_MEDIA_SECONDS``;
    ``NotFoundError`` for a store URI outside the owner's prefix (``SourcePolicy.check``)."""
    if new.scenes is not None:
        if not new.scenes or len(new.scenes) > MAX_SCENES:
            raise InvalidRequestError(f"scenes must hold 1 to {MAX_SCENES} scenes (or be left out)")
        previous_end = 0.0
        for i, scene in enumerate(new.scenes):
            if not (0 <= scene.start_s < scene.end_s <= MAX_MEDIA_SECONDS):
                raise InvalidRequestError(
                    f"scenes[{i}]: need 0 <= start_s < end_s <= {MAX_MEDIA_SECONDS:.0f} (seconds)"
                )
            if scene.start_s < previous_end:
                raise InvalidRequestError(f"scenes[{i}] starts before the previous scene ends")
            previous_end = scene.end_s
    for _, label, uri in _named_uris(new):
        policy.check(uri, label, owner_id)


def _named_uris(new: NewVideo) -> list[tuple[str, str, str]]:
    """``(what, label, uri)`` of every URI a request names: its source, subtitles, keyframes."""
    uris = [("source", "source_uri", new.source_uri)]
    if new.subtitles_uri is not None:
        uris.append(("subtitles", "subtitles_uri", new.subtitles_uri))
    for i, scene in enumerate(new.scenes or ()):
        if scene.keyframe_uri is not None:
            uris.append(("keyframe", f"scenes[{i}].keyframe_uri", scene.keyframe_uri))
    return uris


def check_blobs(new: NewVideo, policy: SourcePolicy, blobs: BlobStore) -> None:
    """Every blob-store URI of a (validated) request names a readable blob within its cap:
    ``NotFoundError`` (missing: the same answer as another owner's) or
    ``PayloadTooLargeError``; URLs are the worker's to fetch."""
    root = blobs.root_uri.rstrip("/") + "/"
    for what, label, uri in _named_uris(new):
        if uri.startswith(root):
            policy.check_blob(blobs, uri, what, label)


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
            uow.videos.update(
                video.owner_id, video_id, status=VideoStatus.FAILED, error=str(error), when=_INGESTABLE
            )
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
        uow.videos.update(owner_id, video_id, status=VideoStatus.READY)
        uow.commit()
        return True


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
) -> list[Video]:
    """One page of the owner's videos, oldest first."""
    with uow_factory() as uow:
        return uow.videos.page(owner_id, status=status, limit=limit, offset=offset)


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
    call that dies in between), the next reprocess assesses those scenes and writes them again."""
    with uow_factory() as uow:
        scene_ids = [s.id for s in uow.scenes.list_for_video(owner_id, video_id)]
        uow.scenes.clear_current(owner_id, scene_ids)
        uow.commit()
    index.delete(owner_id, scene_ids)
    with uow_factory() as uow:
        existed = uow.videos.delete(owner_id, video_id)
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


def fail_ingest(video_id: uuid.UUID, error: str, *, uow_factory: UnitOfWorkFactory) -> None:
    """A video whose ingest gave up (retries exhausted) is ``failed`` with ``error``."""
    with uow_factory() as uow:
        owner_id = uow.videos.owner_of(video_id)
        if owner_id is not None:
            uow.videos.update(owner_id, video_id, status=VideoStatus.FAILED, error=error, when=_INGESTABLE)
            uow.commit()


def parse_scenes(data: Any) -> tuple[UpstreamScene, ...]:
    """Upstream scenes from JSON (a list of scene objects, or ``{"scenes": [...]}``);
    ``InvalidRequestError`` for anything else."""
    items = data.get("scenes") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise InvalidRequestError('scenes JSON must be a list of scenes or {"scenes": [...]}')
    fields = set(UpstreamScene.__dataclass_fields__)
    scenes = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not {"start_s", "end_s"} <= set(item) or set(item) - fields:
            raise InvalidRequestError(f"scenes[{i}]: needs start_s and end_s, may have {sorted(fields)}")
        try:
            scenes.append(
                UpstreamScene(**{**item, "start_s": float(item["start_s"]), "end_s": float(item["end_s"])})
            )
        except (TypeError, ValueError) as error:
            raise InvalidRequestError(f"scenes[{i}]: {error}") from None
    return tuple(scenes)


def ingest_local_file(
    path: Path,
    owner_id: uuid.UUID,
    scenes: tuple[UpstreamScene, ...],
    *,
    uow_factory: UnitOfWorkFactory,
    blobs: BlobStore,
    cutter: VideoCutter,
    title: str | None = None,
    subtitles: Path | None = None,
    limits: IngestLimits | None = None,
) -> Video:
    """``scenedex ingest --scenes``: the HTTP create and the worker's ingest, run here on a
    local file (uploaded to the blob store, removed again once the video holds its copy).
    Returns the video (``embedding``; ``failed`` with its error for an unreadable file)."""
    uploads: list[str] = []
    for file in (path, subtitles):
        if file is not None and not file.is_file():
            raise InvalidRequestError(f"file not found: {file}")
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
    return get_video(owner_id, created.video.id, uow_factory=uow_factory).video
