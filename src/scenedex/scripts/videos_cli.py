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
    build_services,
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
    from scenedex.services.videos import list_videos

    with user_errors():
        services = build_services()
        page = list_videos(
            parse_owner(owner_id), uow_factory=services.uow_factory, status=status, limit=limit, offset=offset
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
    from scenedex.services.videos import get_video

    with user_errors():
        services = build_services()
        detail = get_video(
            parse_owner(owner_id), parse_uuid(video_id, "video id"), uow_factory=services.uow_factory
        )
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
    from scenedex.services.videos import delete_video, request_deletion

    with user_errors():
        owner, video = parse_owner(owner_id), parse_uuid(video_id, "video id")
        assert video is not None
        services = build_services()
        if enqueue:
            from scenedex.tasks.queue import build_runtime

            sender = build_runtime(services.settings, engine=services.engine).sender
            message_id = request_deletion(
                owner, video, uow_factory=services.uow_factory, send_delete=sender.send_delete
            )
            result: dict[str, Any] = {"video_id": str(video), "message_id": message_id}
        else:
            request_deletion(owner, video, uow_factory=services.uow_factory, send_delete=lambda v, o: "")
            done = delete_video(
                owner,
                video,
                uow_factory=services.uow_factory,
                blobs=services.blobs,
                index=services.search_index,
            )
            result = {"video_id": str(video), "scenes": done.scenes, "blobs": done.blobs}
    if json_output:
        print_json(result)
    else:
        print(", ".join(f"{k} {v}" for k, v in result.items()))
