"""Inference precision: resolving ``auto``, refusing fp16 on CPU, settings, ids (no weights loaded)."""

from __future__ import annotations

from typing import get_args

import pytest
from pydantic import ValidationError

from scenedex.adapters import torch_runtime
from scenedex.adapters.clip import OpenClipImageEmbedder
from scenedex.adapters.text import SentenceTransformerTextEmbedder, packaged_minilm_dir
from scenedex.adapters.torch_runtime import (
    PRECISIONS,
    check_precision,
    resolve_precision,
)
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
