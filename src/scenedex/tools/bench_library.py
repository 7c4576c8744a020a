"""The synthetic library ``scenedex bench`` (and the worker-throughput and embed benches) measure
on: videos of ``SCENES_PER_VIDEO`` scenes with generated 1280x720 JPEG keyframes, about one in
``FACE_EVERY`` with a real face pasted in, seeded texts of realistic length, one person with two
photos. Deterministic for a seed (``SEED``)."""

from __future__ import annotations

import hashlib
import io
import logging
import math
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from scenedex.adapters.storage import FsspecBlobStore
from scenedex.application import Services
from scenedex.domain.model import TEXT_CHANNELS, Scene, Video, new_id
from scenedex.domain.progress import ProgressListener
from scenedex.services.ingest import keyframe_key
from scenedex.services.persons import PhotoUpload
from scenedex.tools.demo import PACKAGED_SAMPLES

log = logging.getLogger(__name__)

SEED = 20261121
SCENES_PER_VIDEO = 20
SCENE_SECONDS = 4.0
FRAME_SIZE = (1280, 720)
JPEG_QUALITY = 90
FACE_EVERY = 5
"""One keyframe in ``FACE_EVERY`` gets the face pasted in."""
TEXT_LENGTHS = {"transcript": 60, "visual_description": 20, "summary": 30}
"""Words per scene text field."""
COSINE_FLOOR = 0.999
"""Smallest acceptable cosine similarity between a reduced-precision and an fp32 embedding."""
PRECISION_IMAGES, PRECISION_TEXTS = 32, 64
"""How many keyframes and texts the precision check compares."""
SEED_BATCH_SIZE = 1000
"""Runner batch size (scenes) when seeding the current library for ``--noop-scenes``."""
SEED_ROUND = 10_000
"""Scenes inserted and reprocessed per seeding round. The database's statistics are refreshed
(``ANALYZE``) after each round: without them (autovacuum off, or not yet run after a bulk load)
Postgres answers the runner's ``owner_id = ? AND scene_id IN (...)`` lookups by scanning the
whole owner through the owner index, and seeding turns quadratic."""
FACE_BOX = (0.25, 0.04, 0.61, 0.44)
"""The astronaut's head in astronaut.png, as (left, top, right, bottom) fractions of the image."""
_WORD_LIST = """the a city street rider bike car light crossing red blue green morning evening crowd
    market river bridge camera slowly walks runs talks table coffee window rain sun shadow
    building tower park tree dog child woman man team game ball field stage music song plays
    kitchen food cooks plate train station platform waits door opens closes office desk screen
    laptop phone call meeting smiles laughs looks turns toward away across under over between
    beach wave boat harbour mountain road snow forest path night lamp sign shop bakery bread
    school class teacher board writes reads book library quiet loud busy empty old new small
    large bright dark fast slow interview astronaut space flight rocket launch mission earth
    orbit helmet suit studio guest host question answer story history first last again"""
WORDS = tuple(_WORD_LIST.split())
"""The seeded word list scene texts are drawn from."""

ListenerFactory = Callable[[], AbstractContextManager[ProgressListener]]
"""Gives a context-managed ProgressListener (the CLI's progress bars) for one reprocess."""


# ----------------------------------------------------------------------------- the library


@dataclass
class Library:
    """The synthetic library of one owner: ``keyframes[i]`` (JPEG bytes) and ``texts[i]`` (its
    non-empty texts, one per channel) belong to ``scenes[i]``."""

    owner_id: uuid.UUID
    videos: list[Video]
    scenes: list[Scene]
    keyframes: list[bytes]
    texts: list[list[str]]
    faces_pasted: int
    build_seconds: float


def face_photo(real_media: Path | None) -> Path:
    """The face photo: ``real_media/astronaut.png`` when present, else the packaged sample."""
    if real_media is not None and (real_media / "astronaut.png").is_file():
        return real_media / "astronaut.png"
    return PACKAGED_SAMPLES / "astronaut.jpg"


def face_crop(photo: Image.Image) -> Image.Image:
    """The head and some margin from the astronaut photo (``FACE_BOX``), RGB."""
    width, height = photo.size
    left, top, right, bottom = FACE_BOX
    box = (round(left * width), round(top * height), round(right * width), round(bottom * height))
    return photo.convert("RGB").crop(box)


