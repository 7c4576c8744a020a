"""The operator tools' commands: ``scenedex demo`` (the main job on sample media, offline),
``scenedex bench`` (reprocess speed with the configured models) and ``scenedex embed-bench`` (the
embedding service under load), registered by ``cli.py``. They call ``scenedex.tools``; exit codes
as in ``common``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from scenedex.scripts.common import JsonOption, print_json, stderr, user_errors
from scenedex.scripts.progress import ProgressBars
from scenedex.settings import Settings
from scenedex.worker.logs import configure_logging


def offline_settings() -> Settings:
    """The settings of a tool that never downloads model weights (``HF_HUB_OFFLINE=1`` unless
    set, before any model library is imported), logging at WARNING."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = Settings()
    configure_logging("WARNING", settings.log_format)
    return settings


def say(line: str) -> None:
    """A tool's progress line on stderr."""
    stderr.print(line, highlight=False, soft_wrap=True)


def warn(warnings: list[str]) -> None:
    """A tool's warnings on stderr, one per line."""
    for warning in warnings:
        stderr.print(f"[bold red]warning:[/bold red] {warning}", highlight=False, soft_wrap=True)


DEMO_EPILOG = (
    "The demo never downloads model weights (HF_HUB_OFFLINE=1 unless set): it uses pretrained "
    "CLIP weights when they are cached, and says so plainly when it falls back to untrained ones."
)


def demo(
    directory: Annotated[
        Path, typer.Option("--dir", help="Folder for the demo's database and media.")
    ] = Path("scenedex-demo"),
    media: Annotated[Path, typer.Option(help="Real sample media, used when present.")] = Path(
        "../shared/data/real"
    ),
    json_output: JsonOption = False,
) -> None:
    """Run the whole pipeline on sample media, offline: ingest, person, reprocess twice, search."""
    base = offline_settings()
    from scenedex.application import build_services
    from scenedex.tools.demo import run_demo

    def make_services(untrained: bool) -> Any:
        clip = base.clip.model_copy(update={"pretrained": "none"}) if untrained else base.clip
        settings = base.model_copy(
            update={
                "database_url": f"sqlite:///{directory.resolve() / 'scenedex.db'}",
                "storage_url": str(directory.resolve() / "media"),
                "clip": clip,
            }
        )
        return build_services(settings)

    with user_errors():
        stderr.print(f"scenedex demo in {directory.resolve()}")
        report = run_demo(
            directory,
            media if media.is_dir() else None,
            make_services,
            lambda: ProgressBars(enabled=not json_output or stderr.is_terminal),
            say,
        )
    if json_output:
        print_json({**vars(report), "directory": str(report.directory)})
    else:
        _print_demo(report)
    raise typer.Exit(0 if report.ok else 1)


BENCH_EPILOG = (
    "Phases: the bare models (CLIP, text, faces) at the batch size after a warm-up batch; the full "
    "reprocess; a no-op reprocess; bf16 vs fp32 cosine; with --noop-scenes, a no-op over that many "
    "seeded scenes (stand-in vectors). Weights are never downloaded: without pretrained CLIP weights "
    "it says so and uses SCENEDEX_CLIP__PRETRAINED=none. Exit code 1 after a warning."
    "\n\n"
    "--json keys (seconds, items or scenes per second, MiB):\n"
    "database, owner_id, scenes, videos, batch_size;\n"
    "machine {cpu_model, cpus, torch_threads, torch, python, load_1m \\[start, end]};\n"
    "models {spec_version, clip_model_id, text_model_id, face_model_id, clip_precision, "
    "text_precision, clip_note};\n"
    "library {seconds, faces_pasted, keyframe_kib_mean, words_per_scene};\n"
    "bare {clip, text, faces: {items, seconds, items_per_s}};\n"
    "full, noop {seconds, scenes_per_s, computed, failed, steps {step: {planned, computed, skipped, "
    "failed, seconds}}};\n"
    "efficiency (bare seconds / full reprocess seconds);\n"
    "precision {clip, text: {precision, compared, min, mean, ok} or {precision, note}};\n"
    "noop_seeded (null or {owner_id, scenes, seed_seconds, noop, note});\n"
    "faces {detection_id, threads, faces_step_ms_per_scene, clip_step_ms_per_scene, faces_to_clip, "
    "previous {detection_id, scenes_per_s, seconds, faces_step_ms_per_scene, failed}, faces_speedup, "
    "speedup_vs_previous_faces} (the previous face detector: a forced full reprocess of the same "
    "library in the same run);\n"
    "faces_to_clip, faces_speedup, speedup_vs_previous_faces (the same three, top level);\n"
    "face_check (null without the real media, or {frames, faces, recall, false_positives, "
    "ms_per_image, missed, previous_recall, previous_false_positives, previous_ms_per_image, "
    "previous_missed});\n"
    "search (null, or with --noop-scenes on the table index {scenes, cold_s, p50_s, p99_s, kinds});\n"
    "ocr {enabled, model_id, ocr_ms_per_scene, clip_ms_per_scene, without_ocr {seconds, scenes_per_s}, "
    "with_ocr {seconds, scenes_per_s, ocr_ms_per_scene, clip_ms_per_scene, ocr_share}, slowdown, check "
    "(with the face check: the labelled OCR check's {recall, ms_per_frame, ...})} (two forced full "
    "reprocesses, OCR off and on; only {enabled, note} with SCENEDEX_OCR__ENABLED=false);\n"
    'frames_per_scene (null with --no-sampling, or {"1", "4", "8": {scenes, seconds, scenes_per_s, '
    "faces_step_ms_per_scene, frames_read, failed}}: full reprocesses of 2 real videos of 10 scenes);\n"
    "rss_mib {after_build, after_bare, after_full, after_noop, after_precision, "
    "after_previous_faces, after_frames_per_scene, after_seed, after_seeded_noop, after_search} "
    "(peak RSS so far);\n"
    "warnings (list of strings)."
)


