"""A reader of dlib's DNN serialisation (``net_type`` files such as the two networks shipped in
the ``face_recognition_models`` wheel), without dlib.

The formats, from dlib's C++ source (github.com/davisking/dlib, read at commit 3d40bf57):

- integers (``dlib/serialize.h`` ``pack_int``/``unpack_int``, lines ~343-470): one control byte
  (low 4 bits: the number of bytes that follow, 1-8; bit 0x80: negative), then the magnitude's
  bytes, least significant first. 0 is ``01 00``.
- ``float``/``double`` outside tensors ("portable float", ``serialize.h`` lines ~650-780 and
  ``float_details.h``): two integers as above, a 64-bit ``mantissa`` and a 16-bit ``exponent``;
  the value is ``mantissa * 2**exponent``, except exponent 32000 (+inf), 32001 (-inf), 32002
  (nan). A first byte with any of the bits 0x70 set means dlib's old ASCII float format
  (refused here: neither shipped file uses it).
- ``bool``: one byte, ASCII ``'1'`` or ``'0'``; ``std::string``: its length (integer) then bytes.
- ``resizable_tensor`` (``dlib/cuda/tensor.h`` lines 461-510): version int 2, then
  ``num_samples, k, nr, nc`` (integers), then the values as raw little-endian IEEE float32.
- ``alias_tensor`` (``tensor.h`` line 674): version int 1 then the four sizes (no data).
- networks (``dlib/dnn/core.h``): ``add_loss_layer`` = version 1, the loss details, the
  subnetwork; ``add_layer`` (line 1056) = version (1-2), **the subnetwork first**, then the
  layer's details, three bools, the tensors ``x_grad``, ``cached_output`` and (version 2)
  ``params_grad``; the innermost ``add_layer`` over the input layer (line 1441) = version (2-3),
  the input layer, the details, three bools, ``x_grad``, ``cached_output``, ``grad_final`` and
  (version 3) ``_sample_expansion_factor``; ``add_tag_layer`` (line 1694) and ``add_skip_layer``
  (line 3128) = version 1 then the subnetwork. So a file holds every layer's header from the
  output inwards, then the input layer, then every layer's details from the input outwards.
  The order cannot be told from the bytes alone (tag and layer versions are both small
  integers), so ``read_network`` takes the network's structure (``Node`` list), written from
  the C++ type as dlib's examples define it (``resnet.py``, ``mmod.py``).
- layer details (``dlib/dnn/layers.h``): ``con_`` (lines 291-355, versions ``con_4``-``con_6``),
  ``fc_`` (2200-2243, ``fc_2``/``fc_3``), ``bn_`` (1937-1988, ``bn_con2``/``bn_fc2``),
  ``affine_`` (2911-2956: ``affine_``/``affine_2``, or a ``bn_`` stored in its place, which dlib
  folds into ``gamma = bn_gamma / sqrt(running_variance + eps)``,
  ``beta = bn_beta - gamma * running_mean``, lines 2800-2818), ``relu_`` (``relu_``/``relu_2``),
  ``max_pool_2``/``avg_pool_2`` (1265-1304, 1462-1502), ``add_prev_`` (3039-3050);
  inputs (``dlib/dnn/input.h``): ``input_rgb_image``/``input_rgb_image_sized`` (mean red,
  green, blue as portable floats; the sized one then its rows and columns) and
  ``input_rgb_image_pyramid``/``input_rgb_image_pyramid2`` (means, then the pyramid padding and
  outer padding; 10 and 11 when absent); losses (``dlib/dnn/loss.h``): ``loss_metric_``/
  ``loss_metric_2`` (margin, distance threshold) and ``loss_mmod_`` with its ``mmod_options``
  (lines 1205-1260, versions 1-4).

Everything is read into numpy arrays; nothing here imports torch. Errors: ``DlibFormatError``
(a ``ValueError``) for any byte sequence that does not follow the structure, with the offset.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

INF_EXPONENT, NINF_EXPONENT, NAN_EXPONENT = 32000, 32001, 32002
"""``float_details::is_inf``, ``is_ninf``, ``is_nan`` (``dlib/float_details.h``)."""


class DlibFormatError(ValueError):
    """The bytes do not follow dlib's serialisation of the expected network."""