def keyframe(index: int, face: Image.Image | None, size: tuple[int, int] = FRAME_SIZE) -> bytes:
    """A JPEG keyframe (quality ``JPEG_QUALITY``) of ``size`` (width, height) pixels, seeded by
    ``index``: a two-colour gradient, random shapes and lines, sensor-like noise, and ``face``
    (when given) pasted at a random place and scale (40-60% of the frame height)."""
    rng = np.random.default_rng(SEED + index)
    width, height = size
    start, end = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = xs * math.cos(angle) + ys * math.sin(angle)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0)
    pixels = start + ramp[..., None] * (end - start)
    image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(6, 14))):
        x0, x1 = sorted(rng.integers(0, width, 2).tolist())
        y0, y1 = sorted(rng.integers(0, height, 2).tolist())
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = int(rng.integers(0, 3))
        if shape == 0:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        elif shape == 1:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(2, 12)))
    if face is not None:
        side = int(height * rng.uniform(0.4, 0.6))
        pasted = face.resize((side * face.width // face.height, side), Image.Resampling.BILINEAR)
        position = (int(rng.integers(0, width - pasted.width)), int(rng.integers(0, height - side)))
        image.paste(pasted, position)
    noise = rng.normal(0.0, 6.0, (height, width, 3)).astype(np.float32)
    noisy = (np.asarray(image, dtype=np.float32) + noise).clip(0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noisy).save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def scene_texts(index: int) -> dict[str, str]:
    """Seeded texts of one scene: ``transcript`` (60 words), ``visual_description`` (20) and
    ``summary`` (30), drawn from ``WORDS`` with sentence breaks."""
    rng = random.Random(SEED + index)
    texts = {}
    for name, length in TEXT_LENGTHS.items():
        words = rng.choices(WORDS, k=length)
        sentences = [" ".join(words[i : i + 12]).capitalize() + "." for i in range(0, length, 12)]
        texts[name] = " ".join(sentences)
    return texts


def video_rows(
    owner_id: uuid.UUID, scenes: int, keyframe_of: Callable[[int, uuid.UUID], tuple[str, str]]
) -> Iterator[tuple[Video, list[Scene]]]:
    """Videos of ``SCENES_PER_VIDEO`` scenes (the last may be shorter) holding ``scenes`` scenes,
    with seeded texts; ``keyframe_of(scene_index, video_id)`` gives a scene's keyframe
    ``(uri, sha256 hex)``."""
    for first in range(0, scenes, SCENES_PER_VIDEO):
        count = min(SCENES_PER_VIDEO, scenes - first)
        video = Video(
            id=new_id(),
            owner_id=owner_id,
            title=f"bench video {first // SCENES_PER_VIDEO}",
            source_uri="bench://synthetic",
            duration_s=count * SCENE_SECONDS,
        )
        rows = []
        for ordinal in range(count):
            uri, sha256 = keyframe_of(first + ordinal, video.id)
            texts = scene_texts(first + ordinal)
            rows.append(
                Scene(
                    id=new_id(),
                    video_id=video.id,
                    owner_id=owner_id,
                    ordinal=ordinal,
                    start_s=ordinal * SCENE_SECONDS,
                    end_s=(ordinal + 1) * SCENE_SECONDS,
                    keyframe_uri=uri,
                    keyframe_sha256=sha256,
                    transcript=texts["transcript"],
                    visual_description=texts["visual_description"],
                    summary=texts["summary"],
                )
            )
        yield video, rows


def build_library(
    services: Services, blobs: FsspecBlobStore, scenes: int, photo: Path, workdir: Path
) -> Library:
    """Create ``scenes`` scenes for a fresh random owner through the repositories, their
    keyframes through ``blobs``, and one person with two photos (``photo`` and its mirror)."""
    started = time.perf_counter()
    owner_id = new_id()
    face = face_crop(Image.open(photo))
    keyframes: list[bytes] = []

    def store_keyframe(index: int, video_id: uuid.UUID) -> tuple[str, str]:
        data = keyframe(index, face if index % FACE_EVERY == 0 else None)
        keyframes.append(data)
        uri = blobs.write(keyframe_key(owner_id, video_id, index), data)
        return uri, hashlib.sha256(data).hexdigest()

    library = Library(owner_id, [], [], keyframes, [], len(range(0, scenes, FACE_EVERY)), 0.0)
    for video, rows in video_rows(owner_id, scenes, store_keyframe):
        with services.uow_factory() as uow:
            uow.videos.add(video)
            uow.scenes.add_many(rows)
            uow.commit()
        library.videos.append(video)
        library.scenes.extend(rows)
    library.texts = [[s.text(c) for c in TEXT_CHANNELS if s.text(c)] for s in library.scenes]
    mirrored = workdir / f"mirrored{photo.suffix}"
    ImageOps.mirror(Image.open(photo)).save(mirrored)
    services.persons().create(
        owner_id, "Eileen Collins", [PhotoUpload.from_file(photo), PhotoUpload.from_file(mirrored)]
    )
    library.build_seconds = time.perf_counter() - started
    return library
