"""How the labelled face check counts: found, missed, false positives, ignore regions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from scenedex.domain.errors import BadInputError
from scenedex.domain.model import DetectedFace
from scenedex.tools.face_check import LabelledFrame, evaluate

FRAMES = [
    LabelledFrame("one-face", b"a", (640, 360), faces=((100, 100, 200, 200),)),
    LabelledFrame("two-faces", b"b", (640, 360), faces=((10, 10, 60, 60), (300, 50, 400, 150))),
    LabelledFrame("crowd", b"c", (640, 360), ignore=((500, 0, 540, 40),)),
    LabelledFrame("empty", b"d", (640, 360)),
]


def detector(boxes: dict[bytes, list[tuple[int, int, int, int]]]):
    def detect(images: Sequence[bytes]) -> list[list[DetectedFace] | BadInputError]:
        return [
            [DetectedFace(box, np.zeros(128, np.float32)) for box in boxes.get(data, [])] for data in images
        ]

    return detect


def test_a_perfect_detector_finds_every_face_with_no_false_positive() -> None:
    result = evaluate("perfect", detector({f.data: list(f.faces) for f in FRAMES}), FRAMES)
    assert (result.found, result.faces, result.false_positives, result.recall) == (3, 3, 0, 1.0)
    assert result.found_keys() == {"one-face#0", "two-faces#0", "two-faces#1"}
    assert result.images == 4 and result.missed == []


def test_boxes_of_another_framing_count_but_not_of_another_size_or_place() -> None:
    boxes = {
        b"a": [(120, 110, 190, 200)],  # tighter framing, centre inside: found
        b"b": [(0, 0, 300, 300), (305, 55, 330, 80)],  # far too big; far too small: both false positives
        b"c": [(505, 5, 535, 35)],  # in the ignore region: neither
        b"d": [(0, 0, 50, 50)],  # nothing to find: a false positive
    }
    result = evaluate("sloppy", detector(boxes), FRAMES)
    assert result.found == 1 and result.missed == ["two-faces", "two-faces"]
    assert result.false_positives == 3
    assert result.false_positive_frames == ["two-faces", "two-faces", "empty"]


def test_one_box_finds_one_face_only() -> None:
    twice = {b"a": [(100, 100, 200, 200), (105, 105, 195, 195)]}
    result = evaluate("twice", detector(twice), FRAMES[:1])
    assert result.found == 1 and result.false_positives == 1
