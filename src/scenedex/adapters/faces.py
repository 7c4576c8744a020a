"""Face detection and 128-d face descriptors with dlib (HOG or CNN detector, ResNet descriptor).

The model files come from the ``face_recognition_models`` package, found on disk without
importing it (its ``__init__`` needs ``pkg_resources``, gone from current setuptools).

How the default detector and its settings were chosen (recall, false positives and ms per
image of every candidate on the labelled face check): ``docs/FACE_DETECTION.md``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from scenedex.adapters.images import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS, decode_image
from scenedex.adapters.model_files import weights_digest
from scenedex.domain.errors import BadInputError, ModelLoadError
from scenedex.domain.model import DetectedFace

log = logging.getLogger(__name__)

LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
RECOGNITION_FILE = "dlib_face_recognition_resnet_model_v1.dat"
CNN_DETECTOR_FILE = "mmod_human_face_detector.dat"
Detector = Literal["hog", "cnn"]
DEFAULT_DETECT_SIDE = 720
"""Shorter side (pixels) of the copy the default detector runs on; see docs/FACE_DETECTION.md."""


def face_models_dir() -> Path:
    """The ``models/`` folder of the installed ``face_recognition_models`` package (not
    imported); raises ``ModelLoadError`` if the package or its model files are missing."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "face models need the 'face_recognition_models' package (pip install 'scenedex[ml]')"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    missing = [name for name in (LANDMARKS_FILE, RECOGNITION_FILE) if not (folder / name).is_file()]
    if missing:
        raise ModelLoadError(
            f"face_recognition_models is missing {', '.join(missing)} in {folder}; reinstall it"
        )
    return folder


