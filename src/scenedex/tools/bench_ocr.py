"""The bench's OCR figures (``scenedex bench``, key ``ocr``): what on-screen text costs.

- ``ocr_ms_per_scene`` next to ``clip_ms_per_scene``: the ``scene_ocr`` and
  ``scene_clip_embeddings`` steps' seconds per computed item in the bench's full reprocess (the
  synthetic 1280x720 keyframes, which carry little text: the detector runs on every keyframe,
  the recogniser only on the lines found);
- ``with_ocr`` / ``without_ocr``: two forced full reprocesses of the same library in the same run,
  OCR on and off (``SCENEDEX_OCR__ENABLED``), scenes per second and OCR's share of the time;
- ``check``: the labelled OCR check (``tools/ocr_check.py``, real media with painted phrases;
  when the real media are given): word recall and ms per frame of text-bearing frames.

Without OCR in the spec (``SCENEDEX_OCR__ENABLED=false``) it reports only that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from scenedex.application import Services
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.domain.scene_ocr import normalise_lines
from scenedex.domain.spec import EmbeddingStepType
from scenedex.tools.bench_library import ListenerFactory
from scenedex.tools.bench_measure import RunFigures

OCR = EmbeddingStepType.SCENE_OCR.value
CLIP = EmbeddingStepType.SCENE_CLIP_EMBEDDINGS.value


def ms_per_item(steps: dict[str, dict[str, Any]], step: str) -> float | None:
    """The step's seconds per computed item of a run, in ms; None when it computed nothing."""
    figures = steps.get(step)
    if not figures or not figures.get("computed"):
        return None
    return round(1000 * float(figures["seconds"]) / int(figures["computed"]), 1)


def _forced(services: Services, owner_id: Any, scenes: int, listener_factory: ListenerFactory) -> RunFigures:
    request = ReprocessRequest(ReprocessScope.OWNER, owner_id=owner_id, force=True)
    with listener_factory() as listener:
        started = time.perf_counter()
        progress = services.runner().run(request, listener=listener)
        seconds = time.perf_counter() - started
    return RunFigures.of(progress, seconds, scenes)


def measure_ocr(
    services: Services,
    owner_id: Any,
    scenes: int,
    full: RunFigures,
    listener_factory: ListenerFactory,
    real_media: Path | None,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """The OCR figures of the module doc for the bench's library of ``scenes`` scenes of
    ``owner_id`` (``full``: the bench's first full reprocess). Leaves the library's records
    under ``services``' spec (the last forced run is the one with OCR)."""
    if not services.spec.has(EmbeddingStepType.SCENE_OCR):
        return {"enabled": False, "note": "SCENEDEX_OCR__ENABLED=false: no scene_ocr step in the spec"}
    figures: dict[str, Any] = {
        "enabled": True,
        "model_id": services.spec.inputs.ocr_model_id,
        "ocr_ms_per_scene": ms_per_item(full.steps, OCR),
        "clip_ms_per_scene": ms_per_item(full.steps, CLIP),
    }
    off = services.settings.model_copy(
        update={"ocr": services.settings.ocr.model_copy(update={"enabled": False})}
    )
    without = services.with_settings(off)
    say("forced full reprocess without OCR...")
    no_ocr = _forced(without, owner_id, scenes, listener_factory)
    say("forced full reprocess with OCR...")
    with_ocr = _forced(services, owner_id, scenes, listener_factory)
    ocr_seconds = with_ocr.steps.get(OCR, {}).get("seconds", 0.0)
    figures["without_ocr"] = {"seconds": no_ocr.seconds, "scenes_per_s": no_ocr.scenes_per_s}
    figures["with_ocr"] = {
        "seconds": with_ocr.seconds,
        "scenes_per_s": with_ocr.scenes_per_s,
        "ocr_ms_per_scene": ms_per_item(with_ocr.steps, OCR),
        "clip_ms_per_scene": ms_per_item(with_ocr.steps, CLIP),
        "ocr_share": round(ocr_seconds / with_ocr.seconds, 3) if with_ocr.seconds else None,
    }
    if no_ocr.seconds and with_ocr.seconds:
        figures["slowdown"] = round(with_ocr.seconds / no_ocr.seconds, 3)
    if real_media is not None and services.ocr_reader is not None:
        figures["check"] = ocr_check_figures(services, real_media, say)
    return figures


def ocr_check_figures(services: Services, real_media: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """Word recall and ms per frame of the configured reader on the labelled OCR check, its
    lines normalised with the spec's confidence cut-off as the step does."""
    from scenedex.tools.ocr_check import build_ocr_check, evaluate

    reader = services.ocr_reader
    assert reader is not None
    cut = services.spec.inputs.ocr_min_confidence
    say("labelled OCR check (painted phrases on the real media)...")
    frames = build_ocr_check(real_media)

    def read(image: bytes) -> str:
        lines = reader.read_lines([image])[0]
        return (
            ""
            if isinstance(lines, Exception)
            else " ".join(line.text for line in normalise_lines(lines, cut))
        )

    read(frames[0].image)  # warm-up (sessions loaded, first run optimised)
    result = evaluate(frames, read)
    figures = asdict(result)
    figures["recall"] = round(result.recall, 3)
    figures["ms_per_frame"] = round(result.ms_per_frame, 1)
    figures["seconds"] = round(result.seconds, 3)
    return figures
