"""Inference precision where it needs torch or open_clip (torch dtypes, the CPU's bf16 probe, the
CLIP preprocessing id, the wiring): not in the unit tier, which imports no model library (issue
27; tests/unit/test_precision.py has the rest). No weights are loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenedex.adapters import torch_runtime
from scenedex.adapters.clip import OpenClipImageEmbedder
from scenedex.adapters.text import SentenceTransformerTextEmbedder
from scenedex.adapters.torch_runtime import cpu_has_native_bf16, torch_dtype
from scenedex.application import wiring as bootstrap_module
from scenedex.settings import ClipSettings, Settings, TextSettings
from tests.unit.test_precision import _text_embedder_or_skip


@pytest.fixture
def native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch_runtime, "cpu_has_native_bf16", lambda: True)


def test_torch_dtypes() -> None:
    torch = pytest.importorskip("torch")
    assert torch_dtype("fp32") is torch.float32
    assert torch_dtype("bf16") is torch.bfloat16
    assert torch_dtype("fp16") is torch.float16
    with pytest.raises(ValueError):
        torch_dtype("auto")


def test_native_bf16_probes_torch_then_cpuinfo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(torch_runtime, "_CPUINFO", cpuinfo)
    for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        monkeypatch.delattr(torch.cpu, name, raising=False)
    try:
        cpu_has_native_bf16.cache_clear()
        cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n")
        assert cpu_has_native_bf16() is True
        cpu_has_native_bf16.cache_clear()
        cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f amx_tile amx_bf16\n")
        assert cpu_has_native_bf16() is True
        cpu_has_native_bf16.cache_clear()
        cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n")
        assert cpu_has_native_bf16() is False
        cpu_has_native_bf16.cache_clear()
        cpuinfo.unlink()
        assert cpu_has_native_bf16() is False

        # The torch probes win over the flags when they exist.
        cpu_has_native_bf16.cache_clear()
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
        assert cpu_has_native_bf16() is True
        cpu_has_native_bf16.cache_clear()
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
        cpuinfo.write_text("flags\t\t: avx512_bf16\n")
        assert cpu_has_native_bf16() is False
    finally:
        cpu_has_native_bf16.cache_clear()


@pytest.mark.usefixtures("native_bf16")
def test_clip_precision_resolves_without_loading_and_ends_the_preprocessing_id() -> None:
    pytest.importorskip("open_clip")
    auto = OpenClipImageEmbedder("ViT-B-32", "none", device="cpu")
    fp32 = OpenClipImageEmbedder("ViT-B-32", "none", device="cpu", precision="fp32")
    assert auto.precision == "bf16"
    assert fp32.precision == "fp32"
    assert auto.preprocessing_id.endswith("|bf16")
    assert fp32.preprocessing_id.endswith("|fp32")
    assert auto.preprocessing_id.removesuffix("|bf16") == fp32.preprocessing_id.removesuffix("|fp32")
    assert auto.model_id == fp32.model_id == "open_clip:ViT-B-32:untrained"
    assert auto._model is None and fp32._model is None


def test_clip_auto_on_a_cpu_without_native_bf16_is_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("open_clip")
    monkeypatch.setattr(torch_runtime, "cpu_has_native_bf16", lambda: False)
    embedder = OpenClipImageEmbedder("ViT-B-32", "none", device="cpu")
    assert embedder.precision == "fp32"
    assert embedder.preprocessing_id.endswith("|fp32")


@pytest.mark.usefixtures("native_bf16")
def test_bootstrap_wires_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("open_clip")
    _text_embedder_or_skip()
    settings = Settings(
        _env_file=None,
        clip=ClipSettings(pretrained="none", device="cpu", precision="fp32"),
        text=TextSettings(device="cpu", precision="bf16"),
    )
    image_embedder = bootstrap_module._clip(settings)
    text_embedder = bootstrap_module._text(settings)
    assert isinstance(image_embedder, OpenClipImageEmbedder)
    assert isinstance(text_embedder, SentenceTransformerTextEmbedder)
    assert image_embedder.precision == "fp32"
    assert text_embedder.precision == "bf16"
    assert text_embedder.model_id.endswith(":bf16")
