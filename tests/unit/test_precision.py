"""Inference precision: resolving ``auto``, refusing fp16 on CPU, settings, ids (no weights loaded)."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest
from pydantic import ValidationError

from scenedex.adapters import torch_runtime
from scenedex.adapters.clip import OpenClipImageEmbedder
from scenedex.adapters.text import SentenceTransformerTextEmbedder, packaged_minilm_dir
from scenedex.adapters.torch_runtime import (
    PRECISIONS,
    check_precision,
    cpu_has_native_bf16,
    resolve_precision,
    torch_dtype,
)
from scenedex.application import wiring as bootstrap_module
from scenedex.domain.errors import ModelLoadError
from scenedex.settings import ClipSettings, Settings, TextSettings


@pytest.fixture
def native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch_runtime, "cpu_has_native_bf16", lambda: True)


@pytest.fixture
def no_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch_runtime, "cpu_has_native_bf16", lambda: False)


def test_auto_on_cpu_follows_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch_runtime, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(torch_runtime, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"


@pytest.mark.usefixtures("native_bf16")
def test_auto_on_cuda_is_fp16_and_explicit_values_are_kept() -> None:
    assert resolve_precision("auto", "cuda") == "fp16"
    assert resolve_precision("auto", "cuda:1") == "fp16"
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("bf16", "cuda") == "bf16"
    assert resolve_precision("fp16", "cuda:0") == "fp16"
    # Neither CPU nor CUDA: no guess.
    assert resolve_precision("auto", "mps") == "fp32"


@pytest.mark.usefixtures("no_native_bf16")
def test_explicit_bf16_on_cpu_is_honoured_without_native_support() -> None:
    assert resolve_precision("bf16", "cpu") == "bf16"


def test_fp16_on_cpu_and_unknown_values_are_refused() -> None:
    with pytest.raises(ValueError, match="not supported on CPU"):
        check_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="not supported on CPU"):
        resolve_precision("fp16", "cpu:0")
    for bad in ("float16", "BF16", "", "int8"):
        with pytest.raises(ValueError, match="precision must be one of"):
            check_precision(bad, "cpu")


def test_fp16_with_auto_device_is_refused_when_auto_means_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch_runtime, "resolve_device", lambda device: "cpu")
    with pytest.raises(ValueError, match="not supported on CPU"):
        check_precision("fp16", "auto")
    monkeypatch.setattr(torch_runtime, "resolve_device", lambda device: "cuda")
    check_precision("fp16", "auto")


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


# --------------------------------------------------------------------------------- settings


def test_settings_precision_defaults_to_auto_and_accepts_the_four_values() -> None:
    assert ClipSettings().precision == "auto"
    assert TextSettings().precision == "auto"
    for value in PRECISIONS:
        assert ClipSettings(precision=value).precision == value
        assert TextSettings(precision=value).precision == value
    assert set(get_args(ClipSettings.model_fields["precision"].annotation)) == set(PRECISIONS)
    assert set(get_args(TextSettings.model_fields["precision"].annotation)) == set(PRECISIONS)


@pytest.mark.parametrize("bad", ["float32", "bfloat16", "int8", "", "BF16"])
def test_settings_reject_other_precisions(bad: str) -> None:
    with pytest.raises(ValidationError):
        ClipSettings(precision=bad)
    with pytest.raises(ValidationError):
        TextSettings(precision=bad)


def test_settings_read_precision_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCENEDEX_CLIP__PRECISION", "bf16")
    monkeypatch.setenv("SCENEDEX_TEXT__PRECISION", "fp32")
    settings = Settings(_env_file=None)
    assert settings.clip.precision == "bf16"
    assert settings.text.precision == "fp32"
    monkeypatch.setenv("SCENEDEX_TEXT__PRECISION", "half")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


# --------------------------------------------------------------------------------- embedders


def test_embedders_refuse_fp16_on_cpu_at_construction() -> None:
    with pytest.raises(ValueError, match="not supported on CPU"):
        OpenClipImageEmbedder("ViT-B-32", "none", device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        OpenClipImageEmbedder("ViT-B-32", "none", device="cpu", precision="half")


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


def _text_embedder_or_skip(**kwargs: str) -> SentenceTransformerTextEmbedder:
    try:
        packaged_minilm_dir()
    except ModelLoadError as exc:
        pytest.skip(str(exc))
    return SentenceTransformerTextEmbedder(device="cpu", **kwargs)


@pytest.mark.usefixtures("native_bf16")
def test_text_precision_ends_the_model_id_without_loading() -> None:
    auto = _text_embedder_or_skip()
    fp32 = _text_embedder_or_skip(precision="fp32")
    assert auto.precision == "bf16"
    assert auto.model_id.endswith(":bf16")
    assert fp32.model_id.endswith(":fp32")
    assert auto.model_id.removesuffix(":bf16") == fp32.model_id.removesuffix(":fp32")
    assert auto._model is None
    with pytest.raises(ValueError, match="not supported on CPU"):
        _text_embedder_or_skip(precision="fp16")


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
