"""Face detection and 128-d face descriptors with dlib (HOG detector, ResNet descriptor).

The model files come from the ``face_recognition_models`` package, found on disk without
importing it (its ``__init__`` needs ``pkg_resources``, gone from current setuptools).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from scenedex.adapters.images import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS, decode_image
from scenedex.adapters.model_files import weights_digest
from scenedex.domain.errors import BadInputError, ModelLoadError
from scenedex.domain.model import DetectedFace

log = logging.getLogger(__name__)

LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
RECOGNITION_FILE = "dlib_face_recognition_resnet_model_v1.dat"


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


class DlibFaceEmbedder:
    """``FaceEmbedder`` using dlib: HOG frontal face detector, 5-point landmarks, and the
    ResNet v1 128-d face descriptor (faces of one person are within ~0.6 Euclidean distance).

    - ``upsample``: times the image is upsampled before detection (finds smaller faces; each
      step costs ~4x time).
    - ``min_score``: smallest HOG detection score kept (dlib's own cut-off is 0.0). The default
      0.3 drops weak false positives measured on the sample media (astronaut.png's mission patch
      scores 0.12, Big Buck Bunny's face 0.17) and keeps the real faces (astronaut 1.16, a
      bikes.mp4 face 0.93 at upsample 1, 0.40 at upsample 2).
    - ``num_jitters``: descriptor re-samplings averaged per face (1 = none; higher is slower,
      slightly more accurate).
    - ``max_bytes``/``max_pixels``: per-image limits, see ``decode_image``.
    - ``max_side``: images are downscaled so the longer side is at most this many pixels
      before detection; boxes are mapped back to the decoded image's pixels.

    Constructing checks that the model files exist (``ModelLoadError`` otherwise); dlib and the
    models are loaded lazily (first use or ``load()``), once. Calls are thread-safe (dlib's
    detector is not, so inference is serialised).
    """

    def __init__(
        self,
        *,
        upsample: int = 1,
        min_score: float = 0.3,
        num_jitters: int = 1,
        max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        max_side: int = 1600,
    ) -> None:
        if upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {upsample}")
        if num_jitters < 1:
            raise ValueError(f"num_jitters must be >= 1, got {num_jitters}")
        if max_side < 1:
            raise ValueError(f"max_side must be >= 1, got {max_side}")
        self._folder = face_models_dir()
        self._upsample = upsample
        self._min_score = float(min_score)
        self._num_jitters = num_jitters
        self._max_bytes = max_bytes
        self._max_pixels = max_pixels
        self._max_side = max_side
        self._load_lock = threading.Lock()
        self._inference_lock = threading.Lock()
        self._detector: Any = None
        self._predictor: Any = None
        self._recogniser: Any = None

    @property
    def model_id(self) -> str:
        """``dlib:resnet_v1:sha256-{16 hex of the recognition model file}`` (no model load; the
        hash is computed once)."""
        return f"dlib:resnet_v1:{weights_digest(self._folder / RECOGNITION_FILE, 'face model')}"

    @property
    def detection_id(self) -> str:
        """Detection settings, e.g. ``hog-upsample1-minscore0.3-jitter1-landmarks5-maxside1600``."""
        return (
            f"hog-upsample{self._upsample}-minscore{self._min_score:g}-jitter{self._num_jitters}"
            f"-landmarks5-maxside{self._max_side}"
        )

    def load(self) -> None:
        """Load dlib and the models now (otherwise done on first use). Idempotent, thread-safe;
        raises ``ModelLoadError`` if dlib or a model file cannot be loaded."""
        if self._recogniser is not None:
            return
        with self._load_lock:
            if self._recogniser is not None:
                return
            try:
                import dlib

                detector = dlib.get_frontal_face_detector()
                predictor = dlib.shape_predictor(str(self._folder / LANDMARKS_FILE))
                recogniser = dlib.face_recognition_model_v1(str(self._folder / RECOGNITION_FILE))
            except (ImportError, RuntimeError, OSError) as exc:
                raise ModelLoadError(f"cannot load dlib face models from {self._folder}: {exc}") from exc
            self._detector = detector
            self._predictor = predictor
            self._recogniser = recogniser
            log.info("loaded %s (%s)", self.model_id, self.detection_id)

    def detect_faces(self, images: Sequence[bytes]) -> list[list[DetectedFace] | BadInputError]:
        """Find faces in encoded images (JPEG/PNG... bytes), in order.

        Per image: the faces found, unmatched (possibly none), or the ``BadInputError`` the item
        failed with (empty, oversized, too many pixels, corrupt). Each face has ``bbox`` =
        ``(left, top, right, bottom)``, int pixels of the decoded (EXIF-upright) image, clipped
        to it, right/bottom exclusive (``image.crop(bbox)`` is the face), and ``descriptor`` =
        ``(128,)`` float32 (Euclidean space, not normalised). A bad item does not
        stop the others. Loads the models on first use."""
        if not images:
            return []
        self.load()
        results: list[list[DetectedFace] | BadInputError] = []
        for data in images:
            try:
                image = decode_image(data, max_bytes=self._max_bytes, max_pixels=self._max_pixels)
            except BadInputError as exc:
                results.append(exc)
                continue
            results.append(self._faces_in(image))
        return results

    def _faces_in(self, image: Image.Image) -> list[DetectedFace]:
        width, height = image.size
        scale = 1.0
        if max(width, height) > self._max_side:
            scale = self._max_side / max(width, height)
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        pixels = np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
        sx, sy = width / pixels.shape[1], height / pixels.shape[0]

        import dlib

        with self._inference_lock:
            found, scores, _ = self._detector.run(pixels, self._upsample, self._min_score)
            rectangles = [rect for rect, score in zip(found, scores, strict=True) if score >= self._min_score]
            if not rectangles:
                return []
            shapes = dlib.full_object_detections()
            for rectangle in rectangles:
                shapes.append(self._predictor(pixels, rectangle))
            descriptors = self._recogniser.compute_face_descriptor(pixels, shapes, self._num_jitters)

        faces = []
        for rectangle, descriptor in zip(rectangles, descriptors, strict=True):
            left = min(max(round(rectangle.left() * sx), 0), width)
            top = min(max(round(rectangle.top() * sy), 0), height)
            right = min(max(round((rectangle.right() + 1) * sx), 0), width)
            bottom = min(max(round((rectangle.bottom() + 1) * sy), 0), height)
            faces.append(
                DetectedFace(
                    bbox=(left, top, right, bottom),
                    descriptor=np.asarray(descriptor, dtype=np.float32).reshape(128),
                )
            )
        return faces
