"""Scene detection on the real sample media in ``../shared/data/real`` (no database, no models)."""

from __future__ import annotations

import io
import time
from itertools import pairwise
from pathlib import Path

import pytest
from PIL import Image

from scenedex.adapters.video import PySceneDetectSceneDetector, VideoScenes
from scenedex.domain.errors import BadInputError

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


def _real(name: str) -> Path:
    path = REAL / name
    if not path.is_file():
        pytest.skip(f"real sample media not available: {path} is missing")
    return path


def _detect(path: Path) -> VideoScenes:
    started = time.perf_counter()
    result = PySceneDetectSceneDetector().detect(path)
    elapsed = time.perf_counter() - started
    print(f"{path.name}: {len(result.scenes)} scene(s) in {elapsed:.3f} s")
    return result


def _assert_contiguous(result: VideoScenes) -> None:
    scenes = result.scenes
    assert scenes[0].start_s == 0.0
    assert scenes[-1].end_s == pytest.approx(result.duration_s)
    for before, after in pairwise(scenes):
        assert before.end_s == after.start_s
    for scene in scenes:
        assert scene.start_s < scene.end_s
        assert scene.start_s <= scene.keyframe_time_s < scene.end_s


def _assert_keyframes(result: VideoScenes, size: tuple[int, int]) -> None:
    for scene in result.scenes:
        image = Image.open(io.BytesIO(scene.keyframe_jpeg))
        assert image.format == "JPEG"
        assert image.mode == "RGB"
        assert image.size == size
        image.load()


def test_bigbuckbunny_single_continuous_shot_is_one_scene() -> None:
    # The 132-frame clip is one continuous shot (the bunny climbing out of his burrow): PySceneDetect
    # scores no frame change above ~8, far below the default 27, so the whole clip is one scene.
    result = _detect(_real("bigbuckbunny.mp4"))
    assert (result.width, result.height) == (1280, 720)
    assert result.fps == pytest.approx(25.0)
    assert result.duration_s == pytest.approx(132 / 25)
    assert len(result.scenes) == 1
    _assert_contiguous(result)
    _assert_keyframes(result, (1280, 720))
    assert result.scenes[0].keyframe_time_s == pytest.approx(65 / 25)


def test_bikes_has_several_scenes() -> None:
    result = _detect(_real("bikes.mp4"))
    assert (result.width, result.height) == (640, 272)
    assert result.duration_s == pytest.approx(250 / 25)
    assert len(result.scenes) >= 2
    _assert_contiguous(result)
    _assert_keyframes(result, (640, 272))
    # Distinct shots give distinct keyframes.
    assert len({scene.keyframe_jpeg for scene in result.scenes}) == len(result.scenes)


def test_higher_threshold_finds_fewer_cuts() -> None:
    path = _real("bikes.mp4")
    default = PySceneDetectSceneDetector().detect(path)
    strict = PySceneDetectSceneDetector(threshold=255.0).detect(path)
    assert len(strict.scenes) == 1 <= len(default.scenes)
    _assert_contiguous(strict)


def test_text_file_named_mp4_raises(tmp_path: Path) -> None:
    fake = tmp_path / "fake.mp4"
    fake.write_text("this is not a video\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="not a readable video"):
        PySceneDetectSceneDetector().detect(fake)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="not found"):
        PySceneDetectSceneDetector().detect(tmp_path / "missing.mp4")


def test_video_without_frames_raises(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    path = tmp_path / "zero.avi"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    with pytest.raises(BadInputError, match="no decodable frames"):
        PySceneDetectSceneDetector().detect(path)


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValueError):
        PySceneDetectSceneDetector(threshold=0)
    with pytest.raises(ValueError):
        PySceneDetectSceneDetector(min_scene_len_s=-1)
    with pytest.raises(ValueError):
        PySceneDetectSceneDetector(jpeg_quality=0)
