"""``scenedex bench``: how fast a reprocess runs on this machine, and how close it gets to the
bare models.

One run builds a synthetic library for a fresh random owner (videos of 20 scenes; generated
1280x720 JPEG keyframes, about one in five with a real face pasted in; seeded texts of realistic
length; one person with two photos), then measures with the configured models: the bare
embedders on the same inputs, the full reprocess, a no-op reprocess, peak RSS after each phase,
and how far bf16 (when configured) drifts from fp32. Optionally it seeds a second, large owner
whose records are all current (stand-in vectors, see ``StandInImageEmbedder``) and times a no-op
reprocess of it.

Times are wall seconds (``time.perf_counter``), rates items (or scenes) per second, memory MiB.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import math
import os
import random
import resource
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from PIL import Image, ImageDraw, ImageOps
from sqlalchemy.engine import make_url

from scenedex.adapters.db.migrate import upgrade
from scenedex.adapters.storage import FsspecBlobStore
from scenedex.application import Services, build_services
from scenedex.domain.errors import BadInputError
from scenedex.domain.model import TEXT_CHANNELS, DetectedFace, Scene, Video, l2_normalise, new_id
from scenedex.domain.ports import FaceEmbedder, ImageEmbedder, TextEmbedder
from scenedex.domain.progress import ProgressListener, ReprocessProgress
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.services.ingest import add_person, keyframe_key
from scenedex.settings import UNTRAINED, Settings
from scenedex.tools.clip_fallback import services_with_usable_clip
from scenedex.tools.demo import PACKAGED_SAMPLES
from scenedex.tools.machine import machine

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
    add_person(
        uow_factory=services.uow_factory,
        blobs=blobs,
        owner_id=owner_id,
        name="Eileen Collins",
        photo_paths=[photo, mirrored],
    )
    library.build_seconds = time.perf_counter() - started
    return library


# ----------------------------------------------------------------------------- services


def bench_settings(
    base: Settings, *, database_url: str, storage_url: str, batch_size: int, untrained: bool = False
) -> Settings:
    """``base`` pointed at the bench database and blob folder, with reprocess and CLIP batches of
    ``batch_size`` scenes; ``untrained`` sets CLIP's pretrained to ``none`` (random weights)."""
    clip = base.clip.model_copy(update={"batch_size": batch_size})
    if untrained:
        clip = clip.model_copy(update={"pretrained": UNTRAINED})
    reprocess = base.reprocess.model_copy(update={"batch_size": batch_size})
    update = {"database_url": database_url, "storage_url": storage_url, "clip": clip, "reprocess": reprocess}
    return base.model_copy(update=update)


def _dim(embedder: Any) -> int:
    """The embedding size ``d`` of a real embedder (``dim`` is not on the ports)."""
    return int(embedder.dim)


def _chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def precision_of(embedder: Any) -> str:
    """The resolved inference precision of a torch-backed embedder (``fp32`` when it has none)."""
    return str(getattr(embedder, "precision", "fp32"))


# ----------------------------------------------------------------------------- measurements


