"""The frames-per-scene part of ``scenedex bench`` (issue 18): a full reprocess of the same real
videos with the faces step reading 1, 4 and 8 frames per scene.

The videos are built here: ``VIDEOS`` H.264 videos (1280x720, ``FPS`` fps) of ``SCENES`` scenes
of ``SCENE_SECONDS`` s, each scene one of the bench's synthetic keyframes (one in five with the
astronaut's face) with a slow pan, cut at known times and ingested with those scenes (the
upstream-scenes path of ``POST /v1/videos``). Each frame count runs on its own owner holding
its own copy of the videos, with the same loaded models.

Figures per frame count (``{"1": {...}, "4": {...}, "8": {...}}``): ``scenes``,
``scenes_per_s`` (full reprocess), ``faces_step_ms_per_scene``, ``frames_read`` (frames the
faces step looked at, from the records) and ``seconds``.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from scenedex.application import Services
from scenedex.domain.model import new_id
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.domain.spec import EmbeddingStepType
from scenedex.services.videos import UpstreamScene, ingest_local_file

VIDEOS, SCENES, SCENE_SECONDS, FPS = 2, 10, 4.0, 5
FRAME_COUNTS = (1, 4, 8)


def build_videos(folder: Path, keyframes: Sequence[bytes]) -> list[Path]:
    """``VIDEOS`` mp4 files in ``folder`` from ``keyframes`` (JPEG bytes, 1280x720; reused in
    turn): each scene shows one keyframe, panned by 2 px per frame."""
    import av

    paths = []
    for v in range(VIDEOS):
        path = folder / f"sampling-{v}.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
            stream.options = {"crf": "23", "preset": "veryfast"}
            for s in range(SCENES):
                image = Image.open(io.BytesIO(keyframes[(v * SCENES + s) % len(keyframes)])).convert("RGB")
                for f in range(int(SCENE_SECONDS * FPS)):
                    frame = image.transform(image.size, Image.Transform.AFFINE, (1, 0, 2 * f, 0, 1, 0))
                    container.mux(stream.encode(av.VideoFrame.from_image(frame)))
            container.mux(stream.encode())
        paths.append(path)
    return paths


def measure_sampling(
    services: Services, folder: Path, keyframes: Sequence[bytes], say: Callable[[str], None]
) -> dict[str, Any]:
    """Per frame count in ``FRAME_COUNTS``: a full reprocess of fresh copies of the videos
    (module docstring). Raises what ingest and the runner raise on infrastructure errors."""
    say(f"frames per scene: building {VIDEOS} videos of {SCENES} scenes...")
    paths = build_videos(folder, keyframes)
    scenes = tuple(UpstreamScene(i * SCENE_SECONDS, (i + 1) * SCENE_SECONDS) for i in range(SCENES))
    figures: dict[str, Any] = {}
    for count in FRAME_COUNTS:
        faces = services.settings.faces.model_copy(
            update={"max_frames_per_scene": count, "sample_interval_s": 0.5}
        )
        sampled = services.with_settings(services.settings.model_copy(update={"faces": faces}))
        owner_id = new_id()
        for path in paths:
            video = ingest_local_file(
                path, owner_id, scenes, uow_factory=sampled.uow_factory, blobs=sampled.blobs,
                cutter=sampled.video_cutter(),
            ).video  # fmt: skip
            if video.error:
                raise RuntimeError(f"bench video {path} failed to ingest: {video.error}")
        say(f"full reprocess, {count} frame(s) per scene...")
        started = time.perf_counter()
        progress = sampled.runner().run(ReprocessRequest(ReprocessScope.OWNER, owner_id=owner_id))
        seconds = time.perf_counter() - started
        total = VIDEOS * SCENES
        steps = {entry["step"]: entry for entry in progress.to_dict()["steps"]}
        faces_seconds = steps[EmbeddingStepType.SCENE_PERSON_EMBEDDINGS.value]["seconds"]
        figures[str(count)] = {
            "scenes": total,
            "seconds": round(seconds, 2),
            "scenes_per_s": round(total / seconds, 2),
            "faces_step_ms_per_scene": round(1000 * faces_seconds / total, 1),
            "frames_read": _frames_read(sampled, owner_id),
            "failed": progress.failed,
        }
    return figures


def _frames_read(services: Services, owner_id: Any) -> int:
    step = EmbeddingStepType.SCENE_PERSON_EMBEDDINGS
    with services.uow_factory() as uow:
        ids = [scene.id for scene in uow.scenes.list_for_videos(owner_id, None)]
        records = uow.records.get(step, owner_id, ids)
    return sum(len(record.payload.get("frames", [])) for record in records.values())