def bench(
    scenes: Annotated[int, typer.Option(min=1, help="Scenes in the synthetic library.")] = 200,
    batch_size: Annotated[int, typer.Option(min=1, help="Scenes per batch (runner and CLIP).")] = 32,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="Database to use (migrated first); default a temporary SQLite."),
    ] = None,
    noop_scenes: Annotated[
        int, typer.Option(min=0, help="Also seed an owner with this many current scenes and time a no-op.")
    ] = 0,
    media: Annotated[Path, typer.Option(help="Real sample media (its face photo), used when present.")] = (
        Path("../shared/data/real")
    ),
    face_check: Annotated[
        bool, typer.Option(help="Run the labelled face check (needs the real media; ~30 s).")
    ] = True,
    sampling: Annotated[
        bool, typer.Option(help="Time full reprocesses of real videos at 1, 4 and 8 frames per scene.")
    ] = True,
    json_output: JsonOption = False,
) -> None:
    """Measure reprocess speed on a synthetic library with the configured models."""
    settings = offline_settings()
    from scenedex.tools.bench import run_bench

    with user_errors():
        report = run_bench(
            settings,
            scenes=scenes,
            batch_size=batch_size,
            database_url=database_url,
            noop_scenes=noop_scenes,
            real_media=media if media.is_dir() else None,
            face_check=face_check,
            sampling=sampling,
            listener_factory=lambda: ProgressBars(enabled=not json_output or stderr.is_terminal),
            say=say,
        )
    warn(report.warnings)
    if json_output:
        print_json(report.to_dict())
    else:
        _print_bench(report.to_dict())
    raise typer.Exit(0 if report.ok else 1)


