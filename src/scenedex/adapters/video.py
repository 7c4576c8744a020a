"""Shot (scene) detection and keyframe extraction with PySceneDetect.

Times are in seconds (float) from the start of the video. Scene boundaries come from frame
numbers: a frame ``n`` starts at ``n / fps`` seconds, so the timing is exact for constant frame
rate video and an average-rate approximation for variable frame rate video.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from scenedetect import ContentDetector, SceneManager, VideoOpenFailure, VideoStream, open_video
from scenedetect.video_stream import SeekError

from scenedex.domain.errors import BadInputError

# Errors PySceneDetect / OpenCV raise on unreadable input (they are turned into BadInputError).
_DECODE_ERRORS = (VideoOpenFailure, SeekError, OSError, ValueError, cv2.error)


@dataclass(frozen=True)
class DetectedScene:
    """One shot of a video: ``[start_s, end_s)`` in seconds, plus its middle frame.

    ``keyframe_time_s`` is the start time (seconds) of the middle frame of the scene and
    ``keyframe_jpeg`` that frame as a full-resolution RGB JPEG.
    """

    start_s: float
    end_s: float
    keyframe_time_s: float
    keyframe_jpeg: bytes


@dataclass(frozen=True)
class VideoScenes:
    """All scenes of one video, contiguous from 0 to ``duration_s`` (seconds).

    ``fps`` is frames per second; ``width`` and ``height`` are in pixels.
    """

    duration_s: float
    fps: float
    width: int
    height: int
    scenes: list[DetectedScene]


class PySceneDetectSceneDetector:
    """Splits a video into scenes with PySceneDetect's ``ContentDetector`` (fast cuts).

    This is CPU work: one decoding pass over the whole video for detection (PySceneDetect
    downscales frames for scoring), then one seek and one frame decode per scene to grab the
    keyframe. No GPU and no model weights are involved.

    Arguments:
        threshold: ``ContentDetector`` cut threshold (mean HSV change between adjacent frames,
            0-255 scale). The default 27.0 is PySceneDetect's own ``ContentDetector`` default;
            lower finds more cuts.
        min_scene_len_s: minimum scene length in seconds; converted to frames with the video's
            frame rate (PySceneDetect's default is 15 frames, 0.6 s at 25 fps).
        jpeg_quality: Pillow JPEG quality (1-100) for the keyframes.
    """

    def __init__(
        self, *, threshold: float = 27.0, min_scene_len_s: float = 0.6, jpeg_quality: int = 90
    ) -> None:
        if not (math.isfinite(threshold) and threshold > 0):
            raise ValueError(f"threshold must be a positive number, got {threshold!r}")
        if not (math.isfinite(min_scene_len_s) and min_scene_len_s >= 0):
            raise ValueError(f"min_scene_len_s must be >= 0 seconds, got {min_scene_len_s!r}")
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality!r}")
        self.threshold = float(threshold)
        self.min_scene_len_s = float(min_scene_len_s)
        self.jpeg_quality = int(jpeg_quality)

    def detect(self, path: str | Path) -> VideoScenes:
        """Detect the scenes of the video at ``path``.

        Returns scenes that cover ``[0, duration_s]`` without gaps or overlaps, times in
        seconds; a video without any cut is one scene. Each scene carries its middle frame as
        a JPEG keyframe.

        Raises:
            BadInputError: the file is missing, is not a readable video, or has no frames.
        """
        path = Path(path)
        with _opened(path) as video:
            return self._detect(video, path)

    def frames_at(self, path: str | Path, times_s: Sequence[float]) -> tuple[float, list[bytes]]:
        """The video's duration (seconds) and one JPEG per time in ``times_s`` (the frame
        shown at that time; a time past the end takes the last frame): keyframes of scenes
        given by an upstream pipeline.

        Raises:
            BadInputError: the file is missing, is not a readable video, or has no frames.
        """
        path = Path(path)
        with _opened(path) as video:
            fps = float(video.frame_rate)
            n_frames = int(video.duration.frame_num) if video.duration is not None else 0
            if n_frames <= 0 or fps <= 0:
                raise BadInputError(f"video {path} has no decodable frames")
            last = n_frames - 1
            frames = [self._read_frame(video, min(last, max(0, int(t * fps))), path) for t in times_s]
            return n_frames / fps, [self._encode_jpeg(frame) for frame in frames]

    def _detect(self, video: VideoStream, path: Path) -> VideoScenes:
        fps = float(video.frame_rate)
        width, height = video.frame_size
        if width <= 0 or height <= 0:
            raise BadInputError(f"video {path} has no usable picture size ({width}x{height})")

        manager = SceneManager()
        manager.add_detector(
            ContentDetector(threshold=self.threshold, min_scene_len=round(self.min_scene_len_s * fps))
        )
        n_frames = manager.detect_scenes(video=video)
        if n_frames <= 0:
            raise BadInputError(f"video {path} has no decodable frames")

        # Cut frames (each starts a new scene); boundaries always run from frame 0 to n_frames.
        scene_list = manager.get_scene_list(start_in_scene=True)
        cuts = sorted({start.frame_num for start, _ in scene_list[1:]})
        bounds = [0, *(c for c in cuts if 0 < c < n_frames), n_frames]

        scenes: list[DetectedScene] = []
        for start_f, end_f in pairwise(bounds):
            mid_f = start_f + (end_f - start_f - 1) // 2
            frame = self._read_frame(video, mid_f, path)
            scenes.append(
                DetectedScene(
                    start_s=start_f / fps,
                    end_s=end_f / fps,
                    keyframe_time_s=mid_f / fps,
                    keyframe_jpeg=self._encode_jpeg(frame),
                )
            )
        return VideoScenes(duration_s=n_frames / fps, fps=fps, width=width, height=height, scenes=scenes)

    @staticmethod
    def _read_frame(video: VideoStream, frame_num: int, path: Path) -> np.ndarray:
        video.seek(frame_num)
        frame = video.read()
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
            raise BadInputError(f"cannot decode frame {frame_num} of video {path}")
        return frame

    def _encode_jpeg(self, frame_bgr: np.ndarray) -> bytes:
        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="JPEG", quality=self.jpeg_quality)
        return buf.getvalue()


@contextmanager
def _opened(path: Path) -> Iterator[VideoStream]:
    """The video at ``path``, opened for decoding and released after the block; a missing,
    unreadable or undecodable file becomes a ``BadInputError`` (one line, no traceback)."""
    if not path.is_file():
        raise BadInputError(f"video file not found: {path}")
    try:
        video = open_video(str(path))
    except _DECODE_ERRORS as exc:
        raise BadInputError(f"cannot open video {path}: not a readable video file") from exc
    try:
        yield video
    except _DECODE_ERRORS as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise BadInputError(f"cannot decode video {path}: {detail}") from exc
    finally:
        capture = getattr(video, "capture", None)  # VideoStreamCv2: free the decoder now
        if capture is not None:
            capture.release()
