"""The ``scenedex`` command line (typer): the root app, its own commands, and the sub-apps.

The sub-apps (``index_cli``, ``jobs_cli``, ``api_cli``, ``doctor_cli``, ``person_cli``,
``faces_cli``, ``videos_cli``) and this module share the helpers of ``common`` (exit codes are
described there); no module imports this one back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from scenedex.domain.errors import InvalidRequestError
from scenedex.domain.progress import ReprocessProgress
from scenedex.domain.request import ReprocessRequest, parse_uuid
from scenedex.domain.spec import EmbeddingStepType
from scenedex.scripts.api_cli import (
    API_EPILOG,
    EMBED_SERVER_EPILOG,
    SCHEDULER_EPILOG,
    api,
    embed_server,
    scheduler,
)
from scenedex.scripts.common import (
    JsonOption,
    OwnerOption,
    build_services,
    fail,
    parse_owner,
    print_json,
    stderr,
    user_errors,
)
from scenedex.scripts.doctor_cli import DOCTOR_EPILOG, doctor
from scenedex.scripts.faces_cli import faces_app
from scenedex.scripts.index_cli import index_app
from scenedex.scripts.jobs_cli import WORKER_EPILOG, jobs_app, worker
from scenedex.scripts.metrics_cli import METRICS_EPILOG, metrics
from scenedex.scripts.person_cli import person_app
from scenedex.scripts.token_cli import token_app
from scenedex.scripts.videos_cli import video_app
from scenedex.settings import Settings
from scenedex.worker.logs import configure_logging

# Help texts are written for the terminal: typer shows a command's docstring (keep it to one line,
# which the command list shows as is) and its epilog (plain paragraphs, rich markup, no RST).
app = typer.Typer(
    help="scenedex: keep video search embeddings correct and current.",
    epilog="Exit codes: 0 success; 1 some items failed or a dependency (model, database) is unusable; "
    "2 usage error (bad uuid, unknown video or owner, wrong scope arguments, missing file), always with "
    "a one-line message on stderr, never a traceback.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
db_app = typer.Typer(
    help="Database schema (Alembic migrations).", no_args_is_help=True, rich_markup_mode="rich"
)
app.add_typer(db_app, name="db")
app.add_typer(person_app, name="person")
app.add_typer(faces_app, name="faces")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the migrations to SCENEDEX_DATABASE_URL (creates the schema on a new database)."""
    from scenedex.adapters.db.migrate import current_revision, upgrade

    with user_errors():
        services = build_services()
        upgrade(services.engine)
        stderr.print(f"database at revision {current_revision(services.engine)}")


