"""The bench's measurements: bare-model rates, a timed reprocess with its progress, peak RSS and
the reduced-precision drift against fp32. Times are wall seconds (``time.perf_counter``), rates
items per second, memory MiB."""

from __future__ import annotations

import logging
import resource
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np

from scenedex.application import Services
from scenedex.domain.errors import BadInputError
from scenedex.domain.model import l2_normalise
from scenedex.domain.ports import ImageEmbedder
from scenedex.domain.progress import ReprocessProgress
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.tools.bench_library import (
    COSINE_FLOOR,
    PRECISION_IMAGES,
    PRECISION_TEXTS,
    Library,
    ListenerFactory,
)

log = logging.getLogger(__name__)


def embedding_dim(embedder: Any) -> int:
    """The embedding size ``d`` of a real embedder (``dim`` is not on the ports)."""
    return int(embedder.dim)


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
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