@dataclass(frozen=True)
class Node:
    """One element of a dlib network type, from the output inwards: ``kind`` is ``"layer"``
    (an ``add_layer``; ``layer`` names the expected details: ``con``, ``fc``, ``affine``,
    ``relu``, ``max_pool``, ``avg_pool``, ``add_prev``), ``"tag"`` or ``"skip"`` (``tag`` is the
    tag id: ``tag1``, ``skip1``, ``add_prev1`` all name 1)."""

    kind: str
    layer: str = ""
    tag: int = 0


@dataclass
class Layer:
    """The details of one layer as stored: ``name`` (``con``, ``fc``, ``affine``, ...), integer
    and float ``options`` (e.g. ``num_filters``, ``nr``, ``stride_y``, ``padding_y``), and the
    arrays: ``con``: ``filters`` ``(num_filters, k, nr, nc)`` float32, ``biases``
    ``(num_filters,)`` float32 or ``None`` (``use_bias`` false); ``fc``: ``weights``
    ``(num_inputs, num_outputs)`` float32 (dlib multiplies ``input @ weights``), ``biases`` or
    ``None``; ``affine``: ``gamma``, ``beta`` ``(k,)`` float32 (batch norm already folded)."""

    name: str
    version: str
    options: dict[str, Any] = field(default_factory=dict)
    arrays: Mapping[str, np.ndarray | None] = field(default_factory=dict)


@dataclass
class Network:
    """A read network: ``loss`` (name and options), ``input`` (name and options: ``avg_red``,
    ``avg_green``, ``avg_blue`` in 0-255 pixel units, pyramid paddings), and ``program``: the
    structure from the input outwards, each entry ``(Node, Layer | None)`` (``None`` for tags
    and skips)."""

    loss: Layer
    input: Layer
    program: list[tuple[Node, Layer | None]]


class _Stream:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def fail(self, message: str) -> DlibFormatError:
        return DlibFormatError(f"{message} at byte {self.pos}")

    def take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise self.fail(f"unexpected end of file reading {count} bytes")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def int(self) -> int:
        control = self.take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8:
            raise self.fail(f"bad integer control byte {control:#x}")
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def float(self) -> float:
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            raise self.fail("dlib's old ASCII float format is not supported")
        mantissa, exponent = self.int(), self.int()
        if exponent == INF_EXPONENT:
            return float("inf")
        if exponent == NINF_EXPONENT:
            return float("-inf")
        if exponent == NAN_EXPONENT:
            return float("nan")
        return float(np.ldexp(float(mantissa), exponent))

    def bool(self) -> bool:
        byte = self.take(1)
        if byte not in (b"0", b"1"):
            raise self.fail(f"bad bool byte {byte!r}")
        return byte == b"1"

    def string(self) -> str:
        return self.take(self.int()).decode("latin-1")

    def version(self, allowed: range | tuple[builtins.int, ...], what: str) -> builtins.int:
        value = self.int()
        if value not in allowed:
            raise self.fail(f"unexpected {what} version {value}")
        return value

    def tensor(self) -> np.ndarray:
        """A ``resizable_tensor``: ``(num_samples, k, nr, nc)`` float32."""
        self.version((2,), "tensor")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        values = np.frombuffer(self.take(4 * count), dtype="<f4").astype(np.float32)
        return values.reshape(shape)

    def alias_tensor(self) -> tuple[builtins.int, ...]:
        self.version((1,), "alias_tensor")
        return tuple(self.int() for _ in range(4))


def _con(s: _Stream, version: str) -> Layer:
    if version not in ("con_4", "con_5", "con_6"):
        raise s.fail(f"unexpected con_ version {version!r}")
    params = s.tensor().reshape(-1)
    options: dict[str, Any] = {
        "num_filters": s.int(),
        "nr": s.int(),
        "nc": s.int(),
        "stride_y": s.int(),
        "stride_x": s.int(),
        "padding_y": s.int(),
        "padding_x": s.int(),
    }
    filters, biases = s.alias_tensor(), s.alias_tensor()
    for name in ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult"):
        options[name] = s.float()
    options["use_bias"] = s.bool() if version in ("con_5", "con_6") else True
    if version == "con_6":
        options["use_relu"] = s.bool()
    n_filters = int(np.prod(filters))
    if params.size not in (n_filters, n_filters + int(np.prod(biases))):
        raise s.fail(f"con_ params hold {params.size} values for filters {filters}, biases {biases}")
    arrays: dict[str, np.ndarray | None] = {"filters": params[:n_filters].reshape(filters)}
    has_bias = options["use_bias"] and params.size > n_filters
    arrays["biases"] = params[n_filters:].reshape(-1) if has_bias else None
    return Layer("con", version, options, arrays)