@dataclass
class Rate:
    """``items`` processed in ``seconds`` (wall); ``items_per_s`` = items / seconds."""

    items: int
    seconds: float
    items_per_s: float

    @classmethod
    def of(cls, items: int, seconds: float) -> Rate:
        return cls(items, round(seconds, 3), round(items / seconds, 2) if seconds > 0 else 0.0)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (``ru_maxrss`` is KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def time_batches(embed: Callable[[list[Any]], Any], batches: Sequence[list[Any]]) -> Rate:
    """Call ``embed`` on each batch after one uncounted warm-up call on the first batch (which
    also loads the model); items = total batch lengths."""
    if not batches:
        return Rate.of(0, 0.0)
    embed(batches[0])
    started = time.perf_counter()
    for batch in batches:
        embed(batch)
    return Rate.of(sum(len(b) for b in batches), time.perf_counter() - started)


def bare_models(services: Services, library: Library, batch_size: int) -> dict[str, Rate]:
    """The bare embedders on the library's inputs, one call per ``batch_size`` scenes as the
    runner makes them: CLIP ``embed_images`` and dlib ``detect_faces`` on the keyframe bytes
    (decode included, no blob reads), the text model on those scenes' texts (3 per scene)."""
    chunks = range(0, len(library.scenes), batch_size)
    images = [library.keyframes[i : i + batch_size] for i in chunks]
    texts = [[t for ts in library.texts[i : i + batch_size] for t in ts] for i in chunks]
    return {
        "clip": time_batches(services.image_embedder.embed_images, images),
        "text": time_batches(services.text_embedder.embed_texts, texts),
        "faces": time_batches(services.face_embedder.detect_faces, images),
    }


@dataclass
class RunFigures:
    """One reprocess of the owner: wall ``seconds``, ``scenes_per_s``, per step the counts and
    the seconds the runner measured (``steps``), and the number of failed items."""

    seconds: float
    scenes_per_s: float
    steps: dict[str, dict[str, Any]]
    failed: int
    computed: int

    @classmethod
    def of(cls, progress: ReprocessProgress, seconds: float, scenes: int) -> RunFigures:
        steps = {s.pop("step"): s for s in progress.to_dict()["steps"]}
        return cls(
            seconds=round(seconds, 3),
            scenes_per_s=round(scenes / seconds, 2) if seconds > 0 else 0.0,
            steps=steps,
            failed=progress.failed,
            computed=sum(c.computed for c in progress.steps.values()),
        )


def timed_reprocess(
    services: Services,
    owner_id: uuid.UUID,
    scenes: int,
    listener_factory: ListenerFactory,
) -> RunFigures:
    """Reprocess the owner with ``services.runner()``, timed around ``runner.run``."""
    runner = services.runner()
    request = ReprocessRequest(ReprocessScope.OWNER, owner_id=owner_id)
    with listener_factory() as listener:
        started = time.perf_counter()
        progress = runner.run(request, listener=listener)
        seconds = time.perf_counter() - started
    return RunFigures.of(progress, seconds, scenes)


def cosines(reduced: np.ndarray, full: np.ndarray) -> dict[str, float]:
    """Row-wise cosine between ``(n, d)`` unit vectors: ``{"compared", "min", "mean"}``."""
    values = np.sum(reduced * full, axis=1)
    return {
        "compared": len(values),
        "min": round(float(values.min()), 6),
        "mean": round(float(values.mean()), 6),
    }


def _image_vectors(embedder: ImageEmbedder, images: Sequence[bytes]) -> np.ndarray:
    vectors = [v for v in embedder.embed_images(images) if not isinstance(v, BadInputError)]
    return np.stack(vectors)


def precision_check(services: Services, fp32: Services, library: Library) -> dict[str, Any]:
    """bf16 (or fp16) against fp32 on the first 32 keyframes and 64 texts, per model:
    ``{"clip": {"precision", "compared", "min", "mean", "ok"}, "text": {...}}``; when a model
    already runs fp32: ``{"precision": "fp32", "note": "already fp32"}``."""
    texts = [t for ts in library.texts for t in ts][:PRECISION_TEXTS]
    images = library.keyframes[:PRECISION_IMAGES]
    pairs: dict[str, tuple[Any, Callable[[Any], np.ndarray]]] = {
        "clip": (services.image_embedder, lambda e: _image_vectors(e, images)),
        "text": (services.text_embedder, lambda e: l2_normalise(e.embed_texts(texts))),
    }
    fp32_models = {"clip": fp32.image_embedder, "text": fp32.text_embedder}
    result: dict[str, Any] = {}
    for name, (embedder, vectors) in pairs.items():
        precision = precision_of(embedder)
        if precision == "fp32":
            result[name] = {"precision": precision, "note": "already fp32"}
            continue
        figures = cosines(vectors(embedder), vectors(fp32_models[name]))
        result[name] = {"precision": precision, **figures, "ok": figures["min"] >= COSINE_FLOOR}
    return result


# ----------------------------------------------------------------------------- no-op seeding


def _hashed(data: bytes | str, dim: int) -> np.ndarray:
    """A deterministic ``(dim,)`` float32 unit vector from the SHA-256 of ``data``."""
    raw = data.encode() if isinstance(data, str) else data
    digest = hashlib.sha256(raw).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    return l2_normalise(rng.standard_normal(dim).astype(np.float32))


class StandInImageEmbedder:
    """Reports the real CLIP embedder's identity (``model_id``, ``preprocessing_id``, ``dim``)
    but returns hashed ``(dim,)`` vectors: records it produces are current under the real spec
    while carrying meaningless vectors. For seeding the bench database only."""

    def __init__(self, real: ImageEmbedder) -> None:
        self._real = real
        self.dim = _dim(real)

    @property
    def model_id(self) -> str:
        return self._real.model_id

    @property
    def preprocessing_id(self) -> str:
        return self._real.preprocessing_id

    def embed_images(self, images: Sequence[bytes]) -> list[np.ndarray | BadInputError]:
        return [_hashed(data, self.dim) for data in images]

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([_hashed(text, self.dim) for text in texts])


class StandInTextEmbedder:
    """The real text embedder's ``model_id`` and ``dim`` with hashed ``(n, dim)`` vectors."""

    def __init__(self, real: TextEmbedder) -> None:
        self._real = real
        self.dim = _dim(real)

    @property
    def model_id(self) -> str:
        return self._real.model_id

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([_hashed(text, self.dim) for text in texts])


class StandInFaceEmbedder:
    """The real face embedder's ``model_id`` and ``detection_id``; finds no face anywhere."""

    def __init__(self, real: FaceEmbedder) -> None:
        self._real = real

    @property
    def model_id(self) -> str:
        return self._real.model_id

    @property
    def detection_id(self) -> str:
        return self._real.detection_id

    def detect_faces(self, images: Sequence[bytes]) -> list[list[DetectedFace] | BadInputError]:
        return [[] for _ in images]


def seed_current_library(
    services: Services,
    blobs: FsspecBlobStore,
    scenes: int,
    listener_factory: ListenerFactory,
) -> tuple[uuid.UUID, float]:
    """A fresh owner with ``scenes`` scenes whose records are all current, made in rounds of
    ``SEED_ROUND`` scenes: rows through the repositories (every scene points at ONE shared small
    keyframe blob), the real runner with ``batch_size=1000`` and the stand-in embedders, then
    ``ANALYZE``. Returns ``(owner id, seconds)``."""
    started = time.perf_counter()
    owner_id = new_id()
    data = keyframe(0, None, size=(320, 180))
    shared = (blobs.write(f"owners/{owner_id}/shared/keyframe.jpg", data), hashlib.sha256(data).hexdigest())
    seeder = _seeding_services(services)
    request = ReprocessRequest(ReprocessScope.OWNER, owner_id=owner_id)
    rows = video_rows(owner_id, scenes, lambda _index, _video: shared)
    with listener_factory() as listener:
        for videos in _chunked(rows, SEED_ROUND // SCENES_PER_VIDEO):
            for chunk in _chunked(videos, 50):
                with services.uow_factory() as uow:
                    for video, video_scenes in chunk:
                        uow.videos.add(video)
                        uow.scenes.add_many(video_scenes)
                    uow.commit()
            seeder.runner().run(request, listener=listener)
            with services.engine.begin() as connection:
                connection.execute(sa.text("ANALYZE"))
    return owner_id, time.perf_counter() - started


def measure_noop(
    base: Settings,
    database_url: str,
    scenes: int,
    *,
    runs: int = 3,
    storage_url: str | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Seed ``scenes`` current scenes for a fresh owner in ``database_url`` (migrated first;
    blobs under ``storage_url``, default a temporary folder) with ``seed_current_library``,
    then time ``runs`` no-op reprocesses of that owner, with ``base``'s models (their ids
    only: no model is loaded, the seeding uses stand-in vectors). E.g. from a shell:
    ``measure_noop(Settings(), "postgresql+psycopg://...", 100_000)``.

    Returns ``{"cpu_model", "cpus", "database", "scenes", "owner_id", "seed_seconds",
    "noop_seconds": [per run, wall seconds], "computed": [items per run, expected 0]}``."""
    with tempfile.TemporaryDirectory(prefix="scenedex-noop-") as folder:
        storage = storage_url or str(Path(folder) / "media")
        settings = base.model_copy(update={"database_url": database_url, "storage_url": storage})
        blobs = FsspecBlobStore(storage)
        services = build_services(settings, blobs=blobs)
        upgrade(services.engine)
        say(f"seeding {scenes} current scenes...")
        owner_id, seed_seconds = seed_current_library(services, blobs, scenes, _no_listener)
        seconds, computed = [], []
        for _ in range(runs):
            figures = timed_reprocess(services, owner_id, scenes, _no_listener)
            seconds.append(figures.seconds)
            computed.append(figures.computed)
            say(f"no-op over {scenes} scenes: {figures.seconds:.2f} s ({figures.computed} computed)")
        services.engine.dispose()
    cpu = machine()
    return {
        "cpu_model": cpu["cpu_model"],
        "cpus": cpu["cpus"],
        "database": make_url(database_url).render_as_string(hide_password=True),
        "scenes": scenes,
        "owner_id": str(owner_id),
        "seed_seconds": round(seed_seconds, 1),
        "noop_seconds": seconds,
        "computed": computed,
    }


def _no_listener() -> AbstractContextManager[Any]:
    return contextlib.nullcontext()


def _seeding_services(services: Services) -> Services:
    """``services`` with the stand-in embedders and runner batches of ``SEED_BATCH_SIZE``;
    raises ``RuntimeError`` unless its spec equals the real one."""
    settings = services.settings
    batch = settings.reprocess.model_copy(update={"batch_size": SEED_BATCH_SIZE})
    seeder = build_services(
        settings.model_copy(update={"reprocess": batch}),
        engine=services.engine,
        blobs=services.blobs,
        search_index=services.search_index,
        image_embedder=StandInImageEmbedder(services.image_embedder),
        text_embedder=StandInTextEmbedder(services.text_embedder),
        face_embedder=StandInFaceEmbedder(services.face_embedder),
    )
    if seeder.spec.version != services.spec.version:
        raise RuntimeError(f"stand-in spec {seeder.spec.version} differs from {services.spec.version}")
    return seeder


# ----------------------------------------------------------------------------- the run


@dataclass
class BenchReport:
    """Every figure of one bench run; ``to_dict()`` is what ``--json`` prints (keys documented
    on the ``scenedex bench`` command)."""

    database: str
    owner_id: str
    scenes: int
    videos: int
    batch_size: int
    machine: dict[str, Any]
    models: dict[str, Any]
    library: dict[str, Any]
    bare: dict[str, Rate] = field(default_factory=dict)
    full: RunFigures | None = None
    noop: RunFigures | None = None
    efficiency: float = 0.0
    precision: dict[str, Any] = field(default_factory=dict)
    noop_seeded: dict[str, Any] | None = None
    faces: dict[str, Any] | None = None
    faces_to_clip: float | None = None
    faces_speedup: float | None = None
    speedup_vs_previous_faces: float | None = None
    face_check: dict[str, Any] | None = None
    face_runtime: dict[str, Any] | None = None
    faces_device: str | None = None
    faces_to_clip_default: float | None = None
    faces_speedup_default: float | None = None
    face_parity: dict[str, Any] | None = None
    face_detectors: dict[str, Any] | None = None
    search: dict[str, Any] | None = None
    frames_per_scene: dict[str, Any] | None = None
    rss_mib: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.warnings

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def bench_database(database_url: str | None) -> Iterator[tuple[str, Path]]:
    """``(database URL, work folder)``: the given URL, or a fresh SQLite file in the temporary
    work folder (which also holds the blobs and is deleted afterwards)."""
    with tempfile.TemporaryDirectory(prefix="scenedex-bench-") as folder:
        work = Path(folder)
        yield database_url or f"sqlite:///{work / 'bench.db'}", work


def run_bench(
    base: Settings,
    *,
    scenes: int = 200,
    batch_size: int = 32,
    database_url: str | None = None,
    noop_scenes: int = 0,
    real_media: Path | None = None,
    face_check: bool = True,
    sampling: bool = True,
    listener_factory: ListenerFactory,
    say: Callable[[str], None],
) -> BenchReport:
    """Build the library, measure every phase, and return the report (see the module doc).
    ``say`` prints a progress line for the user; ``listener_factory()`` gives a context-managed
    ProgressListener per reprocess."""
    load_at_start = os.getloadavg()[0]
    with bench_database(database_url) as (url, work):
        blobs = FsspecBlobStore(str(work / "media"))

        def make_services(untrained: bool) -> Services:
            storage = str(work / "media")
            settings = bench_settings(
                base, database_url=url, storage_url=storage, batch_size=batch_size, untrained=untrained
            )
            return build_services(settings, blobs=blobs)

        shown = make_url(url).render_as_string(hide_password=True)
        say(f"database: {shown}" + ("" if database_url else " (temporary SQLite, deleted afterwards)"))
        services, clip_note = services_with_usable_clip(
            make_services,
            say,
            f"The bench uses SCENEDEX_CLIP__PRETRAINED={UNTRAINED} instead: untrained random "
            "weights, the same compute cost, meaningless vectors.",
        )
        upgrade(services.engine)
        say(f"building {scenes} scenes ({FRAME_SIZE[0]}x{FRAME_SIZE[1]} JPEG keyframes)...")
        library = build_library(services, blobs, scenes, face_photo(real_media), work)
        report = BenchReport(
            database=shown,
            owner_id=str(library.owner_id),
            scenes=scenes,
            videos=len(library.videos),
            batch_size=batch_size,
            machine=machine(),
            models={
                "spec_version": services.spec.version,
                **{f"{role}_model_id": model for role, model in services.spec.model_ids.items()},
                "clip_precision": precision_of(services.image_embedder),
                "text_precision": precision_of(services.text_embedder),
                "clip_note": clip_note,
            },
            library={
                "seconds": round(library.build_seconds, 3),
                "faces_pasted": library.faces_pasted,
                "keyframe_kib_mean": round(sum(map(len, library.keyframes)) / max(scenes, 1) / 1024, 1),
                "words_per_scene": sum(TEXT_LENGTHS.values()),
            },
        )
        report.rss_mib["after_build"] = peak_rss_mib()
        _measure(report, services, library, listener_factory, say)
        _measure_faces(report, services, library, real_media if face_check else None, say)
        if sampling:
            from scenedex.tools.bench_sampling import measure_sampling

            report.frames_per_scene = measure_sampling(services, work, library.keyframes, say)
            report.rss_mib["after_frames_per_scene"] = peak_rss_mib()
        if noop_scenes:
            _measure_seeded(report, services, blobs, noop_scenes, listener_factory, say)
            _measure_search(report, services, say)
        services.engine.dispose()
    report.machine["load_1m"] = [round(load_at_start, 2), round(os.getloadavg()[0], 2)]
    return report


def _measure(
    report: BenchReport,
    services: Services,
    library: Library,
    listener_factory: ListenerFactory,
    say: Callable[[str], None],
) -> None:
    say(f"bare models at batch {report.batch_size} (after one warm-up batch)...")
    report.bare = bare_models(services, library, report.batch_size)
    report.rss_mib["after_bare"] = peak_rss_mib()
    say("full reprocess...")
    report.full = timed_reprocess(services, library.owner_id, report.scenes, listener_factory)
    report.rss_mib["after_full"] = peak_rss_mib()
    if report.full.failed:
        report.warnings.append(f"the full reprocess failed {report.full.failed} item(s)")
    bare_seconds = sum(rate.seconds for rate in report.bare.values())
    report.efficiency = round(bare_seconds / report.full.seconds, 3) if report.full.seconds else 0.0
    say("no-op reprocess (everything current)...")
    report.noop = timed_reprocess(services, library.owner_id, report.scenes, listener_factory)
    report.rss_mib["after_noop"] = peak_rss_mib()
    if report.noop.computed:
        report.warnings.append(f"the no-op reprocess computed {report.noop.computed} item(s); expected none")
    say("precision check against fp32...")
    settings = services.settings
    fp32_settings = settings.model_copy(
        update={
            "clip": settings.clip.model_copy(update={"precision": "fp32"}),
            "text": settings.text.model_copy(update={"precision": "fp32"}),
        }
    )
    fp32 = build_services(fp32_settings, engine=services.engine, blobs=services.blobs)
    report.precision = precision_check(services, fp32, library)
    report.rss_mib["after_precision"] = peak_rss_mib()
    for name, figures in report.precision.items():
        if figures.get("ok") is False:
            report.warnings.append(
                f"{name} {figures['precision']} vs fp32: min cosine {figures['min']} < {COSINE_FLOOR}"
            )


def _measure_faces(
    report: BenchReport,
    services: Services,
    library: Library,
    real_media: Path | None,
    say: Callable[[str], None],
) -> None:
    """The previous face detector on the same library, and the labelled face check
    (``tools/bench_faces.py``); run last on the library (it leaves previous-detector records)."""
    from scenedex.tools.bench_faces import measure_faces

    assert report.full is not None
    full = report.full
    faces = measure_faces(
        services, library.owner_id, report.scenes, full.steps, full.scenes_per_s, real_media, say
    )
    report.rss_mib["after_previous_faces"] = peak_rss_mib()
    report.faces = faces
    report.faces_to_clip = faces["faces_to_clip"]
    report.faces_speedup = faces["faces_speedup"]
    report.speedup_vs_previous_faces = faces["speedup_vs_previous_faces"]
    report.face_check = faces.pop("face_check")
    from scenedex.tools.bench_face_runtime import TOP_LEVEL_KEYS, measure_face_runtime

    runtime = measure_face_runtime(services, library.owner_id, report.scenes, full.steps, real_media, say)
    report.face_runtime = runtime
    for key in TOP_LEVEL_KEYS:  # issue 30: dlib vs torch face runtime, parity, detector candidates
        setattr(report, key, runtime[key])
    report.rss_mib["after_face_runtime"] = peak_rss_mib()
    if faces["previous"]["failed"]:
        failed = faces["previous"]["failed"]
        report.warnings.append(f"the previous-detector reprocess failed {failed} item(s)")


def _measure_search(report: BenchReport, services: Services, say: Callable[[str], None]) -> None:
    """Search latency over the seeded owner on the table-backed index (``tools/search_bench``:
    the first query loads the owner's vectors, p50/p99 over the rest); skipped on OpenSearch."""
    from scenedex.adapters.db.search_index import TableSearchIndex
    from scenedex.tools.search_bench import search_scale_figures

    if report.noop_seeded is None or not isinstance(services.search_index, TableSearchIndex):
        return
    say("searches over the seeded owner (table-backed index)...")
    owner_id = uuid.UUID(report.noop_seeded["owner_id"])
    figures = search_scale_figures(services.engine, owner_id, index=services.search_index)
    report.search = {key: figures[key] for key in ("scenes", "cold_s", "p50_s", "p99_s", "kinds")}
    report.rss_mib["after_search"] = peak_rss_mib()


def _measure_seeded(
    report: BenchReport,
    services: Services,
    blobs: FsspecBlobStore,
    scenes: int,
    listener_factory: ListenerFactory,
    say: Callable[[str], None],
) -> None:
    say(
        f"seeding {scenes} current scenes for a second owner (stand-in vectors: this database is for "
        "measuring only)..."
    )
    owner_id, seconds = seed_current_library(services, blobs, scenes, listener_factory)
    report.rss_mib["after_seed"] = peak_rss_mib()
    say("no-op reprocess of the seeded owner...")
    figures = timed_reprocess(services, owner_id, scenes, listener_factory)
    report.rss_mib["after_seeded_noop"] = peak_rss_mib()
    report.noop_seeded = {
        "owner_id": str(owner_id),
        "scenes": scenes,
        "seed_seconds": round(seconds, 3),
        "noop": figures,
        "note": "seeded records carry stand-in (hashed) vectors with the real model ids",
    }
    if figures.computed:
        report.warnings.append(f"the seeded no-op computed {figures.computed} item(s); expected none")
