"""Device check for a GPU host (issue 30): ``python -m scenedex.tools.gpu_check [--json]``.

In about 1-3 minutes on a GPU host (and ~2-4 minutes on a 2-core CPU, where it only measures
the CPU), prints per device (``cpu`` and, when torch sees one, ``cuda``):

- CLIP (``SCENEDEX_CLIP__MODEL``, untrained weights: the same compute, no download) images/s at
  batch 64 of 1280x720 JPEGs, decode and preprocessing included;
- face descriptors (dlib's ResNet on the torch runtime) chips/s at batch 64, and the MMOD
  detector frames/s on 1280x720 frames at the working side 720 (16 frames per forward on cuda,
  2 on cpu), tiled pyramid included;
- parity on cuda: the largest L2 distance between the cuda descriptors (fp32 and fp16) and the
  CPU fp32 port's on the same chips, and the largest score difference of the MMOD score maps;
  the CPU fp32 port itself is within L2 3e-6 of dlib (``tests/integration/
  test_dlib_torch_parity.py``), so these bound the distance to dlib;
- peak GPU memory (``torch.cuda.max_memory_allocated``) per measurement.

Random inputs (chips, frames) are enough for speed and for network parity; the parity with
dlib on real faces is the test's and ``scenedex bench``'s (``face_parity``).
"""

from __future__ import annotations

import functools
import io
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

BATCH = 64
"""Images or chips per forward (docs/GPU_PLAN.md: 64-128 per forward on a GPU)."""


def _best(function: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        sync()
        times.append(time.perf_counter() - started)
    return min(times)


def _jpegs(count: int, rng: np.random.Generator) -> list[bytes]:
    out = []
    for _ in range(count):
        image = Image.fromarray(rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85)
        out.append(buffer.getvalue())
    return out


def check_device(device: str, repeats: int = 2) -> dict[str, Any]:
    """Speeds (and, on cuda, peak memory) on ``device``; see the module docstring."""
    import torch

    from scenedex.adapters.clip import OpenClipImageEmbedder
    from scenedex.adapters.dlib_torch.mmod import MmodFaceDetector
    from scenedex.adapters.dlib_torch.resnet import FaceDescriptorNet
    from scenedex.adapters.faces import CNN_DETECTOR_FILE, RECOGNITION_FILE, face_models_dir

    cuda = device.startswith("cuda")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    rng = np.random.default_rng(30)
    figures: dict[str, Any] = {"device": device}
    clip = OpenClipImageEmbedder(pretrained="none", device=device, batch_size=BATCH)
    images = _jpegs(BATCH, rng)
    clip.embed_images(images[:4])
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    seconds = _best(lambda: clip.embed_images(images), repeats, sync)
    figures["clip_images_per_s"] = round(BATCH / seconds, 1)
    if cuda:
        figures["clip_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    models = face_models_dir()
    precisions = ("fp32", "fp16") if cuda else ("fp32",)
    for precision in precisions:
        dtype = torch.float16 if precision == "fp16" else torch.float32
        net = FaceDescriptorNet.load(models / RECOGNITION_FILE).to(device, dtype)
        chips = torch.from_numpy(rng.integers(0, 256, (BATCH, 150, 150, 3), dtype=np.uint8)).to(device)
        with torch.inference_mode():
            net(chips)
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            seconds = _best(functools.partial(net, chips), repeats, sync)
        figures[f"face_chips_per_s_{precision}"] = round(BATCH / seconds, 1)
        detector = MmodFaceDetector.load(models / CNN_DETECTOR_FILE).to(device, dtype)
        count = 16 if cuda else 2
        frames = [rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8) for _ in range(count)]
        detector.detect(frames[:1], batch_size=1)
        seconds = _best(functools.partial(detector.detect, frames, batch_size=count), repeats, sync)
        figures[f"mmod_frames_per_s_{precision}_side720"] = round(count / seconds, 2)
        if cuda:
            figures[f"faces_peak_mib_{precision}"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return figures


def cuda_parity(device: str = "cuda") -> dict[str, Any]:
    """Largest descriptor L2 and MMOD score-map difference of ``device`` (fp32, fp16) against
    the CPU fp32 port, on 64 random chips and two random 640x360 frames."""
    import torch

    from scenedex.adapters.dlib_torch.mmod import MmodFaceDetector
    from scenedex.adapters.dlib_torch.resnet import FaceDescriptorNet
    from scenedex.adapters.faces import CNN_DETECTOR_FILE, RECOGNITION_FILE, face_models_dir

    models = face_models_dir()
    rng = np.random.default_rng(31)
    chips = torch.from_numpy(rng.integers(0, 256, (BATCH, 150, 150, 3), dtype=np.uint8))
    frames = torch.from_numpy(rng.integers(0, 256, (2, 360, 640, 3), dtype=np.uint8))
    out: dict[str, Any] = {}
    with torch.inference_mode():
        reference = FaceDescriptorNet.load(models / RECOGNITION_FILE)(chips).numpy()
        cpu_detector = MmodFaceDetector.load(models / CNN_DETECTOR_FILE)
        tiled, _ = cpu_detector.tiled(frames)
        scores = cpu_detector(tiled).numpy()
        for precision, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
            net = FaceDescriptorNet.load(models / RECOGNITION_FILE).to(device, dtype)
            got = net(chips.to(device)).float().cpu().numpy()
            out[f"descriptor_max_l2_{precision}"] = float(np.linalg.norm(got - reference, axis=1).max())
            detector = MmodFaceDetector.load(models / CNN_DETECTOR_FILE).to(device, dtype)
            got_scores = detector(tiled.to(device, dtype)).float().cpu().numpy()
            out[f"mmod_score_max_diff_{precision}"] = float(np.abs(got_scores - scores).max())
    return out


def main(argv: list[str] | None = None) -> None:
    """Measure cpu (and cuda when available) and print the figures (JSON)."""
    import argparse
    import os

    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-repeats", type=int, default=1, help="timed repeats on the CPU (slow)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "load_1m": round(os.getloadavg()[0], 2),
    }
    if torch.cuda.is_available():
        report["gpu"] = torch.cuda.get_device_name(0)
        report["cuda"] = check_device("cuda")
        report["parity"] = cuda_parity("cuda")
    report["cpu"] = check_device("cpu", repeats=args.cpu_repeats)
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
