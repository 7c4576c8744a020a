"""dlib's face descriptor network (``dlib_face_recognition_resnet_model_v1.dat``, the ResNet
behind ``dlib.face_recognition_model_v1``) in PyTorch.

The structure is ``anet_type`` of dlib's ``examples/dnn_face_recognition_ex.cpp`` (lines 45-71):
a 7x7/2 convolution with 32 filters, 3x3/2 max pooling, residual levels of 32 (3 blocks),
64 (4, the first downsampling), 128 (3), 256 (3) and 256 (1) filters, a global average and a
128-output fully connected layer without bias; the input is a 150x150 RGB chip,
``(pixel - mean) / 256`` per channel with the means stored in the file
(``input_rgb_image_sized``; 122.782, 117.001, 104.298 in dlib's ``input.h``).

The chips themselves come from dlib (``dlib.get_face_chips(image, shapes, 150, 0.25)``, what
``compute_face_descriptor`` extracts, ``tools/python/src/face_recognition.cpp``): this module
only replaces the network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from scenedex.adapters.dlib_torch.program import DlibProgram
from scenedex.adapters.dlib_torch.reader import Network, Node, read_network

CHIP_SIZE = 150
"""Side of the aligned face chip in pixels (``input_rgb_image_sized<150>``)."""


def _con(n: int, k: int, s: int) -> list[Node]:
    return [Node("layer", "con")]


def _block(n: int, stride: int, sub: list[Node]) -> list[Node]:
    # block = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>> (BN = affine)
    return [
        Node("layer", "affine"),
        *_con(n, 3, 1),
        Node("layer", "relu"),
        Node("layer", "affine"),
        *_con(n, 3, stride),
        *sub,
    ]


def _ares(n: int, sub: list[Node]) -> list[Node]:
    # relu<residual<block,N,affine,SUBNET>>, residual = add_prev1<block<N,BN,1,tag1<SUBNET>>>
    return [Node("layer", "relu"), Node("layer", "add_prev", 1), *_block(n, 1, [Node("tag", tag=1), *sub])]


def _ares_down(n: int, sub: list[Node]) -> list[Node]:
    # residual_down = add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,BN,2,tag1<SUBNET>>>>>>
    return [
        Node("layer", "relu"),
        Node("layer", "add_prev", 2),
        Node("layer", "avg_pool"),
        Node("skip", tag=1),
        Node("tag", tag=2),
        *_block(n, 2, [Node("tag", tag=1), *sub]),
    ]


def structure() -> list[Node]:
    """``anet_type`` from the output inwards (``dnn_face_recognition_ex.cpp`` lines 57-71)."""
    net = [Node("layer", "max_pool"), Node("layer", "relu"), Node("layer", "affine"), *_con(32, 7, 2)]
    for _ in range(3):  # alevel4
        net = _ares(32, net)
    net = _ares_down(64, net)  # alevel3
    for _ in range(3):
        net = _ares(64, net)
    net = _ares_down(128, net)  # alevel2
    for _ in range(2):
        net = _ares(128, net)
    net = _ares_down(256, net)  # alevel1
    for _ in range(2):
        net = _ares(256, net)
    net = _ares_down(256, net)  # alevel0
    return [Node("layer", "fc"), Node("layer", "avg_pool"), *net]


def read_descriptor_network(path: Path | str) -> Network:
    """The read ``.dat`` file (raises ``OSError``, ``DlibFormatError``)."""
    return read_network(path, structure())


class FaceDescriptorNet(nn.Module):
    """Face chips ``(n, 150, 150, 3)`` uint8 RGB (a tensor on any device) -> descriptors
    ``(n, 128)`` in the module's dtype (float32 unless cast). dlib's descriptors of one person
    are within ~0.6 Euclidean distance; parity with dlib: ``tests/integration/
    test_dlib_torch_parity.py``."""

    def __init__(self, network: Network) -> None:
        super().__init__()
        if network.input.name != "input_rgb_image":
            raise ValueError(f"expected an input_rgb_image network, got {network.input.name}")
        o = network.input.options
        self.means = (float(o["avg_red"]), float(o["avg_green"]), float(o["avg_blue"]))
        self.body = DlibProgram(network)

    @classmethod
    def load(cls, path: Path | str) -> FaceDescriptorNet:
        """Read ``dlib_face_recognition_resnet_model_v1.dat``; eval mode, float32, CPU."""
        return cls(read_descriptor_network(path)).eval()

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        """``chips`` ``(n, 150, 150, 3)`` uint8 on the module's device -> ``(n, 128)``."""
        weight = self.body.weight
        means = torch.tensor(self.means, dtype=torch.float32, device=chips.device).reshape(1, 3, 1, 1)
        x = (chips.permute(0, 3, 1, 2).to(torch.float32) - means) / 256.0
        descriptors: torch.Tensor = self.body(
            x.to(weight.dtype).contiguous(memory_format=torch.channels_last)
        )
        return descriptors


def chips_tensor(chips: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    """Chips as one ``(n, 150, 150, 3)`` uint8 tensor (raises ``ValueError`` for another shape)."""
    array = np.ascontiguousarray(np.stack(list(chips)) if isinstance(chips, list) else chips, dtype=np.uint8)
    if array.ndim != 4 or array.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
        raise ValueError(f"face chips must be (n, {CHIP_SIZE}, {CHIP_SIZE}, 3) uint8, got {array.shape}")
    return torch.from_numpy(array)
