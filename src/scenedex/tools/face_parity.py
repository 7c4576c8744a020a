"""The port against dlib itself: descriptors and CNN detections of the same images by both.

Shared by the parity test (``tests/integration/test_dlib_torch_parity.py``), ``scenedex bench``
(``face_parity``) and ``tools/gpu_check.py``. The images come from the labelled face check
(``tools/face_check.py``, built from the real sample media): its 16 labelled faces for the
descriptors (dlib's 5-point landmarks on the labelled box, then ``dlib.get_face_chips(..., 150,
0.25)``, the chips ``compute_face_descriptor`` makes), and a few frames scaled down for the
detector, because dlib's CNN runs ~18 s per 720p frame on a 2-core CPU without BLAS (measured,
docs/FACE_DETECTION.md): ``DETECTION_SIDE`` pixels on the longer side.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from scenedex.adapters.dlib_torch.mmod import Detection, MmodFaceDetector, Rect
from scenedex.adapters.dlib_torch.resnet import FaceDescriptorNet, chips_tensor

DETECTION_SIDE = 640
"""Longer side (pixels) the detector frames are scaled down to (never up): dlib's CNN takes
~2.5 s on a 640x360 frame here (measured), and faces of 80 px and more (its window) remain."""
DETECTION_FRAMES = (
    "1280x720-bigbuckbunny-face300",
    "1280x720-hubble_deep_field-face200-mirrored",
    "640x360-hubble_deep_field-face150",
    "640x360-motorcycle_left-face90-mirrored",
    "bikes-31",
)
"""Face check frames the detectors are compared on: pasted faces of 150, 100, 150 and 90 px
after scaling, a real cyclist's face of 64 px; ``astronaut.png`` (512x512, a real face) too."""


@dataclass
class Parity:
    """``descriptor_l2``: per face, the Euclidean distance between dlib's descriptor and the
    port's; ``detection_iou``/``score_diff``: per dlib detection, the IoU and absolute score
    difference of the port's match (IoU 0 when unmatched); ``extra``: port detections that
    match none of dlib's (IoU < 0.5); ``images``: detector images compared."""

    descriptor_l2: list[float] = field(default_factory=list)
    detection_iou: list[float] = field(default_factory=list)
    score_diff: list[float] = field(default_factory=list)
    extra: int = 0
    images: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The ``face_parity`` bench key: ``descriptor_max_l2``, ``detection_min_iou``,
        ``detection_max_score_diff``, ``extra_detections`` and ``compared`` (counts)."""
        return {
            "descriptor_max_l2": round(max(self.descriptor_l2), 7) if self.descriptor_l2 else None,
            "detection_min_iou": round(min(self.detection_iou), 4) if self.detection_iou else None,
            "detection_max_score_diff": round(max(self.score_diff), 6) if self.score_diff else None,
            "extra_detections": self.extra,
            "compared": {
                "descriptors": len(self.descriptor_l2),
                "detections": len(self.detection_iou),
                "detector_images": self.images,
            },
        }


def iou(a: Rect, b: Rect) -> float:
    """Intersection over union of two inclusive dlib rectangles (pixel counts)."""
    w = min(a[2], b[2]) - max(a[0], b[0]) + 1
    h = min(a[3], b[3]) - max(a[1], b[1]) + 1
    inner = max(0, w) * max(0, h)
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inner / (area_a + area_b - inner)


def compare_detections(reference: Sequence[Detection], port: Sequence[Detection], into: Parity) -> None:
    """Match each of dlib's detections to the port's best-overlapping one and record IoU,
    score difference and the port's unmatched detections in ``into``."""
    unmatched = list(port)
    for ref in reference:
        best = max(unmatched, key=lambda d: iou(ref.rect, d.rect), default=None)
        if best is None or iou(ref.rect, best.rect) < 0.5:
            into.detection_iou.append(0.0)
            into.score_diff.append(abs(ref.score))
            continue
        unmatched.remove(best)
        into.detection_iou.append(iou(ref.rect, best.rect))
        into.score_diff.append(abs(ref.score - best.score))
    into.extra += len(unmatched)