def _print_bench(report: dict[str, Any]) -> None:
    console = Console()
    machine, models = report["machine"], report["models"]
    console.print(
        f"[bold]scenedex bench[/bold]: {report['scenes']} scenes in {report['videos']} videos, batch "
        f"{report['batch_size']}, database {report['database']}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"{machine['cpu_model']}, {machine['cpus']} CPUs, torch {machine['torch']} with "
        f"{machine['torch_threads']} threads, load {machine['load_1m'][0]} -> {machine['load_1m'][1]}; "
        f"CLIP {models['clip_model_id']} ({models['clip_precision']}), text {models['text_precision']}",
        highlight=False,
        soft_wrap=True,
    )
    if models["clip_note"]:
        console.print(f"[yellow]note:[/yellow] {models['clip_note']}", highlight=False)
    rss = report["rss_mib"]
    rows = [
        (f"bare {name} (items)", rate["items"], rate["seconds"], rate["items_per_s"], None)
        for name, rate in report["bare"].items()
    ]
    rows[-1] = (*rows[-1][:4], rss["after_bare"])
    for label, key in (("full reprocess", "full"), ("no-op reprocess", "noop")):
        rows.append((f"{label} (scenes)", report["scenes"], *_run_figures(report[key]), rss[f"after_{key}"]))
    if report["noop_seeded"]:
        seeded = report["noop_seeded"]
        figures = _run_figures(seeded["noop"])
        rows.append(("seeded no-op (scenes)", seeded["scenes"], *figures, rss["after_seeded_noop"]))
    table = Table(title="throughput")
    for column in ("phase", "items", "seconds", "items/s", "peak RSS MiB"):
        table.add_column(column, justify="left" if column == "phase" else "right", no_wrap=True)
    for label, items, seconds, rate, peak in rows:
        peak_text = "" if peak is None else f"{peak:.0f}"
        table.add_row(label, str(items), f"{seconds:.2f}", f"{rate:.1f}", peak_text)
    console.print(table)
    steps = Table(title="full reprocess per step")
    for column in ("step", "computed", "seconds"):
        steps.add_column(column, justify="left" if column == "step" else "right", no_wrap=True)
    for step, counts in report["full"]["steps"].items():
        steps.add_row(step, str(counts["computed"]), f"{counts['seconds']:.2f}")
    console.print(steps)
    console.print(f"pipeline efficiency (bare model s / full reprocess s): {report['efficiency']:.2f}")
    for name, figures in report["precision"].items():
        if "note" in figures:
            console.print(f"{name}: {figures['note']}", highlight=False)
        else:
            console.print(
                f"{name} {figures['precision']} vs fp32 over {figures['compared']}: cosine min "
                f"{figures['min']:.5f}, mean {figures['mean']:.5f}",
                highlight=False,
            )
    if report["noop_seeded"]:
        seeded = report["noop_seeded"]
        console.print(f"seeded {seeded['scenes']} scenes in {seeded['seed_seconds']:.1f} s: {seeded['note']}")
    _print_faces(console, report)
    ocr = report["ocr"] or {}
    if ocr.get("with_ocr"):
        with_ocr, without = ocr["with_ocr"], ocr["without_ocr"]
        console.print(
            f"OCR: {ocr['ocr_ms_per_scene']} ms/scene (CLIP {ocr['clip_ms_per_scene']}); forced full "
            f"reprocess {with_ocr['scenes_per_s']} scenes/s with OCR ({with_ocr['ocr_share']:.0%} of it), "
            f"{without['scenes_per_s']} without",
            highlight=False,
        )
    for count, figures in (report["frames_per_scene"] or {}).items():
        console.print(
            f"{count} frame(s) per scene: full reprocess {figures['scenes_per_s']} scenes/s, faces step "
            f"{figures['faces_step_ms_per_scene']:.0f} ms/scene ({figures['frames_read']} frames read)",
            highlight=False,
        )
    if report["search"]:
        search = report["search"]
        console.print(
            f"search over {search['scenes']} scenes of one owner (table index): p50 "
            f"{1000 * search['p50_s']:.0f} ms, p99 {1000 * search['p99_s']:.0f} ms, first query "
            f"(loads the owner's vectors) {search['cold_s']:.1f} s",
            highlight=False,
        )


def _print_faces(console: Console, report: dict[str, Any]) -> None:
    faces, check = report["faces"], report["face_check"]
    if faces:
        previous = faces["previous"]
        console.print(
            f"faces step {faces['faces_step_ms_per_scene']:.1f} ms/scene ({faces['detection_id']}, "
            f"{faces['threads']} threads), CLIP step {faces['clip_step_ms_per_scene']:.1f} ms/scene: "
            f"faces/CLIP {faces['faces_to_clip']}",
            highlight=False,
            soft_wrap=True,
        )
        console.print(
            f"previous detector ({previous['detection_id']}): faces step "
            f"{previous['faces_step_ms_per_scene']:.1f} ms/scene, full reprocess {previous['scenes_per_s']} "
            f"scenes/s; faces speedup {faces['faces_speedup']}x, full reprocess speedup "
            f"{faces['speedup_vs_previous_faces']}x",
            highlight=False,
            soft_wrap=True,
        )
    if check:
        console.print(
            f"labelled face check ({check['frames']} frames, {check['faces']} faces): recall "
            f"{check['recall']:.2f} with {check['false_positives']} false positive(s), previous detector "
            f"{check['previous_recall']:.2f} with {check['previous_false_positives']}; "
            f"missed {check['missed']}",
            highlight=False,
            soft_wrap=True,
        )


def _run_figures(run: dict[str, Any]) -> tuple[float, float]:
    return run["seconds"], run["scenes_per_s"]


EMBED_BENCH_EPILOG = (
    "Loads the models once and serves them twice (batcher on, batcher off). Per client count and "
    "batcher setting, N concurrent clients send signed POST /v1/embed/image requests (1280x720 JPEG "
    "keyframes, ~200 kB) until --requests are sent or --max-seconds pass (the run then says it stopped "
    "early). Weights are never downloaded: without pretrained CLIP weights it says so and uses "
    "SCENEDEX_CLIP__PRETRAINED=none. Exit code 1 after a warning (failed requests)."
    "\n\n"
    "--json keys (seconds, ms, KiB): machine, model {clip_model_id, precision, device, note}, images, "
    "settings, runs [{batcher, clients, requests, ok, failures, seconds, images_per_s, latency_ms {mean, "
    "p50, p90, p99, max}, batch {batches, images, mean_batch, batch_sizes, queue_wait_ms_mean}, "
    "stopped_early}], seconds, stopped_early, warnings."
)


