"""The reader of dlib's serialisation (adapters/dlib_torch/reader.py) on the two networks of the
``face_recognition_models`` wheel (in the lock, so never skipped), through the torch ports'
readers (``mmod``, ``resnet``: they import torch, so these tests are not in the unit tier;
tests/unit/test_dlib_reader.py checks the reader on hand-made bytes)."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from scenedex.adapters.dlib_torch.mmod import pyramid_rects, read_detector_network
from scenedex.adapters.dlib_torch.resnet import read_descriptor_network
from scenedex.adapters.faces import CNN_DETECTOR_FILE, RECOGNITION_FILE, face_models_dir


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
