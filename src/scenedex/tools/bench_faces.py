"""The faces part of ``scenedex bench``: the previous default face detector against the
configured one on the same library in the same run, and the labelled face check.

Figures (keys of ``BenchReport.faces``):

- ``faces_step_ms_per_scene`` / ``clip_step_ms_per_scene``: the full reprocess's faces and CLIP
  step seconds (as the runner times them) per scene, in milliseconds; ``faces_to_clip`` their
  ratio.
- ``previous``: a forced full reprocess of the same owner with ``PREVIOUS_FACE_SETTINGS`` (every
  step computed again, CLIP and text with the same loaded models): its scenes/s and faces step
  ms per scene; ``faces_speedup`` = previous faces step s/scene over the configured one's,
  ``speedup_vs_previous_faces`` = the configured full reprocess scenes/s over the previous one's.
- ``face_check``: recall and false positives of the configured detector and the previous one on
  ``tools/face_check.build_face_check`` (needs the real sample media).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scenedex.application import Services
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.domain.spec import EmbeddingStepType
from scenedex.settings import Settings
from scenedex.tools.face_check import build_face_check, evaluate

PREVIOUS_FACE_SETTINGS = {
    "runtime": "dlib",
    "detector": "hog",
    "detect_side": 0,
    "upsample": 1,
    "min_score": 0.3,
    "num_jitters": 1,
    "max_side": 1600,
    "threads": 1,
}
"""The face settings before 2026-11-30: dlib's HOG at upsample 1 on the decoded image as it is (at
most 1600 px) and dlib's ResNet, one image at a time (it ran behind a lock); whatever runtime and
detector are configured (the torch runtime refuses upsample 1)."""


def previous_face_settings(settings: Settings) -> Settings:
    """``settings`` with the previous default face detection (``PREVIOUS_FACE_SETTINGS``)."""
    return settings.model_copy(update={"faces": settings.faces.model_copy(update=PREVIOUS_FACE_SETTINGS)})


def step_ms_per_scene(steps: dict[str, dict[str, Any]], step: EmbeddingStepType, scenes: int) -> float:
    """Milliseconds per scene of ``step`` in a run's per-step figures (``RunFigures.steps``)."""
    return round(1000 * float(steps[step.value]["seconds"]) / max(scenes, 1), 2)


def measure_faces(
    services: Services,
    owner_id: Any,
    scenes: int,
    full_steps: dict[str, dict[str, Any]],
    full_scenes_per_s: float,
    real_media: Path | None,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """The faces figures (module docstring) for the bench owner ``owner_id`` of ``scenes``
    scenes, given the configured full reprocess's per-step figures and scenes/s. Leaves the
    owner's face records as the previous detector wrote them (a later no-op with ``services``
    finds them stale). Raises what the runner raises on infrastructure errors."""
    faces_ms = step_ms_per_scene(full_steps, EmbeddingStepType.SCENE_PERSON_EMBEDDINGS, scenes)
    clip_ms = step_ms_per_scene(full_steps, EmbeddingStepType.SCENE_CLIP_EMBEDDINGS, scenes)
    figures: dict[str, Any] = {
        "detection_id": services.face_embedder.detection_id,
        "threads": getattr(services.face_embedder, "threads", 1),
        "faces_step_ms_per_scene": faces_ms,
        "clip_step_ms_per_scene": clip_ms,
        "faces_to_clip": round(faces_ms / clip_ms, 3) if clip_ms else None,
    }
    previous = services.with_settings(previous_face_settings(services.settings), keep_face_embedder=False)
    say(f"full reprocess again with the previous face detector ({previous.face_embedder.detection_id})...")
    started = time.perf_counter()
    progress = previous.runner().run(ReprocessRequest(ReprocessScope.OWNER, owner_id=owner_id, force=True))
    seconds = time.perf_counter() - started
    steps = {entry.pop("step"): entry for entry in progress.to_dict()["steps"]}
    scenes_per_s = round(scenes / seconds, 2) if seconds > 0 else 0.0
    previous_faces_ms = step_ms_per_scene(steps, EmbeddingStepType.SCENE_PERSON_EMBEDDINGS, scenes)
    figures["previous"] = {
        "detection_id": previous.face_embedder.detection_id,
        "scenes_per_s": scenes_per_s,
        "seconds": round(seconds, 3),
        "faces_step_ms_per_scene": previous_faces_ms,
        "failed": progress.failed,
    }
    figures["faces_speedup"] = round(previous_faces_ms / faces_ms, 2) if faces_ms else None
    figures["speedup_vs_previous_faces"] = (
        round(full_scenes_per_s / scenes_per_s, 2) if scenes_per_s else None
    )
    figures["face_check"] = face_check_figures(services, previous, real_media, say)
    return figures


def face_check_figures(
    services: Services, previous: Services, real_media: Path | None, say: Callable[[str], None]
) -> dict[str, Any] | None:
    """``{"recall", "false_positives", "previous_recall", "previous_false_positives", "frames",
    "faces", "ms_per_image", "previous_ms_per_image", "missed", "previous_missed"}`` on the
    labelled face check, or None without the real media (``real_media`` None or incomplete)."""
    if real_media is None:
        return None
    say("labelled face check (configured and previous detector)...")
    try:
        frames = build_face_check(real_media)
    except FileNotFoundError as exc:
        say(f"face check skipped: {exc}")
        return None
    new = evaluate("configured", services.face_embedder.detect_faces, frames)
    old = evaluate("previous", previous.face_embedder.detect_faces, frames)
    return {
        "frames": len(frames),
        "faces": new.faces,
        "recall": round(new.recall, 4),
        "false_positives": new.false_positives,
        "ms_per_image": round(new.ms_per_image, 1),
        "missed": new.missed,
        "previous_recall": round(old.recall, 4),
        "previous_false_positives": old.false_positives,
        "previous_ms_per_image": round(old.ms_per_image, 1),
        "previous_missed": old.missed,
    }
