"""Frames of stored source videos at given times (adapters/frames.py): the frame shown at each
time, in the order asked, sparse times by seeking and dense ones by decoding forward."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scenedex.adapters.frames import BlobVideoFrames
from scenedex.adapters.storage import FsspecBlobStore
from scenedex.domain.errors import BadInputError

FPS, SECONDS = 10, 20


def brightness(seconds: float) -> int:
    """The grey level of the frame shown at ``seconds`` (steps of 12 per second)."""
    return min(240, 12 * int(seconds))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[FsspecBlobStore, str]:
    av = pytest.importorskip("av")
    folder = tmp_path_factory.mktemp("frames")
    path = folder / "grey.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        stream.options = {"crf": "10", "g": "25"}  # a keyframe every 2.5 s
        for index in range(SECONDS * FPS):
            level = brightness(index / FPS)
            frame = Image.new("RGB", (160, 96), (level, level, level))
            container.mux(stream.encode(av.VideoFrame.from_image(frame)))
        container.mux(stream.encode())
    blobs = FsspecBlobStore(str(folder / "blobs"))
    return blobs, blobs.write_file("v/source.mp4", str(path))


def level(jpeg: bytes) -> float:
    return float(np.asarray(Image.open(io.BytesIO(jpeg)).convert("L")).mean())


def test_frames_at_unordered_dense_and_sparse_times(store: tuple[FsspecBlobStore, str]) -> None:
    blobs, uri = store
    times = [15.5, 0.25, 1.5, 2.5, 3.5, 19.95, 9.0, 1.55, 30.0]
    frames = BlobVideoFrames(blobs).frames_at(uri, times)
    assert len(frames) == len(times)
    for time_s, jpeg in zip(times, frames, strict=True):
        expected = brightness(min(time_s, SECONDS - 1 / FPS))  # past the end: the last frame
        assert abs(level(jpeg) - expected) <= 3, (time_s, level(jpeg), expected)
    assert BlobVideoFrames(blobs).frames_at(uri, []) == []


def test_missing_or_corrupt_sources_are_bad_input(store: tuple[FsspecBlobStore, str], tmp_path: Path) -> None:
    blobs, uri = store
    with pytest.raises(BadInputError):
        BlobVideoFrames(blobs).frames_at(uri.replace("source", "gone"), [1.0])
    corrupt = blobs.write("v/corrupt.mp4", b"\x00\x00\x00\x18ftypmp42 not really a video")
    with pytest.raises(BadInputError, match="cannot decode"):
        BlobVideoFrames(blobs).frames_at(corrupt, [1.0])
