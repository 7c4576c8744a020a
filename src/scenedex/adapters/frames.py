"""Frames of stored source videos at given times (``VideoFrames``): the source blob is read to
a temporary file once per call and decoded by seeking (``PySceneDetectSceneDetector.frames_at``:
one seek and one frame decode per time, no full decode of the video)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from scenedex.domain.errors import BadInputError
from scenedex.domain.ports import BlobStore


class BlobVideoFrames:
    """``VideoFrames`` over a blob store. ``jpeg_quality``: Pillow quality of the frames (90,
    as keyframes are stored)."""

    def __init__(self, blobs: BlobStore, *, jpeg_quality: int = 90) -> None:
        self._blobs = blobs
        self._jpeg_quality = jpeg_quality

    def frames_at(self, source_uri: str, times_s: Sequence[float]) -> list[bytes]:
        """See ``VideoFrames.frames_at``; a missing or empty source is a ``BadInputError``."""
        if not times_s:
            return []
        data = self._blobs.read(source_uri)
        if not data:
            raise BadInputError(f"source video {source_uri} is empty (0 bytes)")
        from scenedex.adapters.video import PySceneDetectSceneDetector  # OpenCV: loaded when used

        suffix = PurePosixPath(urlsplit(source_uri).path).suffix[:8] or ".mp4"
        with tempfile.NamedTemporaryFile(suffix=suffix) as file:
            file.write(data)
            file.flush()
            decoder = PySceneDetectSceneDetector(jpeg_quality=self._jpeg_quality)
            _, frames = decoder.frames_at(file.name, times_s)
        return frames
