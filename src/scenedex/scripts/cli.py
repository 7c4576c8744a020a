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
from rich.table import Table

from scenedex.domain.errors import InvalidRequestError
from scenedex.domain.progress import ReprocessProgress
from scenedex.domain.request import ReprocessRequest, parse_uuid
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
    build_application,
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
from scenedex.scripts.models_cli import models_app
from scenedex.scripts.person_cli import person_app
from scenedex.scripts.progress import ProgressBars
from scenedex.scripts.token_cli import token_app
from scenedex.scripts.tools_cli import BENCH_EPILOG, DEMO_EPILOG, EMBED_BENCH_EPILOG, bench, demo, embed_bench
from scenedex.scripts.videos_cli import video_app
from scenedex.scripts.webhooks_cli import events_app, webhooks_app

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
    epilog="The workers (scenedex worker) then embed its scenes and mark it ready; with --no-embed, "
    "scenedex reprocess computes its embeddings later, and the video stays embedding until an "
    "embed_video job runs for it. If the broker is unreachable the video is still ingested, and the error "
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
    """Ingest a video as an upload is (scenes by PySceneDetect or --scenes), then enqueue embed_video."""
    with user_errors():
        owner = parse_owner(owner_id)
        cut = _upstream_scenes(scenes) if scenes is not None else None
        app = build_application()
        result = app.videos.ingest_file(owner, video, scenes=cut, title=title, subtitles=subtitles)
    ingested = result.video
    if ingested.error:
        fail(f"video {ingested.id} failed: {ingested.error}", 2)
    message_id = None if no_embed else _enqueue_embed(app, ingested.id, owner)
    if json_output:
        print_json(
            {
                "video_id": str(ingested.id),
                "scenes": len(result.scenes),
                "status": ingested.status.value,
                "embed_message_id": message_id,
            }
        )
    else:
        count, seconds, status = len(result.scenes), ingested.duration_s, ingested.status.value
        print(f"video {ingested.id}: {count} scenes, {seconds:.2f} s, {status}")
        if message_id:
            print(f"embed_video enqueued (message {message_id})")


def _upstream_scenes(scenes_file: Path) -> Any:
    """The caller's cut from ``--scenes`` (``parse_scenes``); ``InvalidRequestError`` for an
    unreadable or invalid file."""
    import json

    from scenedex.services.videos import parse_scenes

    try:
        data = json.loads(scenes_file.read_text())
    except (OSError, ValueError) as error:
        raise InvalidRequestError(f"cannot read scenes JSON {scenes_file}: {error}") from None
    return parse_scenes(data)


def _enqueue_embed(app: Any, video_id: Any, owner_id: Any) -> str:
    """Enqueue embed_video; an unreachable broker is exit 1 with what to run instead (the
    video itself is ingested)."""
    import redis

    try:  # the video was just created here: no ownership to check, and no spec needed
        return str(app.videos.embed_ingested(owner_id, video_id))
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
        app = build_application(log_spec_version=True)
        if dry_run:
            _print_plan(app.reprocess.plan(request).to_dict(), json_output)
            return
        if enqueue:
            _enqueue_job(app, request, json_output)
            return
        with ProgressBars(enabled=not json_output or stderr.is_terminal) as bars:
            progress = app.reprocess.run(request, listener=bars)
    _print_progress(progress, json_output)
    raise typer.Exit(0 if progress.ok else 1)


def _enqueue_job(app: Any, request: ReprocessRequest, json_output: bool) -> None:
    """Enqueue a job with the enqueue use case on a runtime sharing the application's engine; an
    unknown video or owner is a usage error now (``NotFoundError``), not a failed job later."""
    import redis

    from scenedex.domain.jobs import JobTrigger

    try:
        job = app.reprocess.enqueue(request, JobTrigger.CLI).job
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
        hits = build_application().search.scenes(
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


# the operator tools' commands (scripts/tools_cli.py), here so that `scenedex --help` keeps their place
app.command(epilog=DEMO_EPILOG)(demo)
app.command(epilog=BENCH_EPILOG)(bench)
app.command(name="embed-bench", epilog=EMBED_BENCH_EPILOG)(embed_bench)


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
app.add_typer(models_app, name="models")
app.add_typer(events_app, name="events")
app.add_typer(webhooks_app, name="webhooks")


def main(argv: list[str] | None = None) -> Callable[..., Any] | None:
    """Console-script entry point."""
    result: Callable[..., Any] | None = app(args=argv)
    return result


if __name__ == "__main__":
    main()
