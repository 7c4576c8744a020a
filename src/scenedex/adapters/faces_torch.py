"""``FaceEmbedder`` on the tensor runtime (issue 30): dlib's two shipped networks run in PyTorch
(``adapters/dlib_torch``), batched, on the GPU when there is one.

Per ``detect_faces`` call (one worker batch of frames):

1. decode every image (``threads`` at a time) and make its detection copy exactly as
   ``DlibFaceEmbedder`` does (``detect_side``, ``max_side``);
2. detect: ``"cnn"``: dlib's MMOD network in torch over all detection copies, images of one size
   ``detector_batch`` per forward; ``"hog"``: dlib's HOG (a CPU algorithm, no network) per
   image, ``threads`` at a time;
3. dlib's 5-point landmarks and ``get_face_chips(..., 150, 0.25)`` per image (cheap, dlib);
4. every chip of the call through the ResNet descriptor together, ``batch_size`` per forward.

Boxes, scores and descriptors match ``DlibFaceEmbedder`` with the same settings up to float
rounding (parity: ``tests/integration/test_dlib_torch_parity.py``); the ids name the runtime
and precision, so switching ``SCENEDEX_FACES__RUNTIME`` marks exactly the face records stale.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from scenedex.adapters.faces import (
    CNN_DETECTOR_FILE,
    DEFAULT_DETECT_SIDE,
    LANDMARKS_FILE,
    RECOGNITION_FILE,
    Detector,
    default_threads,
    detection_copies,
    face_models_dir,
)
from scenedex.adapters.images import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS, decode_image
from scenedex.adapters.model_files import weights_digest
from scenedex.adapters.torch_runtime import resolve_device, resolve_precision, torch_dtype
from scenedex.domain.errors import BadInputError, ModelLoadError
from scenedex.domain.model import DetectedFace

log = logging.getLogger(__name__)

DEFAULT_DETECTOR_BATCH = {"cpu": 2, "cuda": 16}
"""Detection copies per MMOD forward: a 1280x720 frame's tiled pyramid is 1302x2644 (3.4 M
pixels, ``pyramid_rects``), its first feature map 16 x 1.7 M floats (~110 MB); 2 per forward
on a CPU (no gain from more, measured), 16 on a GPU (estimate: ~1.8 GB of activations)."""


@dataclass
class _Frame:
    """One image on its way: the decoded size, the detection copy, the copy descriptors are
    computed on, and the boxes found in the detection copy (right/bottom exclusive)."""

    size: tuple[int, int]
    detected: Image.Image
    described: Image.Image
    boxes: list[tuple[int, int, int, int]]
    chips: list[np.ndarray]


class TorchFaceEmbedder:
    """dlib's face pipeline with its networks in PyTorch. Options as ``DlibFaceEmbedder``
    (``detector``, ``detect_side``, ``min_score``, ``max_side``, ``max_bytes``, ``max_pixels``,
    ``threads`` for decoding, HOG and landmarks), plus:

    - ``device``: ``auto`` (``cuda`` when torch sees one), ``cpu``, ``cuda``, ``cuda:N``;
    - ``precision``: ``fp32`` (default; parity with dlib measured: L2 <= 3e-6), ``auto``,
      ``bf16``, ``fp16`` (CUDA only), resolved by ``torch_runtime.resolve_precision``;
    - ``batch_size``: face chips per descriptor forward;
    - ``detector_batch``: frames per MMOD forward (default ``DEFAULT_DETECTOR_BATCH``).

    ``upsample`` must be 0 and ``num_jitters`` 1 (dlib's random jitter and its ``pyramid_up``
    are not ported): ``ValueError`` otherwise, and for values out of range. Constructing checks
    the model files (``ModelLoadError``); torch and the networks load on first use or ``load()``.
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
        device: str = "auto",
        precision: str = "fp32",
        batch_size: int = 64,
        detector_batch: int | None = None,
    ) -> None:
        if detector not in ("hog", "cnn"):
            raise ValueError(f"detector must be 'hog' or 'cnn', got {detector!r}")
        if upsample != 0:
            raise ValueError("the torch face runtime supports upsample 0 only (use detect_side)")
        if num_jitters != 1:
            raise ValueError("the torch face runtime supports num_jitters 1 only")
        if detect_side is not None and detect_side < 32:
            raise ValueError(f"detect_side must be >= 32 pixels or None, got {detect_side}")
        if max_side < 1 or batch_size < 1 or (detector_batch is not None and detector_batch < 1):
            raise ValueError("max_side, batch_size and detector_batch must be >= 1")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self._folder = face_models_dir()
        if detector == "cnn" and not (self._folder / CNN_DETECTOR_FILE).is_file():
            raise ModelLoadError(f"face_recognition_models is missing {CNN_DETECTOR_FILE} in {self._folder}")
        self._device = resolve_device(device)
        self._precision = resolve_precision(precision, self._device)
        self._detector_kind: Detector = detector
        self._detect_side = detect_side
        self._min_score = float(min_score)
        self._max_bytes, self._max_pixels, self._max_side = max_bytes, max_pixels, max_side
        self._threads = threads or default_threads()
        self._batch_size = batch_size
        kind = "cuda" if self._device.startswith("cuda") else "cpu"
        self._detector_batch = detector_batch or DEFAULT_DETECTOR_BATCH[kind]
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._nets: tuple[Any, Any] | None = None

    @property
    def device(self) -> str:
        """The resolved torch device (``cpu``, ``cuda``, ``cuda:N``)."""
        return self._device

    @property
    def precision(self) -> str:
        """The resolved precision (``fp32``, ``bf16``, ``fp16``)."""
        return self._precision

    @property
    def threads(self) -> int:
        return self._threads

    @property
    def model_id(self) -> str:
        """``dlib:resnet_v1:sha256-{16 hex}:torch-{precision}``: dlib's weights on this runtime
        (the dlib runtime's id has no suffix)."""
        digest = weights_digest(self._folder / RECOGNITION_FILE, "face model")
        return f"dlib:resnet_v1:{digest}:torch-{self._precision}"

    @property
    def detection_id(self) -> str:
        """As ``DlibFaceEmbedder.detection_id`` plus ``-torch-{precision}``, e.g.
        ``cnn-side720-upsample0-minscore0-jitter1-landmarks5-maxside1600-torch-fp32``."""
        side = f"-side{self._detect_side}" if self._detect_side is not None else ""
        return (
            f"{self._detector_kind}{side}-upsample0-minscore{self._min_score:g}-jitter1-landmarks5"
            f"-maxside{self._max_side}-torch-{self._precision}"
        )

    def load(self) -> None:
        """Load torch and the networks now (otherwise on first use); idempotent, thread-safe.
        Raises ``ModelLoadError`` when a model cannot be read or the device is unusable."""
        self._networks()

    def _networks(self) -> tuple[Any, Any]:
        with self._lock:
            if self._nets is None:
                try:
                    self._nets = self._build()
                except (ImportError, RuntimeError, OSError, ValueError) as exc:
                    raise ModelLoadError(f"cannot load the torch face networks: {exc}") from exc
                log.info("loaded %s (%s) on %s", self.model_id, self.detection_id, self._device)
            return self._nets

    def _build(self) -> tuple[Any, Any]:
        import torch

        from scenedex.adapters.dlib_torch.mmod import MmodFaceDetector
        from scenedex.adapters.dlib_torch.resnet import FaceDescriptorNet

        dtype = torch_dtype(self._precision)
        descriptor = FaceDescriptorNet.load(self._folder / RECOGNITION_FILE).to(self._device, dtype)
        detector = None
        if self._detector_kind == "cnn":
            detector = MmodFaceDetector.load(self._folder / CNN_DETECTOR_FILE).to(self._device, dtype)
        if self._device == "cpu":
            descriptor = descriptor.to(memory_format=torch.channels_last)
        return descriptor, detector

    def _dlib(self) -> tuple[Any, Any]:
        """This thread's dlib HOG detector and landmark model (dlib keeps per-call state)."""
        models = getattr(self._local, "models", None)
        if models is None:
            import dlib

            hog = dlib.get_frontal_face_detector() if self._detector_kind == "hog" else None
            models = (hog, dlib.shape_predictor(str(self._folder / LANDMARKS_FILE)))
            self._local.models = models
        return models

    def _map(self, function: Any, items: Sequence[Any]) -> list[Any]:
        if self._threads == 1 or len(items) <= 1:
            return [function(item) for item in items]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="faces-torch")
            pool = self._pool
        return list(pool.map(function, items))

    def close(self) -> None:
        """Stop the worker threads (a later call starts them again)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def detect_faces(self, images: Sequence[bytes]) -> list[list[DetectedFace] | BadInputError]:
        """Faces in encoded images, in order: per image the faces found or the
        ``BadInputError`` the item failed with; ``bbox`` and ``descriptor`` ``(128,)`` float32
        as ``DlibFaceEmbedder.detect_faces``. Raises ``ModelLoadError`` if the networks cannot
        be loaded."""
        if not images:
            return []
        descriptor_net, detector = self._networks()
        frames: list[_Frame | BadInputError] = self._map(self._prepare, list(images))
        ready = [f for f in frames if isinstance(f, _Frame)]
        if detector is not None:
            self._detect_cnn(detector, ready)
            self._map(self._chips, ready)
        else:
            self._map(self._detect_hog_and_chips, ready)
        chips = [chip for frame in ready for chip in frame.chips]
        descriptors = self._describe(descriptor_net, chips)
        results: list[list[DetectedFace] | BadInputError] = []
        position = 0
        for frame in frames:
            if isinstance(frame, BadInputError):
                results.append(frame)
                continue
            count = len(frame.boxes)
            results.append(self._faces(frame, descriptors[position : position + count]))
            position += count
        return results

    def _prepare(self, data: bytes) -> _Frame | BadInputError:
        try:
            image = decode_image(data, max_bytes=self._max_bytes, max_pixels=self._max_pixels)
        except BadInputError as exc:
            return exc
        detected, described = detection_copies(image, self._max_side, self._detect_side)
        return _Frame(image.size, detected, described, [], [])

    def _detect_cnn(self, detector: Any, frames: Sequence[_Frame]) -> None:
        pixels = [np.asarray(frame.detected.convert("RGB"), dtype=np.uint8) for frame in frames]
        found = detector.detect(pixels, batch_size=self._detector_batch)
        for frame, detections in zip(frames, found, strict=True):
            frame.boxes = [
                (d.rect[0], d.rect[1], d.rect[2] + 1, d.rect[3] + 1)
                for d in detections
                if d.score >= self._min_score
            ]

    def _detect_hog_and_chips(self, frame: _Frame) -> None:
        hog, _ = self._dlib()
        pixels = np.ascontiguousarray(np.asarray(frame.detected.convert("RGB"), dtype=np.uint8))
        rects, scores, _ = hog.run(pixels, 0, self._min_score)
        frame.boxes = [
            (r.left(), r.top(), r.right() + 1, r.bottom() + 1)
            for r, score in zip(rects, scores, strict=True)
            if score >= self._min_score
        ]
        self._chips(frame)

    def _chips(self, frame: _Frame) -> None:
        """Landmarks and aligned 150x150 chips of ``frame.boxes`` on the descriptor copy, as
        ``DlibFaceEmbedder`` places them (detection copy -> descriptor copy, per axis)."""
        if not frame.boxes:
            return
        import dlib

        _, predictor = self._dlib()
        pixels = np.ascontiguousarray(np.asarray(frame.described.convert("RGB"), dtype=np.uint8))
        sx = frame.described.size[0] / frame.detected.size[0]
        sy = frame.described.size[1] / frame.detected.size[1]
        shapes = dlib.full_object_detections()
        for left, top, right, bottom in frame.boxes:
            rectangle = dlib.rectangle(
                round(left * sx), round(top * sy), round(right * sx) - 1, round(bottom * sy) - 1
            )
            shapes.append(predictor(pixels, rectangle))
        frame.chips = [
            np.asarray(chip, dtype=np.uint8) for chip in dlib.get_face_chips(pixels, shapes, 150, 0.25)
        ]

    def _describe(self, net: Any, chips: list[np.ndarray]) -> np.ndarray:
        """``(n, 128)`` float32 descriptors of ``(150, 150, 3)`` uint8 chips, ``batch_size`` per
        forward on the device."""
        if not chips:
            return np.zeros((0, 128), dtype=np.float32)
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(chips), self._batch_size):
                batch = torch.from_numpy(np.stack(chips[start : start + self._batch_size]))
                out.append(net(batch.to(self._device)).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def _faces(self, frame: _Frame, descriptors: np.ndarray) -> list[DetectedFace]:
        width, height = frame.size
        sx, sy = width / frame.detected.size[0], height / frame.detected.size[1]
        faces = []
        for (left, top, right, bottom), descriptor in zip(frame.boxes, descriptors, strict=True):
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
