"""What a video upload may reference and how much: the request (``NewVideo``, the caller's
``UpstreamScene`` cut, ``parse_scenes``), the source policy (``SourcePolicy``: the blob store
under the owner's prefix, or an allow-listed https URL) with the caps of every read
(``IngestLimits``), and the checks of a create (``validate``, ``check_blobs``). ``services.videos``
applies them (and re-exports these names)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from scenedex.domain.blobs import owner_key
from scenedex.domain.errors import (
    BadInputError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
)
from scenedex.domain.limits import (
    DEFAULT_MAX_IMAGE_BYTES,
    MAX_MEDIA_SECONDS,
    MAX_SUBTITLES_BYTES,
)
from scenedex.domain.model import Video
from scenedex.domain.ports import BlobStore

if TYPE_CHECKING:  # importing the detector would load OpenCV
    from scenedex.adapters.video import VideoScenes

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
