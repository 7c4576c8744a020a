"""A dlib network as a torch module: the layers read by ``reader.read_network`` run in the order
dlib runs them (from the input outwards), with dlib's tag/skip/add_prev semantics.

dlib's layers and their torch equivalents (``dlib/dnn/layers.h``, ``dlib/cuda/cpu_dlib.cpp``):

- ``con_``: ``conv2d`` with zero padding; the output size is ``1 + (in + 2 pad - k) // stride``
  in both (``cpu_dlib.cpp``/cuDNN); an ``affine_`` right after a ``con_`` is folded into it
  (``w * gamma``, ``b * gamma + beta``: float32 rounding only).
- ``affine_`` (conv mode): ``x * gamma[k] + beta[k]`` per channel.
- ``relu_``: ``max(x, 0)``.
- ``max_pool_``/``avg_pool_``: windows ``centered_rect(c * stride + w/2 - pad, ...)`` clipped to
  the image (``pooling::operator()``, cpu_dlib.cpp ~2666-2745): torch's pooling with the same
  padding, the average excluding the padding; a window of 0 (``avg_pool_everything``) is the
  whole image.
- ``fc_``: ``flatten(x) @ weights (+ biases)``, weights ``(num_inputs, num_outputs)``.
- ``tag<N>`` stores the current tensor, ``skip<N>`` makes the stored tensor current again, and
  ``add_prev<N>`` adds the stored tensor; when sizes differ the output has the larger size of
  each dimension and the missing values are zeros (``tt::add``, cpu_dlib.cpp 279-330).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scenedex.adapters.dlib_torch.reader import Layer, Network, Node


def map_output_to_input(program: list[tuple[Node, Layer | None]], x: float, y: float) -> tuple[float, float]:
    """A point of the last layer's output mapped to the input tensor, as
    ``output_tensor_to_input_tensor`` does (``dlib/dnn/visitors.h`` ~171): through each layer from
    the output inwards, ``con_`` and the pools map ``p * stride - padding + size // 2``
    (layers.h 169-175; C++ integer division), every other layer is the identity. Only for a
    program without skips (the detector)."""
    for node, layer in reversed(program):
        if node.kind == "skip":
            raise ValueError("map_output_to_input: a program with skips is not supported")
        if layer is None or layer.name not in ("con", "max_pool", "avg_pool"):
            continue
        o = layer.options
        x = x * o["stride_x"] - o["padding_x"] + o["nc"] // 2
        y = y * o["stride_y"] - o["padding_y"] + o["nr"] // 2
    return x, y


class DlibProgram(nn.Module):
    """Runs a read dlib network (``Network``) on a float tensor ``(n, k, rows, cols)`` already
    made by the input layer; returns the last layer's output (``(n, k', rows', cols')`` for a
    convolutional network, ``(n, outputs)`` after an ``fc_``). Raises ``ValueError`` at
    construction for a layer kind it does not run."""

    def __init__(self, network: Network) -> None:
        super().__init__()
        self.steps: list[tuple[str, Any]] = []
        self.convs = nn.ModuleList()
        self.linears = nn.ModuleList()
        program = network.program
        index = 0
        while index < len(program):
            node, layer = program[index]
            index += 1
            if node.kind in ("tag", "skip"):
                self.steps.append((node.kind, node.tag))
                continue
            assert layer is not None
            if layer.name == "con":
                following = program[index][1] if index < len(program) else None
                fold = following if following is not None and following.name == "affine" else None
                if fold is not None and not fold.options.get("disabled"):
                    index += 1
                self.steps.append(("conv", len(self.convs)))
                self.convs.append(_conv(layer, fold))
            elif layer.name == "affine":
                if layer.options.get("disabled"):
                    continue
                gamma = torch.from_numpy(np.asarray(layer.arrays["gamma"])).reshape(1, -1, 1, 1)
                beta = torch.from_numpy(np.asarray(layer.arrays["beta"])).reshape(1, -1, 1, 1)
                name = f"affine{len(self.steps)}"
                self.register_buffer(f"{name}_gamma", gamma)
                self.register_buffer(f"{name}_beta", beta)
                self.steps.append(("affine", name))
            elif layer.name == "relu":
                if not layer.options.get("disabled"):
                    self.steps.append(("relu", None))
            elif layer.name in ("max_pool", "avg_pool"):
                self.steps.append((layer.name, dict(layer.options)))
            elif layer.name == "fc":
                self.steps.append(("fc", len(self.linears)))
                self.linears.append(_linear(layer))
            elif layer.name == "add_prev":
                self.steps.append(("add_prev", node.tag))
            else:
                raise ValueError(f"layer {layer.name!r} is not supported")

    @property
    def weight(self) -> torch.Tensor:
        """The first convolution's filters: their device and dtype are the network's."""
        conv = self.convs[0]
        assert isinstance(conv, nn.Conv2d)
        return conv.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tags: dict[int, torch.Tensor] = {}
        for kind, arg in self.steps:
            if kind == "conv":
                x = self.convs[arg](x)
            elif kind == "relu":
                x = F.relu(x)
            elif kind == "affine":
                x = x * getattr(self, f"{arg}_gamma") + getattr(self, f"{arg}_beta")
            elif kind == "tag":
                tags[arg] = x
            elif kind == "skip":
                x = tags[arg]
            elif kind == "add_prev":
                x = _add_padded(x, tags[arg])
            elif kind in ("max_pool", "avg_pool"):
                x = _pool(kind, arg, x)
            elif kind == "fc":
                x = self.linears[arg](x.flatten(1))
        return x


def _conv(layer: Layer, affine: Layer | None) -> nn.Conv2d:
    o = layer.options
    filters = np.asarray(layer.arrays["filters"], dtype=np.float32)
    biases = layer.arrays.get("biases")
    conv = nn.Conv2d(
        filters.shape[1],
        filters.shape[0],
        (o["nr"], o["nc"]),
        stride=(o["stride_y"], o["stride_x"]),
        padding=(o["padding_y"], o["padding_x"]),
        bias=True,
    )
    weight = filters.astype(np.float64)
    bias = np.zeros(filters.shape[0]) if biases is None else np.asarray(biases, dtype=np.float64)
    if affine is not None and not affine.options.get("disabled"):
        gamma = np.asarray(affine.arrays["gamma"], dtype=np.float64)
        beta = np.asarray(affine.arrays["beta"], dtype=np.float64)
        weight = weight * gamma[:, None, None, None]
        bias = bias * gamma + beta
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(weight.astype(np.float32)))
        assert conv.bias is not None  # built with bias=True
        conv.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
    return conv


def _linear(layer: Layer) -> nn.Linear:
    weights = np.asarray(layer.arrays["weights"], dtype=np.float32)  # (inputs, outputs)
    biases = layer.arrays.get("biases")
    linear = nn.Linear(weights.shape[0], weights.shape[1], bias=biases is not None)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(weights.T)))
        if biases is not None:
            linear.bias.copy_(torch.from_numpy(np.asarray(biases, dtype=np.float32)))
    return linear


def _pool(kind: str, o: dict[str, int], x: torch.Tensor) -> torch.Tensor:
    if o["nr"] == 0 or o["nc"] == 0:  # avg_pool_everything / max_pool_everything
        return x.amax(dim=(2, 3), keepdim=True) if kind == "max_pool" else x.mean(dim=(2, 3), keepdim=True)
    kernel, stride = (o["nr"], o["nc"]), (o["stride_y"], o["stride_x"])
    padding = (o["padding_y"], o["padding_x"])
    if kind == "max_pool":
        return F.max_pool2d(x, kernel, stride, padding)
    return F.avg_pool2d(x, kernel, stride, padding, count_include_pad=False)


def _add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if a.shape == b.shape:
        return a + b
    shape = [max(p, q) for p, q in zip(a.shape, b.shape, strict=True)]

    def grow(t: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        for dim in (3, 2, 1):
            pads += [0, shape[dim] - t.shape[dim]]
        return F.pad(t, pads)

    return grow(a) + grow(b)
