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

import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from scenedex.adapters.db.migrate import upgrade
from scenedex.adapters.storage import FsspecBlobStore
from scenedex.application import Services, build_services
from scenedex.settings import UNTRAINED, Settings
from scenedex.tools.bench_library import (
    COSINE_FLOOR,
    FRAME_SIZE,
    TEXT_LENGTHS,
    Library,
    ListenerFactory,
    build_library,
    face_photo,
)
from scenedex.tools.bench_measure import (
    Rate,
    RunFigures,
    bare_models,
    peak_rss_mib,
    precision_check,
    precision_of,
    timed_reprocess,
)
from scenedex.tools.bench_seed import seed_current_library
from scenedex.tools.clip_fallback import services_with_usable_clip
from scenedex.tools.machine import machine

log = logging.getLogger(__name__)

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
    ocr: dict[str, Any] | None = None
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
        from scenedex.tools.bench_ocr import measure_ocr  # issue 33: OCR's cost next to CLIP's

        assert report.full is not None
        check = real_media if face_check else None
        report.ocr = measure_ocr(
            services, library.owner_id, scenes, report.full, listener_factory, check, say
        )
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