def embed_bench(
    clients: Annotated[
        list[int] | None,
        typer.Option(min=1, help="Concurrent clients per run; repeat for several counts (default 8 and 16)."),
    ] = None,
    requests: Annotated[int, typer.Option(min=1, help="Measured requests per run, one image each.")] = 300,
    max_seconds: Annotated[
        float, typer.Option(min=0.1, help="Per run: send no new request after this many seconds.")
    ] = 30.0,
    max_wait_ms: Annotated[
        float | None,
        typer.Option(min=0, help="Batcher max wait, ms (default: SCENEDEX_EMBED__BATCHER_MAX_WAIT_MS)."),
    ] = None,
    max_batch: Annotated[
        int | None,
        typer.Option(min=1, help="Batcher max batch, images (default: SCENEDEX_EMBED__BATCHER_MAX_BATCH)."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Load-test the embedding service on loopback with its dynamic batcher on and off."""
    settings = offline_settings()
    from scenedex.tools.embed_bench import run_embed_bench

    with user_errors():
        report = run_embed_bench(
            settings,
            clients=clients or (8, 16),
            requests=requests,
            max_seconds=max_seconds,
            max_wait_ms=max_wait_ms,
            max_batch=max_batch,
            say=say,
        )
    warn(report["warnings"])
    if report["stopped_early"]:
        stderr.print(f"[yellow]note:[/yellow] a run stopped early, at --max-seconds {max_seconds:g}")
    if json_output:
        print_json(report)
    else:
        _print_embed_bench(report)
    raise typer.Exit(0 if not report["warnings"] else 1)


def _print_embed_bench(report: dict[str, Any]) -> None:
    console = Console()
    machine, model, images, settings = (report[k] for k in ("machine", "model", "images", "settings"))
    console.print(
        f"[bold]scenedex embed-bench[/bold]: POST /v1/embed/image on loopback, {images['width']}x"
        f"{images['height']} JPEG (mean {images['kib_mean']:.0f} KiB), batcher max wait "
        f"{settings['max_wait_ms']:g} ms, max batch {settings['max_batch']}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"{machine['cpu_model']}, {machine['cpus']} CPUs, load {machine['load_1m'][0]} -> "
        f"{machine['load_1m'][1]}; CLIP {model['clip_model_id']} ({model['precision']}, {model['device']})",
        highlight=False,
        soft_wrap=True,
    )
    if model["note"]:
        console.print(f"[yellow]note:[/yellow] {model['note']}", highlight=False)
    stopped = any(run["stopped_early"] for run in report["runs"])
    table = Table(
        title="single-image clients", caption="* stopped early (--max-seconds)" if stopped else None
    )
    for column in ("clients", "batcher", "sent", "img/s", "mean batch", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for run in report["runs"]:
        table.add_row(
            str(run["clients"]),
            run["batcher"],
            f"{run['requests']}{'*' if run['stopped_early'] else ''}",
            f"{run['images_per_s']:.1f}",
            f"{run['batch']['mean_batch']:.2f}",
            f"{run['latency_ms']['p50']:.0f}",
            f"{run['latency_ms']['p99']:.0f}",
        )
    console.print(table)


def _print_demo(report: Any) -> None:
    console = Console()
    console.print(f"[bold]scenedex demo[/bold] in {report.directory.resolve()}")
    if report.clip_note:
        console.print(f"[yellow]note:[/yellow] {report.clip_note}", highlight=False)
    scenes = sum(v["scenes"] for v in report.videos)
    console.print(
        f"{len(report.videos)} videos, {scenes} scenes; "
        f"person {report.person['name']} ({report.person['person_id']})"
    )
    table = Table(title=f"embeddings per step (spec {report.first_run['spec_version']})")
    for column in ("step", "computed (1st run)", "seconds", "computed (2nd run)", "skipped (2nd run)"):
        table.add_column(column, justify="left" if column == "step" else "right", no_wrap=column == "step")
    for first, second in zip(report.first_run["steps"], report.second_run["steps"], strict=True):
        table.add_row(
            first["step"],
            str(first["computed"]),
            f"{first['seconds']:.2f}",
            str(second["computed"]),
            str(second["skipped"]),
        )
    console.print(table)
    console.print(
        f"1st run {report.first_run['total_seconds']:.1f} s, "
        f"2nd run {report.second_run['total_seconds']:.2f} s"
    )
    titles = {v["video_id"]: v["title"] for v in report.videos}
    for search in report.searches:
        console.print(f"[bold]search[/bold] {search['query']}", highlight=False)
        for hit in search["results"]:
            persons = f" persons={len(hit['persons'])}" if hit["persons"] else ""
            console.print(
                f"  {hit['score']:.3f}  {titles.get(hit['video_id'], hit['video_id'])} "
                f"{hit['start_s']:.2f}-{hit['end_s']:.2f} s{persons}",
                highlight=False,
            )
