"""``scenedex video list|show|delete``: an owner's videos for operators, on the use cases the
API shares (``scenedex.services.videos``). Exit codes as in ``common``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from scenedex.domain.model import VideoStatus
from scenedex.domain.request import parse_uuid
from scenedex.scripts.common import (
    JsonOption,
    OwnerOption,
    build_application,
    parse_owner,
    print_json,
    user_errors,
)

video_app = typer.Typer(
    help="An owner's videos: list, show, delete.", no_args_is_help=True, rich_markup_mode="rich"
)
VideoArgument = Annotated[str, typer.Argument(help="Video UUID.")]


def _summary(video: Any) -> dict[str, Any]:
    return {
        "video_id": str(video.id),
        "external_id": video.external_id,
        "title": video.title,
        "status": video.status.value,
        "error": video.error,
        "duration_s": video.duration_s,
        "updated_at": video.updated_at.isoformat(),
    }


@video_app.command("list")
def video_list(
    owner_id: OwnerOption,
    status: Annotated[VideoStatus | None, typer.Option(help="Only videos in this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Videos per page.")] = 100,
    offset: Annotated[int, typer.Option(min=0, help="Videos to skip.")] = 0,
    json_output: JsonOption = False,
) -> None:
    """The owner's videos, oldest first."""
    with user_errors():
        page = build_application().videos.list(
            parse_owner(owner_id), status=status, limit=limit, offset=offset
        )
    if json_output:
        print_json({"videos": [_summary(v) for v in page]})
        return
    for video in page:
        error = f"  {video.error}" if video.error else ""
        print(f"{video.id}  {video.status.value:<9}  {video.duration_s:7.1f} s  {video.title}{error}")


@video_app.command("show")
def video_show(
    video_id: VideoArgument,
    owner_id: OwnerOption,
    json_output: JsonOption = False,
) -> None:
    """One video with its scenes (times and texts)."""
    with user_errors():
        detail = build_application().videos.get(parse_owner(owner_id), parse_uuid(video_id, "video id"))
    scenes = [
        {
            "scene_id": str(s.id),
            "ordinal": s.ordinal,
            "start_s": s.start_s,
            "end_s": s.end_s,
            "transcript": s.transcript,
            "visual_description": s.visual_description,
            "summary": s.summary,
        }
        for s in detail.scenes
    ]
    if json_output:
        print_json({**_summary(detail.video), "scenes": scenes})
        return
    for key, value in _summary(detail.video).items():
        print(f"{key}: {value}")
    for scene in scenes:
        texts = " | ".join(
            t for t in (scene["transcript"], scene["visual_description"], scene["summary"]) if t
        )
        print(f"  {scene['ordinal']:>4}  {scene['start_s']:7.2f}-{scene['end_s']:7.2f} s  {texts}")


@video_app.command("delete")
def video_delete(
    video_id: VideoArgument,
    owner_id: OwnerOption,
    enqueue: Annotated[
        bool, typer.Option("--enqueue", help="Send delete_video to the workers instead of deleting here.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Delete a video everywhere: rows, derived records, search documents, blobs."""
    with user_errors():
        owner, video = parse_owner(owner_id), parse_uuid(video_id, "video id")
        assert video is not None
        videos = build_application().videos
        if enqueue:
            result: dict[str, Any] = {
                "video_id": str(video),
                "message_id": videos.request_deletion(owner, video),
            }
        else:
            done = videos.delete_here(owner, video)
            result = {"video_id": str(video), "scenes": done.scenes, "blobs": done.blobs}
    if json_output:
        print_json(result)
    else:
        print(", ".join(f"{k} {v}" for k, v in result.items()))
