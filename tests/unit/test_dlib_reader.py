"""The reader of dlib's serialisation (adapters/dlib_torch/reader.py) on hand-made bytes and on
the two networks of the ``face_recognition_models`` wheel (in the lock, so never skipped)."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from scenedex.adapters.dlib_torch.mmod import pyramid_rects, read_detector_network
from scenedex.adapters.dlib_torch.reader import DlibFormatError, _Stream
from scenedex.adapters.dlib_torch.resnet import read_descriptor_network
from scenedex.adapters.faces import CNN_DETECTOR_FILE, RECOGNITION_FILE, face_models_dir


@pytest.mark.parametrize(
    ("data", "value"),
    [(b"\x01\x00", 0), (b"\x01\x05", 5), (b"\x81\x05", -5), (b"\x02\x00\x01", 256), (b"\x01\x50", 80)],
)
def test_integers_as_dlib_packs_them(data: bytes, value: int) -> None:
    assert _Stream(data).int() == value


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (b"\x01\x10\x81\x04", 1.0),  # float_details of 1.0: mantissa 16, exponent -4
        (b"\x01\x10\x81\x05", 0.5),
        (b"\x81\x03\x01\x00", -3.0),
        (b"\x01\x00\x02\x00\x7d", float("inf")),  # exponent 32000 = is_inf
    ],
)
def test_portable_floats(data: bytes, value: float) -> None:
    assert _Stream(data).float() == value


def test_truncated_and_ascii_floats_are_refused() -> None:
    with pytest.raises(DlibFormatError, match="end of file"):
        _Stream(b"\x02\x00").int()
    with pytest.raises(DlibFormatError, match="ASCII"):
        _Stream(b"1.5 ").float()


def test_the_shipped_descriptor_network_reads_to_its_last_byte() -> None:
    network = read_descriptor_network(face_models_dir() / RECOGNITION_FILE)
    layers = Counter(layer.name for _, layer in network.program if layer is not None)
    assert layers == {
        "con": 29,
        "affine": 29,
        "relu": 29,
        "add_prev": 14,
        "avg_pool": 5,
        "max_pool": 1,
        "fc": 1,
    }
    assert network.input.options["nr"] == 150
    assert network.input.options["avg_red"] == pytest.approx(122.782, abs=1e-4)
    fc = next(layer for _, layer in network.program if layer is not None and layer.name == "fc")
    assert fc.arrays["weights"].shape == (256, 128)
    assert fc.arrays["biases"] is None


def test_the_shipped_detector_network_reads_to_its_last_byte() -> None:
    network = read_detector_network(face_models_dir() / CNN_DETECTOR_FILE)
    filters = [layer.options["num_filters"] for _, layer in network.program if layer and layer.name == "con"]
    assert filters == [16, 32, 32, 45, 45, 45, 1]
    assert network.loss.options["detector_windows"] == [(80, 80, "")]
    iou, covered = network.loss.options["overlaps_nms"]
    assert 0 < iou < 1 and covered == 1.0
    assert network.input.options["pyramid_padding"] == 10


def test_pyramid_levels_shrink_by_five_sixths_without_overlapping() -> None:
    rects, rows, cols = pyramid_rects(720, 1280)
    assert rects[0] == (11, 11, 1290, 730)
    assert cols == 1280 + 22
    sizes = [(r[2] - r[0] + 1, r[3] - r[1] + 1) for r in rects]
    for (w0, h0), (w1, h1) in itertools.pairwise(sizes):
        assert (w1, h1) == (int(w0 * 5 / 6), int(h0 * 5 / 6))
    grid = np.zeros((rows, cols), dtype=int)
    for left, top, right, bottom in rects:
        grid[top : bottom + 1, left : right + 1] += 1
    assert grid.max() == 1