def _fc(s: _Stream, version: str) -> Layer:
    if version not in ("fc_2", "fc_3"):
        raise s.fail(f"unexpected fc_ version {version!r}")
    options: dict[str, Any] = {"num_outputs": s.int(), "num_inputs": s.int()}
    params = s.tensor().reshape(-1)
    weights, biases = s.alias_tensor(), s.alias_tensor()
    options["bias_mode"] = s.int()  # 0 FC_HAS_BIAS, 1 FC_NO_BIAS (layers.h, fc_bias_mode)
    for name in ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult"):
        options[name] = s.float()
    options["use_bias"] = s.bool() if version == "fc_3" else True
    n_in, n_out = options["num_inputs"], options["num_outputs"]
    arrays: dict[str, np.ndarray | None] = {"weights": params[: n_in * n_out].reshape(n_in, n_out)}
    with_bias = options["bias_mode"] == 0 and params.size >= n_in * n_out + n_out
    arrays["biases"] = params[n_in * n_out : n_in * n_out + n_out] if with_bias else None
    del weights, biases
    return Layer("fc", version, options, arrays)


def _affine(s: _Stream, version: str) -> Layer:
    if version in ("bn_con2", "bn_fc2"):
        params = s.tensor().reshape(-1)
        gamma_shape, _ = s.alias_tensor(), s.alias_tensor()
        _means, _invstds = s.tensor(), s.tensor()
        running_means, running_variances = s.tensor().reshape(-1), s.tensor().reshape(-1)
        _updates, _window = s.int(), s.int()
        for _ in range(4):
            s.float()
        eps = s.float()
        n = int(np.prod(gamma_shape))
        # dlib/dnn/layers.h affine_(const bn_&), lines 2800-2818, in float32 as dlib computes it
        gamma = (params[:n] / np.sqrt(running_variances + np.float32(eps))).astype(np.float32)
        beta = (params[n : 2 * n] - gamma * running_means).astype(np.float32)
        mode = "conv" if version == "bn_con2" else "fc"
        return Layer("affine", version, {"mode": mode, "eps": eps}, {"gamma": gamma, "beta": beta})
    if version not in ("affine_", "affine_2"):
        raise s.fail(f"unexpected affine_ version {version!r}")
    params = s.tensor().reshape(-1)
    gamma_shape, _ = s.alias_tensor(), s.alias_tensor()
    mode = "conv" if s.int() == 0 else "fc"  # layer_mode: CONV_MODE 0, FC_MODE 1
    disabled = s.bool() if version == "affine_2" else False
    n = int(np.prod(gamma_shape))
    arrays = {"gamma": params[:n].copy(), "beta": params[n : 2 * n].copy()}
    return Layer("affine", version, {"mode": mode, "disabled": disabled}, arrays)


def _relu(s: _Stream, version: str) -> Layer:
    if version == "relu_2":
        return Layer("relu", version, {"disabled": s.bool()})
    if version != "relu_":
        raise s.fail(f"unexpected relu_ version {version!r}")
    return Layer("relu", version, {"disabled": False})


def _pool(name: str) -> Any:
    def read(s: _Stream, version: str) -> Layer:
        if version != f"{name}_2":
            raise s.fail(f"unexpected {name}_ version {version!r}")
        keys = ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
        return Layer(name, version, {key: s.int() for key in keys})

    return read


def _add_prev(s: _Stream, version: str) -> Layer:
    if version != "add_prev_":
        raise s.fail(f"unexpected add_prev_ version {version!r}")
    return Layer("add_prev", version)


_LAYER_READERS = {
    "con": _con,
    "fc": _fc,
    "affine": _affine,
    "relu": _relu,
    "max_pool": _pool("max_pool"),
    "avg_pool": _pool("avg_pool"),
    "add_prev": _add_prev,
}


