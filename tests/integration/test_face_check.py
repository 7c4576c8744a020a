"""The labelled face check (tools/face_check.py) on the real sample media: the default face
detector finds every face the previous default found, plus small-frame faces it missed, with
no more false positives."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenedex.adapters.faces import DlibFaceEmbedder
from scenedex.tools.face_check import CheckResult, LabelledFrame, build_face_check, evaluate

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


@pytest.fixture(scope="module")
def frames() -> list[LabelledFrame]:
    if not (REAL / "astronaut.png").is_file():
        pytest.skip(f"sample media {REAL} not present")
    return build_face_check(REAL)


def test_the_check_has_faces_at_every_frame_size_and_face_free_frames(frames: list[LabelledFrame]) -> None:
    sizes = {frame.size for frame in frames if frame.faces}
    assert {(1280, 720), (640, 360), (176, 144), (640, 272)} <= sizes
    assert sum(len(frame.faces) for frame in frames) == 16
    assert sum(1 for frame in frames if not frame.faces and not frame.ignore) == 21
    assert len({frame.name for frame in frames}) == len(frames)


def test_default_detector_finds_what_the_previous_found_plus_small_frame_faces(
    frames: list[LabelledFrame],
) -> None:
    new = evaluate("default", DlibFaceEmbedder(threads=1).detect_faces, frames)
    old = evaluate(
        "previous",
        DlibFaceEmbedder(detect_side=None, upsample=1, min_score=0.3, threads=1).detect_faces,
        frames,
    )
    report(new, old)
    assert new.found_keys() >= old.found_keys(), f"the default misses {old.found_keys() - new.found_keys()}"
    gained = new.found_keys() - old.found_keys()
    assert any(key.startswith("176x144-") for key in gained), gained
    assert new.false_positives <= old.false_positives
    assert new.recall >= 0.8


def report(*results: CheckResult) -> None:
    for result in results:
        print(
            f"{result.name}: recall {result.recall:.3f} ({result.found}/{result.faces}), "
            f"{result.false_positives} false positive(s), {result.ms_per_image:.0f} ms/image, "
            f"missed {result.missed}"
        )