@app.command(
    epilog="The workers (scenedex worker) then embed its scenes; with --no-embed, embed them later "
    "with scenedex reprocess. If the broker is unreachable the video is still ingested, and the error "
    "(exit 1) says which reprocess to run."
)
def ingest(
    video: Annotated[Path, typer.Argument(help="Video file to ingest.")],
    owner_id: OwnerOption,
    title: Annotated[str | None, typer.Option(help="Title (default: file name).")] = None,
    subtitles: Annotated[Path | None, typer.Option(help="Subtitles (.srt or .vtt) for transcripts.")] = None,
    scenes: Annotated[
        Path | None,
        typer.Option(
            help="JSON file of the upstream cut: a list of {start_s, end_s, transcript?, "
            "visual_description?, summary?, keyframe_uri?} (no scene detection; keyframes at the middles)."
        ),
    ] = None,
    no_embed: Annotated[
        bool, typer.Option("--no-embed", help="Do not enqueue embed_video (embed later with reprocess).")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Cut a video into scenes (PySceneDetect), store keyframes and rows, and enqueue embed_video."""
    from scenedex.adapters.video import PySceneDetectSceneDetector
    from scenedex.services.ingest import ingest_video

    if scenes is not None:
        _ingest_with_scenes(video, owner_id, title, subtitles, scenes, no_embed, json_output)
        return
    with user_errors():
        owner = parse_owner(owner_id)
        services = build_services()
        result = ingest_video(
            uow_factory=services.uow_factory,
            blobs=services.blobs,
            detector=PySceneDetectSceneDetector(),
            path=video,
            owner_id=owner,
            title=title,
            subtitles=subtitles,
        )
    message_id = None if no_embed else _enqueue_embed(services, result.video.id, owner)
    if json_output:
        print_json(
            {"video_id": str(result.video.id), "scenes": len(result.scenes), "embed_message_id": message_id}
        )
    else:
        print(f"video {result.video.id}: {len(result.scenes)} scenes, {result.video.duration_s:.2f} s")
        if message_id:
            print(f"embed_video enqueued (message {message_id})")


def _ingest_with_scenes(
    video: Path,
    owner_id: str,
    title: str | None,
    subtitles: Path | None,
    scenes_file: Path,
    no_embed: bool,
    json_output: bool,
) -> None:
    """``ingest --scenes``: the use case the API and the ingest_video actor share."""
    import json

    from scenedex.services.videos import ingest_local_file, parse_scenes

    with user_errors():
        owner = parse_owner(owner_id)
        try:
            data = json.loads(scenes_file.read_text())
        except (OSError, ValueError) as error:
            raise InvalidRequestError(f"cannot read scenes JSON {scenes_file}: {error}") from None
        services = build_services()
        result = ingest_local_file(
            video,
            owner,
            parse_scenes(data),
            uow_factory=services.uow_factory,
            blobs=services.blobs,
            cutter=services.video_cutter(),
            title=title,
            subtitles=subtitles,
            limits=services.ingest_limits(),
        )
    if result.error:
        fail(f"video {result.id} failed: {result.error}", 2)
    message_id = None if no_embed else _enqueue_embed(services, result.id, owner)
    if json_output:
        print_json(
            {"video_id": str(result.id), "status": result.status.value, "embed_message_id": message_id}
        )
    else:
        print(f"video {result.id}: {result.duration_s:.2f} s, {result.status.value}")
        if message_id:
            print(f"embed_video enqueued (message {message_id})")


def _enqueue_embed(services: Any, video_id: Any, owner_id: Any) -> str:
    """Enqueue embed_video; an unreachable broker is exit 1 with what to run instead (the
    video itself is ingested)."""
    import redis

    from scenedex.tasks.queue import build_runtime

    try:  # the video was just created here: no ownership to check, and no spec needed
        return build_runtime(services.settings, engine=services.engine).sender.send_embed(video_id, owner_id)
    except redis.exceptions.ConnectionError as error:
        fail(
            f"video {video_id} ingested, but embed_video could not be enqueued ({error}); "
            f"run: scenedex reprocess --scope video --video-id {video_id}",
            1,
        )


@app.command(
    epilog="Runs inline with a progress bar per step, or with --enqueue as a job for the workers "
    "(follow it with scenedex jobs status JOB_ID). Exit 1 when some items failed."
)
def reprocess(
    scope: Annotated[str, typer.Option(help="video | owner | all")],
    video_id: Annotated[str | None, typer.Option("--video-id", help="Video UUID (scope video).")] = None,
    owner_id: Annotated[str | None, typer.Option("--owner-id", help="Owner UUID (scope owner).")] = None,
    force: Annotated[bool, typer.Option(help="Recompute even current records.")] = False,
    since: Annotated[str | None, typer.Option(help="Only videos updated since (ISO 8601).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count missing/stale/current only.")] = False,
    enqueue: Annotated[
        bool, typer.Option("--enqueue", help="Create a job for the workers and print its id at once.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Bring every embedding in the scope up to the latest spec."""
    with user_errors():
        request = ReprocessRequest.parse(
            scope, video_id=video_id, owner_id=owner_id, force=force, since=since
        )
        services = build_services(log_spec_version=True)
        runner = services.runner()
        if dry_run:
            plan = runner.plan(request)
            _print_plan(plan.to_dict(), json_output)
            return
        if enqueue:
            _enqueue_job(services, runner, request, json_output)
            return
        with _ProgressBars(enabled=not json_output or stderr.is_terminal) as bars:
            progress = runner.run(request, listener=bars)
    _print_progress(progress, json_output)
    raise typer.Exit(0 if progress.ok else 1)


def _enqueue_job(services: Any, runner: Any, request: ReprocessRequest, json_output: bool) -> None:
    """Enqueue a job with the enqueue use case on a runtime sharing ``services``' engine; an
    unknown video or owner is a usage error now (``NotFoundError``), not a failed job later."""
    import redis

    from scenedex.domain.jobs import JobTrigger
    from scenedex.services.enqueue import enqueue_reprocess
    from scenedex.tasks.queue import build_runtime

    coordinator = build_runtime(services.settings, services).coordinator
    try:
        job = enqueue_reprocess(request, runner=runner, coordinator=coordinator, trigger=JobTrigger.CLI).job
    except redis.exceptions.ConnectionError as error:
        fail(f"broker unreachable: {error}", 1)
    if json_output:
        print_json({"job_id": str(job.id)})
    else:
        print(f"job {job.id} queued; follow it with: scenedex jobs status {job.id} --watch")


@app.command()
def search(
    owner_id: OwnerOption,
    text: Annotated[str | None, typer.Option(help="Find scenes by meaning of a phrase.")] = None,
    image: Annotated[Path | None, typer.Option(help="Find scenes that look like this image.")] = None,
    person_id: Annotated[
        str | None,
        typer.Option("--person-id", help="Find scenes showing this person (and when: appearances)."),
    ] = None,
    k: Annotated[int, typer.Option("--k", help="How many scenes.")] = 10,
    json_output: JsonOption = False,
) -> None:
    """Nearest scenes of one owner, best first (exact cosine kNN on the table-backed index)."""
    with user_errors():
        owner = parse_owner(owner_id)
        person = parse_uuid(person_id, "person id")
        if image is not None and not image.is_file():
            raise InvalidRequestError(f"image file not found: {image}")
        services = build_services()
        hits = services.search(
            owner,
            text=text,
            image=image.read_bytes() if image is not None else None,
            person_id=person,
            k=k,
        )
    if json_output:
        print_json({"results": [hit.to_dict() for hit in hits]})
        return
    from scenedex.services.search import format_ranges

    table = Table(title=f"{len(hits)} scenes")
    columns = ["score", "video", "external id", "start_s", "end_s", "scene", "persons"]
    for column in columns + (["on screen"] if person is not None else []):
        table.add_column(column, no_wrap=True)
    for hit in hits:
        row = [
            f"{hit.score:.3f}",
            str(hit.video_id),
            hit.external_id or "",
            f"{hit.start_s:.2f}",
            f"{hit.end_s:.2f}",
            str(hit.scene_id),
            ", ".join(p.name for p in hit.persons),
        ]
        table.add_row(*row, *([format_ranges(hit.appearances)] if person is not None else []))
    Console().print(table)


@app.command(
    epilog="The demo never downloads model weights (HF_HUB_OFFLINE=1 unless set): it uses pretrained "
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
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from scenedex.application import bootstrap
    from scenedex.tools.demo import run_demo

    base = Settings()
    configure_logging("WARNING", base.log_format)

    def make_services(untrained: bool) -> Any:
        clip = base.clip.model_copy(update={"pretrained": "none"}) if untrained else base.clip
        settings = base.model_copy(
            update={
                "database_url": f"sqlite:///{directory.resolve() / 'scenedex.db'}",
                "storage_url": str(directory.resolve() / "media"),
                "clip": clip,
            }
        )
        return bootstrap(settings)

    with user_errors():
        stderr.print(f"scenedex demo in {directory.resolve()}")
        report = run_demo(
            directory,
            media if media.is_dir() else None,
            make_services,
            lambda: _ProgressBars(enabled=not json_output or stderr.is_terminal),
            lambda line: stderr.print(line, highlight=False, soft_wrap=True),
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
    'frames_per_scene (null with --no-sampling, or {"1", "4", "8": {scenes, seconds, scenes_per_s, '
    "faces_step_ms_per_scene, frames_read, failed}}: full reprocesses of 2 real videos of 10 scenes);\n"
    "rss_mib {after_build, after_bare, after_full, after_noop, after_precision, "
    "after_previous_faces, after_frames_per_scene, after_seed, after_seeded_noop, after_search} "
    "(peak RSS so far);\n"
    "warnings (list of strings)."
)


@app.command(epilog=BENCH_EPILOG)
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
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from scenedex.tools.bench import run_bench

    settings = Settings()
    configure_logging("WARNING", settings.log_format)
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
            listener_factory=lambda: _ProgressBars(enabled=not json_output or stderr.is_terminal),
            say=lambda line: stderr.print(line, highlight=False, soft_wrap=True),
        )
    for warning in report.warnings:
        stderr.print(f"[bold red]warning:[/bold red] {warning}", highlight=False, soft_wrap=True)
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


@app.command(name="embed-bench", epilog=EMBED_BENCH_EPILOG)
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
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from scenedex.tools.embed_bench import run_embed_bench

    settings = Settings()
    configure_logging("WARNING", settings.log_format)
    with user_errors():
        report = run_embed_bench(
            settings,
            clients=clients or (8, 16),
            requests=requests,
            max_seconds=max_seconds,
            max_wait_ms=max_wait_ms,
            max_batch=max_batch,
            say=lambda line: stderr.print(line, highlight=False, soft_wrap=True),
        )
    for warning in report["warnings"]:
        stderr.print(f"[bold red]warning:[/bold red] {warning}", highlight=False, soft_wrap=True)
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


def _print_plan(plan: dict[str, Any], json_output: bool) -> None:
    if json_output:
        print_json(plan)
        return
    table = Table(
        title=f"plan under spec {plan['spec_version']} ({plan['videos']} videos, {plan['scenes']} scenes)"
    )
    for column in ("step", "missing", "stale", "current"):
        table.add_column(column, justify="left" if column == "step" else "right", no_wrap=column == "step")
    for step in plan["steps"]:
        reasons = ", ".join(f"{k}: {v}" for k, v in step["stale_by_reason"].items())
        stale = f"{step['stale']} ({reasons})" if reasons else str(step["stale"])
        table.add_row(step["step"], str(step["missing"]), stale, str(step["current"]))
    Console().print(table)


def _print_progress(progress: ReprocessProgress, json_output: bool) -> None:
    summary = progress.to_dict()
    if json_output:
        print_json(summary)
        return
    table = Table(title=f"reprocess under spec {progress.spec_version}")
    for column in ("step", "planned", "computed", "skipped", "failed", "seconds", "items/s"):
        table.add_column(column, justify="left" if column == "step" else "right", no_wrap=column == "step")
    for step in summary["steps"]:
        rate = step["computed"] / step["seconds"] if step["seconds"] and step["computed"] else 0
        table.add_row(
            step["step"],
            *(str(step[k]) for k in ("planned", "computed", "skipped", "failed")),
            f"{step['seconds']:.2f}",
            f"{rate:.1f}",
        )
    Console().print(table)
    for error in summary["errors"]:
        stderr.print(
            f"[red]failed[/red] {error['step']} {error['item_id']}: {error['message']}", highlight=False
        )


class _ProgressBars:
    """A rich progress bar per step on stderr (implements ProgressListener)."""

    def __init__(self, enabled: bool) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<26}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=stderr,
            disable=not enabled,
        )
        self._tasks: dict[EmbeddingStepType, Any] = {
            step: self._progress.add_task(step.value, total=0) for step in EmbeddingStepType
        }

    def __enter__(self) -> _ProgressBars:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def planned(self, step: EmbeddingStepType, total: int) -> None:
        task = self._tasks[step]
        self._progress.update(task, total=(self._progress.tasks[task].total or 0) + total)

    def advanced(self, step: EmbeddingStepType, count: int) -> None:
        self._progress.advance(self._tasks[step], count)


# after the commands above, so that `scenedex --help` lists them first
app.add_typer(index_app, name="index")
app.add_typer(video_app, name="video")
app.add_typer(jobs_app, name="jobs")
app.command(epilog=WORKER_EPILOG)(worker)
app.command(epilog=API_EPILOG)(api)
app.command(name="embed-server", epilog=EMBED_SERVER_EPILOG)(embed_server)
app.command(epilog=SCHEDULER_EPILOG)(scheduler)
app.command(epilog=DOCTOR_EPILOG)(doctor)
app.command(epilog=METRICS_EPILOG)(metrics)
app.add_typer(token_app, name="token")


def main(argv: list[str] | None = None) -> Callable[..., Any] | None:
    """Console-script entry point."""
    return app(args=argv)


if __name__ == "__main__":
    main()