def _input(s: _Stream) -> Layer:
    version = s.string()
    options: dict[str, Any] = {"avg_red": s.float(), "avg_green": s.float(), "avg_blue": s.float()}
    if version == "input_rgb_image_sized":
        options["nr"], options["nc"] = s.int(), s.int()
    elif version == "input_rgb_image_pyramid2":
        options["pyramid_padding"], options["pyramid_outer_padding"] = s.int(), s.int()
    elif version == "input_rgb_image_pyramid":
        options["pyramid_padding"], options["pyramid_outer_padding"] = 10, 11
    elif version != "input_rgb_image":
        raise s.fail(f"unsupported input layer {version!r}")
    name = "input_rgb_image_pyramid" if version.startswith("input_rgb_image_pyramid") else "input_rgb_image"
    return Layer(name, version, options)


def _loss(s: _Stream) -> Layer:
    version = s.string()
    if version == "loss_metric_":
        return Layer("loss_metric", version, {"margin": 0.1, "dist_thresh": 0.75})
    if version == "loss_metric_2":
        return Layer("loss_metric", version, {"margin": s.float(), "dist_thresh": s.float()})
    if version != "loss_mmod_":
        raise s.fail(f"unsupported loss layer {version!r}")
    options_version = s.version(range(1, 5), "mmod_options")
    windows = []
    if options_version == 1:
        windows.append((s.int(), s.int(), ""))
    else:
        for _ in range(s.int()):
            window_version = s.version((1, 2), "detector_window_details")
            width, height = s.int(), s.int()
            windows.append((width, height, s.string() if window_version == 2 else ""))
    options: dict[str, Any] = {
        "detector_windows": windows,
        "loss_per_false_alarm": s.float(),
        "loss_per_missed_target": s.float(),
        "truth_match_iou_threshold": s.float(),
        # test_box_overlap: iou_thresh then percent_covered_thresh (box_overlap_testing.h 123)
        "overlaps_nms": (s.float(), s.float()),
        "overlaps_ignore": (s.float(), s.float()),
        "use_image_pyramid": True,
        "use_bounding_box_regression": False,
    }
    if options_version >= 3:
        options["use_image_pyramid"] = s.int() != 0
    if options_version >= 4:
        options["use_bounding_box_regression"] = s.bool()
        options["bbr_lambda"] = s.float()
    return Layer("loss_mmod", version, options)


def _trailer(s: _Stream, version: int, innermost: bool) -> None:
    """The bookkeeping ``add_layer`` stores after a layer's details (flags, cached tensors)."""
    for _ in range(3):
        s.bool()
    s.tensor()  # x_grad
    s.tensor()  # cached_output
    if innermost:
        s.tensor()  # grad_final
        if version >= 3:
            s.int()  # _sample_expansion_factor
    elif version >= 2:
        s.tensor()  # params_grad


def read_network(path: Path | str, structure: list[Node]) -> Network:
    """Read a dlib network file whose type is ``structure`` (from the output inwards, the
    innermost element an ``add_layer`` over the input layer).

    Raises ``OSError`` if the file cannot be read, ``DlibFormatError`` if its bytes do not
    follow ``structure`` (a wrong layer name or version, a truncated file, bytes left over)."""
    s = _Stream(Path(path).read_bytes())
    s.version((1,), "add_loss_layer")
    loss = _loss(s)
    if not structure or structure[-1].kind != "layer":
        raise DlibFormatError("the innermost element must be a layer over the input")
    versions: list[int] = []
    for node in structure[:-1]:
        if node.kind == "layer":
            versions.append(s.version((1, 2), "add_layer"))
        elif node.kind in ("tag", "skip"):
            versions.append(s.version((1,), f"add_{node.kind}_layer"))
        else:
            raise DlibFormatError(f"unknown node kind {node.kind!r}")
    inner_version = s.version((2, 3), "input add_layer")
    input_layer = _input(s)
    program: list[tuple[Node, Layer | None]] = []
    for index in range(len(structure) - 1, -1, -1):
        node = structure[index]
        if node.kind != "layer":
            program.append((node, None))
            continue
        name = s.string()
        reader = _LAYER_READERS.get(node.layer)
        if reader is None:
            raise DlibFormatError(f"unsupported layer {node.layer!r}")
        layer = reader(s, name)
        innermost = index == len(structure) - 1
        _trailer(s, inner_version if innermost else versions[index], innermost)
        program.append((node, layer))
    if s.pos != len(s.data):
        raise s.fail(f"{len(s.data) - s.pos} bytes left after the network")
    return Network(loss, input_layer, program)
