"""How fast the table-backed search answers at scale: seeds one owner's documents with random
unit vectors and times text, image and person queries (cold: the first query, which loads the
owner's cache; warm: the others).

``python -m scenedex.tools.search_bench --scenes 100000`` seeds a fresh owner in the database of
``SCENEDEX_DATABASE_URL`` (or ``--database-url``) and prints the figures as JSON;
``search_scale_figures`` is what ``scenedex bench`` can call. Times are wall seconds
(``time.perf_counter``), memory MiB (process RSS).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from scenedex.adapters.db import tables as t
from scenedex.adapters.db.engine import create_engine
from scenedex.adapters.db.migrate import upgrade
from scenedex.adapters.db.search_index import TableSearchIndex
from scenedex.domain.model import TEXT_CHANNELS, DetectedFace, SceneDocument, SearchQuery

TEXT_DIM = 384
IMAGE_DIM = 512
FACE_DIM = 128


def _unit(rng: np.random.Generator, *shape: int) -> np.ndarray:
    vectors = rng.standard_normal(shape).astype(np.float32)
    unit: np.ndarray = (vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)).astype(np.float32)
    return unit


def random_documents(owner_id: uuid.UUID, count: int, seed: int = 0) -> Iterator[SceneDocument]:
    """``count`` documents of ``owner_id``: 3 text channels of ``(384,)``, an image vector of
    ``(512,)`` (float32 unit vectors) and, in one document in five, one ``(128,)`` face
    descriptor (not normalised, norm about 1.45 as dlib's); 20 scenes per video."""
    rng = np.random.default_rng(seed)
    video_id = uuid.uuid4()
    for i in range(count):
        if i % 20 == 0:
            video_id = uuid.uuid4()
        faces: tuple[DetectedFace, ...] = ()
        if i % 5 == 0:
            faces = (DetectedFace((0, 0, 10, 10), (_unit(rng, FACE_DIM) * 1.45).astype(np.float32)),)
        texts = _unit(rng, len(TEXT_CHANNELS), TEXT_DIM)
        yield SceneDocument(
            scene_id=uuid.uuid4(),
            video_id=video_id,
            owner_id=owner_id,
            start_s=float(i % 20) * 4.0,
            end_s=float(i % 20) * 4.0 + 4.0,
            texts={c: "" for c in TEXT_CHANNELS},
            text_vectors=dict(zip(TEXT_CHANNELS, texts, strict=True)),
            image_vector=_unit(rng, IMAGE_DIM),
            faces=faces,
            person_ids=(),
            spec_version="bench",
            model_ids={},
            fingerprint="bench",
            input_hash="bench",
        )


def seed_documents(engine: sa.Engine, owner_id: uuid.UUID, count: int, batch: int = 1000) -> float:
    """Upsert ``count`` ``random_documents`` through ``TableSearchIndex.upsert``; wall seconds."""
    index = TableSearchIndex(engine)
    started = time.perf_counter()
    pending: list[SceneDocument] = []
    for doc in random_documents(owner_id, count):
        pending.append(doc)
        if len(pending) == batch:
            index.upsert(pending)
            pending = []
    if pending:
        index.upsert(pending)
    return time.perf_counter() - started


def random_queries(
    text: int = 50, image: int = 50, person: int = 20, seed: int = 1
) -> list[tuple[str, SearchQuery]]:
    """Labelled random queries: ``text`` ones with a ``(384,)`` text vector and a ``(512,)``
    CLIP text vector (the fused case), ``image`` ones with a ``(512,)`` image vector, ``person``
    ones with a ``(128,)`` face vector; all float32 unit vectors."""
    rng = np.random.default_rng(seed)
    queries = [
        ("text", SearchQuery(text_vector=_unit(rng, TEXT_DIM), clip_text_vector=_unit(rng, IMAGE_DIM)))
        for _ in range(text)
    ]
    queries += [("image", SearchQuery(image_vector=_unit(rng, IMAGE_DIM))) for _ in range(image)]
    queries += [("person", SearchQuery(face_vector=_unit(rng, FACE_DIM))) for _ in range(person)]
    return queries


def _rss_mib() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


def search_scale_figures(
    engine: sa.Engine,
    owner_id: uuid.UUID,
    queries: Sequence[tuple[str, SearchQuery]] | None = None,
    k: int = 10,
    index: TableSearchIndex | None = None,
) -> dict[str, Any]:
    """Time ``queries`` (``random_queries()`` by default) against ``owner_id``'s documents on a
    fresh ``TableSearchIndex`` (or ``index``), top ``k``.

    Returns ``scenes`` (the owner's documents), ``cold_s`` (the first query, which loads the
    cache), ``p50_s``/``p99_s`` over the other queries, per kind ``{kind: {"p50_s", "p99_s",
    "n"}}`` under ``kinds``, ``rss_mib_before``/``rss_mib_after`` and ``cpu``.
    """
    queries = list(queries) if queries is not None else random_queries()
    index = index or TableSearchIndex(engine)
    docs = t.search_documents
    with engine.connect() as connection:
        scenes = connection.execute(
            sa.select(sa.func.count()).select_from(docs).where(docs.c.owner_id == owner_id)
        ).scalar_one()
    rss_before = _rss_mib()
    timings: list[tuple[str, float]] = []
    for kind, query in queries:
        started = time.perf_counter()
        index.search(owner_id, query, k)
        timings.append((kind, time.perf_counter() - started))
    warm = [seconds for _, seconds in timings[1:]]
    kinds = {
        kind: {
            "n": len(values),
            "p50_s": _percentile(values, 50),
            "p99_s": _percentile(values, 99),
        }
        for kind in dict.fromkeys(kind for kind, _ in timings)
        if (values := [s for kd, s in timings[1:] if kd == kind])
    }
    return {
        "scenes": int(scenes),
        "queries": len(timings),
        "cold_s": timings[0][1] if timings else float("nan"),
        "p50_s": _percentile(warm, 50),
        "p99_s": _percentile(warm, 99),
        "kinds": kinds,
        "rss_mib_before": rss_before,
        "rss_mib_after": _rss_mib(),
        "cpu": _cpu_model(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: Sequence[str] | None = None) -> None:
    """Seed ``--scenes`` documents of a new owner (unless ``--owner`` names one already
    seeded) and print ``search_scale_figures`` as JSON."""
    parser = argparse.ArgumentParser(prog="python -m scenedex.tools.search_bench")
    parser.add_argument("--scenes", type=int, default=100_000)
    parser.add_argument("--database-url", default=os.environ.get("SCENEDEX_DATABASE_URL"))
    parser.add_argument("--owner", type=uuid.UUID, default=None, help="an owner already seeded")
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("--database-url or SCENEDEX_DATABASE_URL is required")
    engine = create_engine(args.database_url)
    upgrade(engine)
    owner_id = args.owner or uuid.uuid4()
    seed_s = None
    if args.owner is None:
        seed_s = seed_documents(engine, owner_id, args.scenes)
    figures = search_scale_figures(engine, owner_id, k=args.k)
    figures.update({"owner_id": str(owner_id), "seed_s": seed_s})
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