def rgb(data: bytes, longer_side: int | None = None) -> np.ndarray:
    """Encoded image -> ``(h, w, 3)`` uint8 RGB, scaled down (bilinear) to ``longer_side`` when
    it is longer."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    if longer_side is not None and max(image.size) > longer_side:
        factor = longer_side / max(image.size)
        size = (round(image.size[0] * factor), round(image.size[1] * factor))
        image = image.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def descriptor_parity(
    images: Sequence[np.ndarray],
    boxes: Sequence[Sequence[Rect]],
    models_dir: Any,
    net: FaceDescriptorNet,
    into: Parity,
) -> None:
    """dlib's descriptors of the faces at ``boxes`` (inclusive rectangles, one list per image)
    against ``net``'s on the same chips; distances appended to ``into.descriptor_l2``."""
    import dlib
    import torch

    predictor = dlib.shape_predictor(str(models_dir / "shape_predictor_5_face_landmarks.dat"))
    recogniser = dlib.face_recognition_model_v1(str(models_dir / "dlib_face_recognition_resnet_model_v1.dat"))
    device = net.body.weight.device
    for image, rects in zip(images, boxes, strict=True):
        if not rects:
            continue
        shapes = dlib.full_object_detections()
        for left, top, right, bottom in rects:
            shapes.append(predictor(image, dlib.rectangle(left, top, right, bottom)))
        reference = np.array([np.asarray(d) for d in recogniser.compute_face_descriptor(image, shapes, 1)])
        chips = dlib.get_face_chips(image, shapes, 150, 0.25)
        with torch.inference_mode():
            port = net(chips_tensor(chips).to(device)).float().cpu().numpy()
        into.descriptor_l2.extend(np.linalg.norm(reference - port, axis=1).tolist())


def detection_parity(
    images: Sequence[np.ndarray], models_dir: Any, detector: MmodFaceDetector, into: Parity
) -> None:
    """dlib's CNN detections (upsample 0) of ``images`` against ``detector``'s."""
    import dlib

    cnn = dlib.cnn_face_detection_model_v1(str(models_dir / "mmod_human_face_detector.dat"))
    ported = detector.detect(list(images), batch_size=1)
    for image, port in zip(images, ported, strict=True):
        reference = [
            Detection((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), float(d.confidence))
            for d in cnn(image, 0)
        ]
        compare_detections(reference, port, into)
        into.images += 1


def measure(
    media: Path,
    net: FaceDescriptorNet,
    detector: MmodFaceDetector | None,
    detection_frames: Sequence[str] = DETECTION_FRAMES,
) -> Parity:
    """Descriptors of the 16 labelled faces of the face check built from ``media`` and (unless
    ``detector`` is ``None``) detections on ``detection_frames`` plus astronaut.png, by dlib and
    by the port. Raises ``FileNotFoundError`` for missing media, ``ImportError`` without dlib."""
    from scenedex.adapters.faces import face_models_dir
    from scenedex.tools.face_check import build_face_check

    models = face_models_dir()
    frames = build_face_check(media)
    parity = Parity()
    labelled = [frame for frame in frames if frame.faces]
    descriptor_parity(
        [rgb(frame.data) for frame in labelled],
        [[(b[0], b[1], b[2] - 1, b[3] - 1) for b in frame.faces] for frame in labelled],
        models,
        net,
        parity,
    )
    if detector is not None:
        by_name = {frame.name: frame for frame in frames}
        images = [rgb(by_name[name].data, DETECTION_SIDE) for name in detection_frames]
        images.append(rgb((media / "astronaut.png").read_bytes()))
        detection_parity(images, models, detector, parity)
    return parity
