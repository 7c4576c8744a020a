"""Inference precision for the torch-backed embedders (CLIP, sentence-transformers).

Importing this module is cheap: torch is imported only when a function needs it, and nothing
here loads a model.

Why these choices (measured on the 2-core worker CPUs, see ``PERFORMANCE.md``): with the
weights cast to bfloat16 (``model.to(torch.bfloat16)``), a CPU with native bf16 matrix
instructions runs open_clip ViT-B-32 about 5x faster than in float32 (bf16 vs fp32 cosine
>= 0.999); ``torch.autocast`` is slower than float32 there, so weights are cast instead. float16
matmul on those CPUs is no faster than float32, so ``fp16`` on CPU is refused.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    import torch

Precision = Literal["auto", "fp32", "bf16", "fp16"]
"""A precision setting: ``auto`` or one of the resolved precisions."""

ResolvedPrecision = Literal["fp32", "bf16", "fp16"]

PRECISIONS: tuple[str, ...] = get_args(Precision)
"""The accepted precision settings, in the order they are documented."""

_CPUINFO = Path("/proc/cpuinfo")
_NATIVE_BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU has native bf16 matrix instructions (Intel AMX-BF16, or AVX512-BF16 as
    on Intel Cooper Lake+ and AMD Zen 4+), where bf16 inference is several times faster than
    fp32.

    Facts come from torch's own CPU feature probes (cpuinfo, as used by its oneDNN kernels):
    ``torch.cpu._is_amx_tile_supported()`` and ``torch.cpu._is_avx512_bf16_supported()``
    (private, present in torch 2.x; each looked up with ``getattr`` in case a release drops
    it); when neither probe exists, the ``amx_bf16`` / ``avx512_bf16`` flags of
    ``/proc/cpuinfo`` (Linux). ``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` is not used:
    it is also true on plain AVX-512 CPUs, where oneDNN emulates bf16 without a speed-up.
    Imports torch; the answer is cached for the process."""
    import torch

    probes = [
        getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    ]
    available = [probe for probe in probes if callable(probe)]
    if available:
        try:
            return any(bool(probe()) for probe in available)
        except Exception:  # a private probe that changed signature: fall back to the flags
            pass
    return bool(_NATIVE_BF16_FLAGS & _cpuinfo_flags())


def _cpuinfo_flags() -> set[str]:
    try:
        text = _CPUINFO.read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def resolve_device(device: str) -> str:
    """``"auto"`` becomes ``"cuda"`` when a CUDA device is available, else ``"cpu"``;
    any other value is returned unchanged (imports torch only for ``"auto"``)."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_precision(precision: str, device: str) -> None:
    """Raise ``ValueError`` for a precision that is not one of ``PRECISIONS``, or for ``fp16``
    on a CPU device (needs no torch unless ``device`` is ``"auto"`` and precision ``fp16``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "fp16" and _is_cpu(resolve_device(device)):
        raise ValueError(
            "precision 'fp16' is not supported on CPU (float16 matmul is no faster than float32 "
            "there); use 'bf16', 'fp32' or 'auto'"
        )


def resolve_precision(precision: str, device: str) -> ResolvedPrecision:
    """The precision to run with on ``device`` (a resolved torch device string such as
    ``"cpu"``, ``"cuda"``, ``"cuda:1"``).

    ``auto`` is ``fp16`` on CUDA, ``bf16`` on a CPU with native bf16 matrix instructions
    (``cpu_has_native_bf16``), else ``fp32``; explicit values are returned unchanged after
    ``check_precision``. Loads no model (imports torch only for ``auto`` on CPU)."""
    check_precision(precision, device)
    if precision != "auto":
        return precision  # type: ignore[return-value]
    if device.startswith("cuda"):
        return "fp16"
    if _is_cpu(device) and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def torch_dtype(precision: str) -> torch.dtype:
    """The torch dtype of a resolved precision (imports torch)."""
    import torch

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    try:
        return dtypes[precision]
    except KeyError:
        raise ValueError(f"not a resolved precision: {precision!r} (expected fp32, bf16 or fp16)") from None


def _is_cpu(device: str) -> bool:
    return device.split(":", 1)[0] == "cpu"
