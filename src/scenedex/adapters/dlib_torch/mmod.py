"""dlib's CNN face detector (``mmod_human_face_detector.dat``, ``dlib.cnn_face_detection_model_v1``)
in PyTorch: the image pyramid, the network and the ``loss_mmod`` detection decoding.

As dlib does it (source: github.com/davisking/dlib at 3d40bf57):

- **Network** (``examples/dnn_mmod_face_detection_ex.cpp`` lines 57-63, also
  ``tools/python/src/cnn_face_detector.cpp``): three 5x5/2 convolutions (16, 32, 32 filters)
  each with affine and relu, three 5x5/1 convolutions of 45 filters with affine and relu, and a
  9x9 convolution to one channel: the detection score map, one value per 8 input pixels.
- **Pyramid** (``input_rgb_image_pyramid<pyramid_down<6>>``, ``dlib/dnn/input.h`` ~756-1040;
  ``dlib/image_transforms/image_pyramid.h`` 983-1120): the image and its downscaled copies, each
  5/6 of the previous (``floor(5/6 * rows)``, ``floor(5/6 * cols)``), down to 5 rows, are tiled
  into one image: a first column of levels, then the rest doubling back from the bottom right,
  ``pyramid_padding`` (10) pixels apart, inside an ``outer_padding`` (11) pixel border, the rest
  zeros. Pixels are ``(value - mean) / 256``; each level is the previous one resized bilinearly
  with corners aligned (``resize_image``, ``interpolation.h``), in the normalised tensor.
- **Decoding** (``dlib/dnn/loss.h`` ``loss_mmod_::to_label`` ~1344 and ``tensor_to_dets``
  ~1724): every score map value ``> 0`` (``adjust_threshold``) is a detection; its position maps
  to the tiled image as ``8 x + 14`` (``output_tensor_to_input_tensor``), the 80x80 detector
  window (from the file) is centred there (``centered_drect``: half-width 39.5), and mapped to
  the image through the pyramid level it lies in (``tiled_pyramid_to_image``: the level whose
  rectangle contains the rounded centre, else the nearest; ``point_up`` ``p * 6/5 + 0.3`` once
  per level). Detections are sorted by score, highest first, and kept unless they overlap a
  kept one (``test_box_overlap`` with the file's ``overlaps_nms``: intersection over the area
  of the bounding box of both > ``iou_thresh``, or intersection over either box's area >
  ``percent_covered_thresh``; boxes rounded to integer rectangles with ``lround``, areas with
  dlib's inclusive ``+1``).

Several images of one size run through the network together (dlib requires one size per call
as well); images of different sizes are grouped by size.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scenedex.adapters.dlib_torch.program import DlibProgram, map_output_to_input
from scenedex.adapters.dlib_torch.reader import Network, Node, read_network

Rect = tuple[int, int, int, int]
"""dlib ``rectangle``: ``(left, top, right, bottom)``, right and bottom inclusive."""

PYRAMID_RATE = 5 / 6
"""``pyramid_rate(pyramid_down<6>)`` = (N-1)/N (image_pyramid.h 975)."""
MIN_LEVEL_ROWS = 5
"""``compute_tiled_image_pyramid_details``: levels stop below this many rows (image_pyramid.h)."""


def structure() -> list[Node]:
    """``net_type`` of ``dnn_mmod_face_detection_ex.cpp`` line 63, from the output inwards."""
    triple = [Node("layer", "relu"), Node("layer", "affine"), Node("layer", "con")]
    return [Node("layer", "con"), *(triple * 6)]


def read_detector_network(path: Path | str) -> Network:
    """The read ``.dat`` file (raises ``OSError``, ``DlibFormatError``)."""
    return read_network(path, structure())


def pyramid_rects(
    rows: int, cols: int, padding: int = 10, outer_padding: int = 11
) -> tuple[list[Rect], int, int]:
    """Where each pyramid level of a ``rows`` x ``cols`` image lies in the tiled image, and the
    tiled image's rows and columns: ``impl::compute_tiled_image_pyramid_details``
    (image_pyramid.h 1029-1120) line by line, for ``pyramid_down<6>``."""
    if rows * cols == 0:
        return [], 0, 0
    sizes = [(cols, rows)]  # (width, height)
    nr, nc = rows, cols
    while True:
        nr, nc = math.floor(PYRAMID_RATE * nr), math.floor(PYRAMID_RATE * nc)
        if nr * nc == 0 or nr < MIN_LEVEL_ROWS:
            break
        sizes.append((nc, nr))
    total_height = sum(h + padding for _, h in sizes) - padding * 2
    height = prev_width = 0
    first_w, first_h = sizes[0]
    for w, h in sizes:
        if w <= first_w - prev_width - padding and (height - first_h) * 2 >= total_height - first_h:
            break
        height += h + padding
        prev_width = w
    height -= padding
    width = first_w
    out_rows, out_cols = height + outer_padding * 2, width + outer_padding * 2
    rects: list[Rect] = []
    y, i = outer_padding, 0
    while y < height + outer_padding and i < len(sizes):
        w, h = sizes[i]
        rects.append((outer_padding, y, outer_padding + w - 1, y + h - 1))
        y += h + padding
        i += 1
    y -= padding
    first = rects[0]
    while i < len(sizes):
        w, h = sizes[i]
        right, bottom = outer_padding + width - 1, y - 1
        rect = (right - (w - 1), bottom - (h - 1), right, bottom)
        if not (rect[2] < first[0] or rect[0] > first[2] or rect[3] < first[1] or rect[1] > first[3]):
            break  # it would intersect the original image
        rects.append(rect)
        y -= h + padding
        i += 1
    return rects, out_rows, out_cols


@dataclass(frozen=True)
class Detection:
    """A face found: ``rect`` dlib rectangle ``(left, top, right, bottom)`` inclusive, pixels of
    the image given; ``score`` the detector's confidence (dlib's ``mmod_rectangle.confidence``)."""

    rect: Rect
    score: float


def _lround(x: float) -> int:
    """C's ``lround``: halves away from zero."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def _area(r: Rect) -> int:
    return max(0, r[2] - r[0] + 1) * max(0, r[3] - r[1] + 1)


