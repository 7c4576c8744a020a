"""Faces on the tensor runtime against dlib's own (issue 30): the figures ``scenedex bench``
reports under ``face_runtime`` and at the top level, and a stand-alone run without a database.

- ``faces_device``: where the configured face networks run (``cpu``, ``cuda``; ``cpu (dlib)``
  for the dlib runtime).
- ``faces_speedup_default``: the faces step of a forced full reprocess of the bench owner with
  today's default face path (``default_face_path``: dlib's runtime, HOG at a 720-px side) over
  the same with the torch runtime, s/scene, same library, same run; ``faces_to_clip_default``:
  the torch run's faces step over the configured run's CLIP step (both at the library's
  sampling: the bench library stores keyframes only, so one frame per scene; the
  ``frames_per_scene`` part of the bench measures sampled frames).
- ``face_parity``: ``tools/face_parity.measure`` on the real media (the 16 labelled
  faces, 6 detector images), ``{descriptor_max_l2, detection_min_iou, detection_max_score_diff,
  extra_detections, compared}``.
- ``face_detectors``: per candidate ``{recall, false_positives, ms_per_frame}`` on the labelled
  face check (``tools/face_check``), one frame per call (decode, detection, landmarks and
  descriptors).

``python -m scenedex.scripts.face_runtime_bench [--media DIR] [--no-parity]`` runs the
candidates, the parity and a bare-network timing (ms per chip and per frame, dlib vs torch)
without a database.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scenedex.settings import Settings

TOP_LEVEL_KEYS = (
    "faces_device",
    "faces_to_clip_default",
    "faces_speedup_default",
    "face_parity",
    "face_detectors",
)
"""The figures ``scenedex bench --json`` also reports at the top level."""

TORCH_CANDIDATES: dict[str, dict[str, Any]] = {
    "dlib HOG side 720 (default), dlib ResNet": {"runtime": "dlib"},
    "dlib HOG side 720, torch ResNet": {"runtime": "torch"},
    "MMOD torch side 360": {"runtime": "torch", "detector": "cnn", "detect_side": 360, "min_score": 0.0},
    "MMOD torch side 480": {"runtime": "torch", "detector": "cnn", "detect_side": 480, "min_score": 0.0},
    "MMOD torch side 720": {"runtime": "torch", "detector": "cnn", "detect_side": 720, "min_score": 0.0},
}
"""Face settings overrides measured on the face check (``face_detectors``)."""


def faces_device(embedder: Any) -> str:
    """``embedder.device`` for the torch runtime, ``cpu (dlib)`` otherwise."""
    return str(getattr(embedder, "device", "cpu (dlib)"))


DEFAULT_PATH_FIELDS = (
    "runtime",
    "detector",
    "detect_side",
    "upsample",
    "min_score",
    "num_jitters",
    "max_side",
)
"""The face settings that make today's default face path (``FaceSettings``' defaults: dlib's
HOG at a 720-px side and dlib's ResNet); the other face settings (threads, sampling) are kept."""


def default_face_path(settings: Settings) -> Settings:
    """``settings`` with ``DEFAULT_PATH_FIELDS`` at ``FaceSettings``' defaults: the path
    ``faces_speedup_default`` compares against, whatever the configured detector (a configured
    ``detector=cnn`` would otherwise force dlib's own CNN, ~18 s per 720p frame on a 2-core CPU)."""
    from scenedex.settings import FaceSettings

    defaults = FaceSettings.model_fields
    return with_faces(settings, **{name: defaults[name].default for name in DEFAULT_PATH_FIELDS})


def with_faces(settings: Settings, **update: Any) -> Settings:
    """``settings`` with ``update`` applied to its face settings."""
    return settings.model_copy(update={"faces": settings.faces.model_copy(update=update)})


