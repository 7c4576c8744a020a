"""SCENEDEX_FACES__RUNTIME: the settings build dlib's runtime by default and the torch port on
request, and switching runtime or precision changes exactly the face ids (issue 30)."""

from __future__ import annotations

import pytest

from scenedex.adapters.face_embedders import build_face_embedder
from scenedex.adapters.faces import DlibFaceEmbedder
from scenedex.adapters.faces_torch import TorchFaceEmbedder
from scenedex.settings import Settings


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for key, value in env.items():
        monkeypatch.setenv(f"SCENEDEX_FACES__{key.upper()}", value)
    return Settings()


def test_default_runtime_is_dlib_with_the_ids_records_already_have(monkeypatch: pytest.MonkeyPatch) -> None:
    embedder = build_face_embedder(_settings(monkeypatch))
    assert isinstance(embedder, DlibFaceEmbedder)
    assert ":torch" not in embedder.model_id
    assert embedder.detection_id == "hog-side720-upsample0-minscore0.25-jitter1-landmarks5-maxside1600"


def test_torch_runtime_names_runtime_and_precision_in_both_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    dlib_ids = build_face_embedder(_settings(monkeypatch))
    torch = build_face_embedder(_settings(monkeypatch, runtime="torch", device="cpu"))
    assert isinstance(torch, TorchFaceEmbedder)
    assert torch.device == "cpu" and torch.precision == "fp32"
    assert torch.model_id == f"{dlib_ids.model_id}:torch-fp32"
    assert torch.detection_id == f"{dlib_ids.detection_id}-torch-fp32"
    bf16 = build_face_embedder(_settings(monkeypatch, runtime="torch", device="cpu", precision="bf16"))
    assert bf16.model_id.endswith(":torch-bf16") and bf16.detection_id.endswith("-torch-bf16")


def test_torch_runtime_refuses_what_it_does_not_port(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="upsample"):
        build_face_embedder(_settings(monkeypatch, runtime="torch", upsample="1"))
    with pytest.raises(ValueError, match="fp16"):
        build_face_embedder(_settings(monkeypatch, upsample="0", device="cpu", precision="fp16"))


def test_the_bench_compares_against_the_default_path_whatever_is_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from scenedex.tools.bench_face_runtime import default_face_path

    configured = _settings(
        monkeypatch, runtime="torch", detector="cnn", detect_side="480", min_score="0", threads="1"
    )
    default = build_face_embedder(default_face_path(configured))
    assert isinstance(default, DlibFaceEmbedder)
    assert default.detection_id == "hog-side720-upsample0-minscore0.25-jitter1-landmarks5-maxside1600"
    assert default_face_path(configured).faces.threads == 1  # what is not the path is kept


def test_the_bench_previous_detector_is_dlib_hog_whatever_is_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from scenedex.tools.bench_faces import previous_face_settings

    configured = _settings(monkeypatch, runtime="torch", detector="cnn", detect_side="480", precision="bf16")
    previous = build_face_embedder(previous_face_settings(configured))  # torch would refuse upsample 1
    assert isinstance(previous, DlibFaceEmbedder)
    assert previous.detection_id == "hog-upsample1-minscore0.3-jitter1-landmarks5-maxside1600"