def _overlaps(a: Rect, b: Rect, iou_thresh: float, covered_thresh: float) -> bool:
    """``test_box_overlap::operator()`` (box_overlap_testing.h 86-102)."""
    inner = _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    if inner == 0:
        return False
    outer = _area((min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])))
    return (
        inner / outer > iou_thresh or inner / _area(a) > covered_thresh or inner / _area(b) > covered_thresh
    )


def _nearest_level(rects: Sequence[Rect], x: float, y: float) -> int:
    """``nearest_rect(rects, point(center))`` (rectangle.h 469): the centre rounded as dlib
    converts a ``dpoint`` to a ``point`` (``floor(v + 0.5)``, vector.h 149)."""
    px, py = math.floor(x + 0.5), math.floor(y + 0.5)
    best, best_dist = 0, math.inf
    for index, (left, top, right, bottom) in enumerate(rects):
        if left <= px <= right and top <= py <= bottom:
            return index
        nx, ny = min(max(px, left), right), min(max(py, top), bottom)
        dist = math.hypot(nx - px, ny - py)
        if dist < best_dist:
            best, best_dist = index, dist
    return best


class MmodFaceDetector(nn.Module):
    """Images ``(h, w, 3)`` uint8 RGB -> per image the faces dlib's CNN detector finds at
    upsample 0 (``Detection`` list, highest score first). ``detect`` is the entry point; the
    module's forward runs the network on a tiled pyramid tensor ``(n, 3, rows, cols)`` and
    returns the score map ``(n, 1, rows', cols')``."""

    def __init__(self, network: Network) -> None:
        super().__init__()
        if network.input.name != "input_rgb_image_pyramid" or network.loss.name != "loss_mmod":
            raise ValueError("expected an input_rgb_image_pyramid network with a loss_mmod loss")
        o = network.input.options
        self.means = (float(o["avg_red"]), float(o["avg_green"]), float(o["avg_blue"]))
        self.padding = int(o["pyramid_padding"])
        self.outer_padding = int(o["pyramid_outer_padding"])
        options = network.loss.options
        if options["use_bounding_box_regression"] or len(options["detector_windows"]) != 1:
            raise ValueError("only one detector window and no box regression are supported")
        self.window = options["detector_windows"][0][:2]
        self.nms = options["overlaps_nms"]
        self.body = DlibProgram(network)
        self.to_input: Callable[[float, float], tuple[float, float]] = functools.partial(
            map_output_to_input, network.program
        )

    @classmethod
    def load(cls, path: Path | str) -> MmodFaceDetector:
        """Read ``mmod_human_face_detector.dat``; eval mode, float32, CPU."""
        return cls(read_detector_network(path)).eval()

    def forward(self, tiled: torch.Tensor) -> torch.Tensor:
        scores: torch.Tensor = self.body(tiled)
        return scores

    def tiled(self, images: torch.Tensor) -> tuple[torch.Tensor, list[Rect]]:
        """``images`` ``(n, h, w, 3)`` uint8 (any device) -> the tiled pyramid ``(n, 3, rows,
        cols)`` float32 on that device and the levels' rectangles (``pyramid_rects``)."""
        n, rows, cols, _ = images.shape
        rects, out_rows, out_cols = pyramid_rects(rows, cols, self.padding, self.outer_padding)
        data = torch.zeros((n, 3, out_rows, out_cols), dtype=torch.float32, device=images.device)
        means = torch.tensor(self.means, dtype=torch.float32, device=images.device).reshape(1, 3, 1, 1)
        level = (images.permute(0, 3, 1, 2).to(torch.float32) - means) / 256.0
        for index, (left, top, right, bottom) in enumerate(rects):
            if index:
                size = (bottom - top + 1, right - left + 1)
                level = F.interpolate(level, size=size, mode="bilinear", align_corners=True)
            data[:, :, top : bottom + 1, left : right + 1] = level
        return data, rects

    def detect(self, images: Sequence[np.ndarray], batch_size: int = 4) -> list[list[Detection]]:
        """Faces in each image (``(h, w, 3)`` uint8 RGB arrays, any sizes), in order; images of
        one size go through the network ``batch_size`` at a time. Raises ``ValueError`` for an
        array that is not ``(h, w, 3)`` uint8."""
        weight = self.body.weight
        device, dtype = weight.device, weight.dtype
        results: list[list[Detection]] = [[] for _ in images]
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, image in enumerate(images):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"images must be (h, w, 3) uint8, got {image.shape} {image.dtype}")
            groups.setdefault(image.shape, []).append(index)
        with torch.inference_mode():
            for indices in groups.values():
                for start in range(0, len(indices), batch_size):
                    chunk = indices[start : start + batch_size]
                    batch = torch.from_numpy(np.stack([images[i] for i in chunk])).to(device)
                    tiled, rects = self.tiled(batch)
                    if not rects:
                        continue
                    scores = self(tiled.to(dtype)).to(torch.float32)[:, 0].cpu().numpy()
                    for i, score_map in zip(chunk, scores, strict=True):
                        results[i] = self.decode(score_map, rects)
        return results

    def decode(self, score_map: np.ndarray, rects: Sequence[Rect], threshold: float = 0.0) -> list[Detection]:
        """``tensor_to_dets`` and the non-maximum suppression of ``to_label`` on one score map
        ``(rows', cols')`` float32 (see the module docstring)."""
        rows, cols = np.nonzero(score_map > threshold)
        candidates = []
        half_w, half_h = (self.window[0] - 1) / 2, (self.window[1] - 1) / 2
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            x, y = self.to_input(float(c), float(r))
            level = _nearest_level(rects, x, y)
            ox, oy = rects[level][0], rects[level][1]
            box = [x - half_w - ox, y - half_h - oy, x + half_w - ox, y + half_h - oy]
            for _ in range(level):  # pyramid_down<6>::point_up: p * 6/5 + 0.3
                box = [v * (6 / 5) + 0.3 for v in box]
            candidates.append((float(score_map[r, c]), box))
        candidates.sort(key=lambda item: -item[0])
        kept: list[Detection] = []
        for score, box in candidates:
            rect = (_lround(box[0]), _lround(box[1]), _lround(box[2]), _lround(box[3]))
            if any(_overlaps(k.rect, rect, *self.nms) for k in kept):
                continue
            kept.append(Detection(rect, score))
        return kept