def measure_face_runtime(
    services: Any,
    owner_id: Any,
    scenes: int,
    full_steps: dict[str, dict[str, Any]],
    real_media: Path | None,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """The figures of the module docstring for the bench owner (``services`` a
    ``bootstrap``-made ``Services``). Runs two forced full reprocesses; raises what the runner
    raises on infrastructure errors."""
    from scenedex.domain.request import ReprocessRequest, ReprocessScope
    from scenedex.domain.spec import EmbeddingStepType
    from scenedex.tools.bench_faces import step_ms_per_scene

    faces_step = EmbeddingStepType.SCENE_PERSON_EMBEDDINGS
    clip_ms = step_ms_per_scene(full_steps, EmbeddingStepType.SCENE_CLIP_EMBEDDINGS, scenes)
    runs: dict[str, dict[str, Any]] = {}
    runtimes: dict[str, Any] = {}
    for runtime in ("dlib", "torch"):
        settings = (
            default_face_path(services.settings)
            if runtime == "dlib"
            else with_faces(services.settings, runtime="torch")
        )
        other = services.with_settings(settings, keep_face_embedder=False)
        runtimes[runtime] = other
        say(f"full reprocess with the {runtime} face runtime ({other.face_embedder.detection_id})...")
        started = time.perf_counter()
        progress = other.runner().run(ReprocessRequest(ReprocessScope.OWNER, owner_id=owner_id, force=True))
        seconds = time.perf_counter() - started
        steps = {entry.pop("step"): entry for entry in progress.to_dict()["steps"]}
        runs[runtime] = {
            "model_id": other.face_embedder.model_id,
            "detection_id": other.face_embedder.detection_id,
            "faces_step_ms_per_scene": step_ms_per_scene(steps, faces_step, scenes),
            "scenes_per_s": round(scenes / seconds, 2) if seconds > 0 else 0.0,
            "failed": progress.failed,
        }
    dlib_ms, torch_ms = runs["dlib"]["faces_step_ms_per_scene"], runs["torch"]["faces_step_ms_per_scene"]
    figures: dict[str, Any] = {
        "faces_device": faces_device(runtimes["torch"].face_embedder),
        "runs": runs,
        "clip_step_ms_per_scene": clip_ms,
        "faces_to_clip_default": round(torch_ms / clip_ms, 3) if clip_ms else None,
        "faces_speedup_default": round(dlib_ms / torch_ms, 2) if torch_ms else None,
        "face_parity": None,
        "face_detectors": None,
    }
    if real_media is not None and (real_media / "astronaut.png").is_file():
        say("face parity with dlib (16 descriptors, 6 CNN images; dlib's CNN is slow here)...")
        figures["face_parity"] = parity_figures(runtimes["torch"].face_embedder, real_media)
        say("face detector candidates on the labelled face check...")
        figures["face_detectors"] = detector_figures(services.settings, real_media)
    return figures


def parity_figures(embedder: Any, real_media: Path) -> dict[str, Any]:
    """``parity.measure`` with the networks of a ``TorchFaceEmbedder`` (its device and
    precision), as a dict; ``device`` and ``precision`` added."""
    from scenedex.adapters.dlib_torch.mmod import MmodFaceDetector
    from scenedex.adapters.faces import CNN_DETECTOR_FILE, face_models_dir
    from scenedex.adapters.torch_runtime import torch_dtype
    from scenedex.tools.face_parity import measure

    descriptor, _ = embedder._networks()
    detector = MmodFaceDetector.load(face_models_dir() / CNN_DETECTOR_FILE)
    detector = detector.to(embedder.device, torch_dtype(embedder.precision))
    result = measure(real_media, descriptor, detector).to_dict()
    return {"device": embedder.device, "precision": embedder.precision, **result}


def detector_figures(
    settings: Settings, real_media: Path, candidates: dict[str, dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """Per candidate (``TORCH_CANDIDATES`` by default) ``{recall, found, faces,
    false_positives, ms_per_frame, missed}`` on the labelled face check."""
    from scenedex.adapters.face_embedders import build_face_embedder
    from scenedex.tools.face_check import build_face_check, evaluate

    frames = build_face_check(real_media)
    figures = {}
    for name, update in (candidates or TORCH_CANDIDATES).items():
        embedder = build_face_embedder(with_faces(settings, **update))
        embedder.detect_faces([frames[0].data])  # load the models outside the timing
        result = evaluate(name, embedder.detect_faces, frames)
        figures[name] = {
            "recall": round(result.recall, 4),
            "found": result.found,
            "faces": result.faces,
            "false_positives": result.false_positives,
            "ms_per_frame": round(result.ms_per_image, 1),
            "missed": result.missed,
        }
    return figures


def bare_network_figures(repeats: int = 3, precision: str = "fp32", device: str = "cpu") -> dict[str, Any]:
    """Best-of-``repeats`` milliseconds of the networks alone on random inputs: dlib's ResNet
    per chip (``compute_face_descriptor_from_aligned_image``, one at a time as dlib-bin runs it,
    on this CPU) against the port at batches 1, 16 and 64; the MMOD port per 1280x720 frame at
    working sides 360, 480 and 720 (tiling included), 2 frames per forward. The port runs on
    ``device`` with its weights cast to the resolved ``precision`` (``fp32``, ``bf16``,
    ``fp16``: ``torch_runtime.torch_dtype``); raises ``ValueError`` for another value."""
    import dlib
    import numpy as np
    import torch

    from scenedex.adapters.dlib_torch.mmod import MmodFaceDetector
    from scenedex.adapters.dlib_torch.resnet import FaceDescriptorNet
    from scenedex.adapters.faces import CNN_DETECTOR_FILE, RECOGNITION_FILE, face_models_dir
    from scenedex.adapters.torch_runtime import torch_dtype

    def best(function: Callable[[], Any]) -> float:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            function()
            times.append(time.perf_counter() - started)
        return min(times)

    models = face_models_dir()
    rng = np.random.default_rng(30)
    chips = rng.integers(0, 256, (64, 150, 150, 3), dtype=np.uint8)
    recogniser = dlib.face_recognition_model_v1(str(models / RECOGNITION_FILE))
    dtype = torch_dtype(precision)
    net = FaceDescriptorNet.load(models / RECOGNITION_FILE).to(device, dtype)
    net = net.to(memory_format=torch.channels_last)
    figures: dict[str, Any] = {
        "precision": precision,
        "device": device,
        "dlib_ms_per_chip": round(
            1000 * best(lambda: [recogniser.compute_face_descriptor(c) for c in chips[:4]]) / 4, 1
        ),
    }
    with torch.inference_mode():
        for batch in (1, 16, 64):
            tensor = torch.from_numpy(chips[:batch]).to(device)
            net(tensor)
            seconds = best(functools.partial(net, tensor))
            figures[f"torch_ms_per_chip_batch{batch}"] = round(1000 * seconds / batch, 1)
    detector = MmodFaceDetector.load(models / CNN_DETECTOR_FILE).to(device, dtype)
    for side in (360, 480, 720):
        width = round(side * 16 / 9)
        frames = [rng.integers(0, 256, (side, width, 3), dtype=np.uint8) for _ in range(2)]
        detector.detect(frames, batch_size=2)
        seconds = best(functools.partial(detector.detect, frames, batch_size=2))
        figures[f"mmod_torch_ms_per_frame_side{side}"] = round(1000 * seconds / 2, 1)
    figures["torch_threads"] = torch.get_num_threads()
    return figures


def main(argv: list[str] | None, settings: Settings) -> None:
    """Stand-alone figures (no database): bare networks, face detector candidates, parity.
    Run as ``python -m scenedex.scripts.face_runtime_bench`` (the entry point reads the
    settings)."""
    import argparse

    from scenedex.adapters.face_embedders import build_face_embedder
    from scenedex.adapters.torch_runtime import resolve_device, resolve_precision
    from scenedex.tools.machine import machine

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--media", type=Path, default=Path("../shared/data/real"))
    parser.add_argument("--no-parity", action="store_true", help="skip the comparison with dlib's CNN (slow)")
    parser.add_argument("--no-candidates", action="store_true")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"machine": machine(), "load_1m": [round(os.getloadavg()[0], 2)]}
    report["bare"] = bare_network_figures()
    device = resolve_device(settings.faces.device)
    precision = resolve_precision(settings.faces.precision, device)
    if (device, precision) != ("cpu", "fp32"):
        say = functools.partial(print, file=sys.stderr)
        say(f"bare networks again on {device} in {precision}...")
        report[f"bare_{precision}"] = bare_network_figures(precision=precision, device=device)
    if not args.no_candidates:
        report["face_detectors"] = detector_figures(settings, args.media)
    if not args.no_parity:
        torch_embedder = build_face_embedder(with_faces(settings, runtime="torch"))
        report["face_parity"] = parity_figures(torch_embedder, args.media)
    report["load_1m"].append(round(os.getloadavg()[0], 2))
    print(json.dumps(report, indent=2))