def default_threads() -> int:
    """Images processed at once by default: the CPUs this process may use (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class _Models:
    """One thread's dlib objects (dlib's detectors and networks keep per-call state, so each
    worker thread has its own; dlib releases the GIL while it computes, so threads scale)."""

    def __init__(self, folder: Path, detector: Detector) -> None:
        import dlib

        if detector == "cnn":
            self.detector: Any = dlib.cnn_face_detection_model_v1(str(folder / CNN_DETECTOR_FILE))
        else:
            self.detector = dlib.get_frontal_face_detector()
        self.predictor: Any = dlib.shape_predictor(str(folder / LANDMARKS_FILE))
        self.recogniser: Any = dlib.face_recognition_model_v1(str(folder / RECOGNITION_FILE))


class DlibFaceEmbedder:
    """``FaceEmbedder`` using dlib: a face detector (HOG, or the CNN "MMOD" detector), 5-point
    landmarks, and the ResNet v1 128-d face descriptor (faces of one person are within ~0.6
    Euclidean distance).

    - ``detector``: ``"hog"`` (dlib's frontal HOG detector, 80x80 px window) or ``"cnn"``
      (``mmod_human_face_detector.dat``; 12 s per 1280x720 image on a 2-core CPU without CUDA,
      measured, so a candidate, not a default).
    - ``detect_side``: the detector runs on a copy scaled (down or up, bicubic) so that its
      shorter side is this many pixels, and boxes are mapped back: a 1280x720 keyframe is
      searched as it is and a 176x144 one at 880x720, so the smallest face found is a fixed
      share of the frame height whatever the source resolution. ``None``: the decoded image as
      it is (at most ``max_side``), the behaviour before this setting existed.
    - ``upsample``: times the detection copy is upsampled by dlib before detection (finds
      smaller faces; each step costs ~4x time).
    - ``min_score``: smallest detection score kept (dlib's own cut-off is 0.0). The default
      0.25 drops weak false positives measured on the sample media (astronaut.png's mission
      patch scores 0.12, Big Buck Bunny's face 0.17) and, on the labelled face check, finds
      what 0.15 and 0.2 find with no false positive (0.3, the earlier default, misses a 36-px
      face in a QCIF frame).
    - ``num_jitters``: descriptor re-samplings averaged per face (1 = none; slower, slightly
      more accurate).
    - ``max_bytes``/``max_pixels``: per-image limits, see ``decode_image``.
    - ``max_side``: the decoded image is downscaled so its longer side is at most this many
      pixels; landmarks and descriptors are computed on it (or on the detection copy when that
      is larger, i.e. upscaled small frames), so a face found on a small copy still gets its
      descriptor from full-resolution pixels.
    - ``threads``: images processed at once, each thread with its own dlib objects (default:
      the CPUs available, ``default_threads``).

    Constructing checks that the model files exist (``ModelLoadError`` otherwise); dlib and the
    models are loaded lazily (first use or ``load()``), once per thread. Calls are thread-safe.
    """

    def __init__(
        self,
        *,
        detector: Detector = "hog",
        detect_side: int | None = DEFAULT_DETECT_SIDE,
        upsample: int = 0,
        min_score: float = 0.25,
        num_jitters: int = 1,
        max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        max_side: int = 1600,
        threads: int | None = None,
    ) -> None:
        if detector not in ("hog", "cnn"):
            raise ValueError(f"detector must be 'hog' or 'cnn', got {detector!r}")
        if upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {upsample}")
        if num_jitters < 1:
            raise ValueError(f"num_jitters must be >= 1, got {num_jitters}")
        if max_side < 1:
            raise ValueError(f"max_side must be >= 1, got {max_side}")
        if detect_side is not None and detect_side < 32:
            raise ValueError(f"detect_side must be >= 32 pixels or None, got {detect_side}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self._folder = face_models_dir()
        if detector == "cnn" and not (self._folder / CNN_DETECTOR_FILE).is_file():
            raise ModelLoadError(f"face_recognition_models is missing {CNN_DETECTOR_FILE} in {self._folder}")
        self._detector_kind: Detector = detector
        self._detect_side = detect_side
        self._upsample = upsample
        self._min_score = float(min_score)
        self._num_jitters = num_jitters
        self._max_bytes = max_bytes
        self._max_pixels = max_pixels
        self._max_side = max_side
        self._threads = threads or default_threads()
        self._local = threading.local()
        self._pool_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._loaded = False

    @property
    def model_id(self) -> str:
        """``dlib:resnet_v1:sha256-{16 hex of the recognition model file}`` (no model load; the
        hash is computed once)."""
        return f"dlib:resnet_v1:{weights_digest(self._folder / RECOGNITION_FILE, 'face model')}"

    @property
    def detection_id(self) -> str:
        """Detector and its settings, e.g.
        ``hog-side720-upsample0-minscore0.25-jitter1-landmarks5-maxside1600``; without
        ``detect_side`` the id every record had before it existed, e.g.
        ``hog-upsample1-minscore0.3-jitter1-landmarks5-maxside1600``. ``threads`` is not part of it: it
        does not change what is found."""
        side = f"-side{self._detect_side}" if self._detect_side is not None else ""
        return (
            f"{self._detector_kind}{side}-upsample{self._upsample}-minscore{self._min_score:g}"
            f"-jitter{self._num_jitters}-landmarks5-maxside{self._max_side}"
        )

    @property
    def threads(self) -> int:
        """Images processed at once."""
        return self._threads

    def load(self) -> None:
        """Load dlib and this thread's models now (otherwise done on first use). Idempotent,
        thread-safe; raises ``ModelLoadError`` if dlib or a model file cannot be loaded."""
        self._models()

    def _models(self) -> _Models:
        models: _Models | None = getattr(self._local, "models", None)
        if models is None:
            try:
                models = _Models(self._folder, self._detector_kind)
            except (ImportError, RuntimeError, OSError) as exc:
                raise ModelLoadError(f"cannot load dlib face models from {self._folder}: {exc}") from exc
            self._local.models = models
            if not self._loaded:
                self._loaded = True
                log.info("loaded %s (%s, %d thread(s))", self.model_id, self.detection_id, self._threads)
        return models

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="faces")
            return self._pool

    def close(self) -> None:
        """Stop the worker threads (a later call starts them again)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def detect_faces(self, images: Sequence[bytes]) -> list[list[DetectedFace] | BadInputError]:
        """Find faces in encoded images (JPEG/PNG... bytes), in order, ``threads`` at a time.

        Per image: the faces found, unmatched (possibly none), or the ``BadInputError`` the item
        failed with (empty, oversized, too many pixels, corrupt). Each face has ``bbox`` =
        ``(left, top, right, bottom)``, int pixels of the decoded (EXIF-upright) image, clipped
        to it, right/bottom exclusive (``image.crop(bbox)`` is the face), and ``descriptor`` =
        ``(128,)`` float32 (Euclidean space, not normalised). A bad item does not stop the
        others. Loads the models on first use; raises ``ModelLoadError`` if they cannot be."""
        if not images:
            return []
        self.load()
        if self._threads == 1 or len(images) == 1:
            return [self._one(data) for data in images]
        return list(self._executor().map(self._one, images))

    def _one(self, data: bytes) -> list[DetectedFace] | BadInputError:
        try:
            image = decode_image(data, max_bytes=self._max_bytes, max_pixels=self._max_pixels)
        except BadInputError as exc:
            return exc
        return self._faces_in(image, self._models())

    def _faces_in(self, image: Image.Image, models: _Models) -> list[DetectedFace]:
        import dlib

        width, height = image.size
        detected, described = detection_copies(image, self._max_side, self._detect_side)
        pixels = np.ascontiguousarray(np.asarray(detected, dtype=np.uint8))
        boxes = self._detect(models, pixels)
        if not boxes:
            return []
        if described is not detected:
            pixels = np.ascontiguousarray(np.asarray(described, dtype=np.uint8))
        # detection copy -> descriptor copy -> decoded image, per axis
        to_described = (described.size[0] / detected.size[0], described.size[1] / detected.size[1])
        shapes = dlib.full_object_detections()
        for left, top, right, bottom in boxes:
            rectangle = dlib.rectangle(
                round(left * to_described[0]),
                round(top * to_described[1]),
                round(right * to_described[0]) - 1,
                round(bottom * to_described[1]) - 1,
            )
            shapes.append(models.predictor(pixels, rectangle))
        descriptors = models.recogniser.compute_face_descriptor(pixels, shapes, self._num_jitters)
        sx, sy = width / detected.size[0], height / detected.size[1]
        faces = []
        for (left, top, right, bottom), descriptor in zip(boxes, descriptors, strict=True):
            box = (
                min(max(round(left * sx), 0), width),
                min(max(round(top * sy), 0), height),
                min(max(round(right * sx), 0), width),
                min(max(round(bottom * sy), 0), height),
            )
            faces.append(
                DetectedFace(bbox=box, descriptor=np.asarray(descriptor, dtype=np.float32).reshape(128))
            )
        return faces

    def _detect(self, models: _Models, pixels: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Boxes ``(left, top, right_exclusive, bottom_exclusive)`` in ``pixels`` coordinates,
        scores at least ``min_score``, in the detector's order."""
        if self._detector_kind == "cnn":
            found = models.detector(pixels, self._upsample)
            pairs = [(d.rect, d.confidence) for d in found]
        else:
            rects, scores, _ = models.detector.run(pixels, self._upsample, self._min_score)
            pairs = list(zip(rects, scores, strict=True))
        return [
            (r.left(), r.top(), r.right() + 1, r.bottom() + 1)
            for r, score in pairs
            if score >= self._min_score
        ]


def detection_copies(
    image: Image.Image, max_side: int, detect_side: int | None
) -> tuple[Image.Image, Image.Image]:
    """``(detected, described)``: the copy a detector runs on (shorter side ``detect_side``
    pixels; None: the descriptor copy) and the copy descriptors are computed from (longer side
    at most ``max_side``, or the detection copy when that is larger), shared by both face
    runtimes so that they place the same boxes."""
    width, height = image.size
    described = _scaled(image, min(1.0, max_side / max(width, height)))
    detected = described
    if detect_side is not None:
        detected = _scaled(image, detect_side / min(width, height))
        if detected.size[0] * detected.size[1] > described.size[0] * described.size[1]:
            described = detected
    return detected, described


def _scaled(image: Image.Image, factor: float) -> Image.Image:
    """``image`` resized by ``factor`` (bilinear when shrinking, bicubic when enlarging; the
    same image when ``factor`` rounds to its own size)."""
    width, height = image.size
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    if size == image.size:
        return image
    if factor < 1:
        return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return image.resize(size, Image.Resampling.BICUBIC)
