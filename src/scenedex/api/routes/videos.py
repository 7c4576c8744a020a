"""Owner endpoints for the source data: create (from the blob store), read, list, change scene
texts, delete. The owner is always the token's ``owner_id``; another owner's ids answer 404
exactly like ids that do not exist. The work is in ``scenedex.services.videos``; the heavy
parts (fetch, scene detection, keyframes, embeddings, deletion) run on the workers."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from scenedex.api.contract import accepted
from scenedex.api.deps import AppDep, CallerDep
from scenedex.api.etags import IfMatchHeader, IfNoneMatchHeader, etag_responses, require_match, tagged
from scenedex.api.paging import (
    CursorQuery,
    LimitQuery,
    UpdatedSinceQuery,
    cut_page,
    decode_cursor,
    since_utc,
)
from scenedex.api.schemas import (
    COMMON_ERRORS,
    JSON_BODY_ERRORS,
    Problem,
    Responses,
    openapi_examples,
)
from scenedex.application import Application
from scenedex.domain.limits import MAX_MEDIA_SECONDS, MAX_TEXT_CHARS, MAX_URI_CHARS
from scenedex.domain.model import Scene, Video, VideoStatus
from scenedex.services import videos

_PRECONDITION: Responses = {412: {"model": Problem, "description": "If-Match is not the current ETag"}}
router = APIRouter(prefix="/v1/videos", tags=["videos"], responses=COMMON_ERRORS)
_NOT_FOUND: Responses = {
    404: {"model": Problem, "description": "no such video (or scene) for the caller's owner"}
}
NO_CONTROL_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
"""A title, an external id or a URI: no control character (C0, DEL, C1), as person names."""
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$"
"""A scene text: no control character but tab, line feed and carriage return (no NUL: Postgres
cannot store one)."""
_URI = Field(min_length=1, max_length=MAX_URI_CHARS, pattern=NO_CONTROL_PATTERN)

_VIDEO = "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"
_SCENE = "0d1f7a36-9b0e-4f5b-8d7e-6b2f0a9c1e11"
_MESSAGE = "8b5f0c3e-2d7a-4e1b-9c6f-4a3d2e1f0b9c"
_TIME = "2026-11-01T12:00:00Z"
_SCENE_EXAMPLE: dict[str, Any] = {
    "scene_id": _SCENE,
    "ordinal": 0,
    "start_s": 0.0,
    "end_s": 4.2,
    "transcript": "hello",
    "visual_description": "a bridge over a river",
    "summary": "a cyclist crosses the bridge",
}
_SUMMARY_EXAMPLE: dict[str, Any] = {
    "video_id": _VIDEO,
    "external_id": "clip-0042",
    "title": "Bridge ride",
    "status": "ready",
    "error": None,
    "duration_s": 42.0,
    "created_at": _TIME,
    "updated_at": _TIME,
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SceneIn(_Body):
    """A scene of the caller's own cut: ``[start_s, end_s)`` in seconds, within
    ``MAX_MEDIA_SECONDS`` (the worker checks them against the probed duration); texts of up to
    ``MAX_TEXT_CHARS`` characters."""

    start_s: float = Field(ge=0, le=MAX_MEDIA_SECONDS, allow_inf_nan=False)
    end_s: float = Field(gt=0, le=MAX_MEDIA_SECONDS, allow_inf_nan=False)
    keyframe_uri: str | None = Field(None, min_length=1, max_length=MAX_URI_CHARS, pattern=NO_CONTROL_PATTERN)
    transcript: str = Field("", max_length=MAX_TEXT_CHARS, pattern=TEXT_PATTERN)
    visual_description: str = Field("", max_length=MAX_TEXT_CHARS, pattern=TEXT_PATTERN)
    summary: str = Field("", max_length=MAX_TEXT_CHARS, pattern=TEXT_PATTERN)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {"start_s": 0.0, "end_s": 4.2, "summary": "a cyclist crosses the bridge"}
        },
    )

    @model_validator(mode="after")
    def _ordered(self) -> SceneIn:
        if not self.end_s > self.start_s or not math.isfinite(self.end_s):
            raise ValueError("end_s must be greater than start_s")
        return self


class VideoCreate(_Body):
    source_uri: str = _URI
    title: str | None = Field(None, min_length=1, max_length=500, pattern=NO_CONTROL_PATTERN)
    external_id: str | None = Field(None, min_length=1, max_length=256, pattern=NO_CONTROL_PATTERN)
    subtitles_uri: str | None = Field(
        None, min_length=1, max_length=MAX_URI_CHARS, pattern=NO_CONTROL_PATTERN
    )
    scenes: list[SceneIn] | None = Field(None, min_length=1, max_length=videos.MAX_SCENES)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "source_uri": "s3://media/uploads/clip-0042.mp4",
                "title": "Bridge ride",
                "external_id": "clip-0042",
                "scenes": [{"start_s": 0.0, "end_s": 4.2, "summary": "a cyclist crosses the bridge"}],
            }
        },
    )

    def to_new_video(self) -> videos.NewVideo:
        scenes = None
        if self.scenes is not None:
            scenes = tuple(videos.UpstreamScene(**scene.model_dump()) for scene in self.scenes)
        return videos.NewVideo(
            source_uri=self.source_uri,
            title=self.title,
            external_id=self.external_id,
            subtitles_uri=self.subtitles_uri,
            scenes=scenes,
        )


class VideoAccepted(BaseModel):
    model_config = openapi_examples({"video_id": _VIDEO, "status": "queued", "message_id": _MESSAGE})

    video_id: uuid.UUID
    status: VideoStatus
    message_id: str | None = Field(description="the worker message sent (null: none was needed)")


class SceneOut(BaseModel):
    model_config = openapi_examples(_SCENE_EXAMPLE)

    scene_id: uuid.UUID
    ordinal: int
    start_s: float
    end_s: float
    transcript: str
    visual_description: str
    summary: str

    @classmethod
    def of(cls, scene: Scene) -> SceneOut:
        return cls(
            scene_id=scene.id,
            ordinal=scene.ordinal,
            start_s=scene.start_s,
            end_s=scene.end_s,
            transcript=scene.transcript,
            visual_description=scene.visual_description,
            summary=scene.summary,
        )


class VideoSummary(BaseModel):
    model_config = openapi_examples(_SUMMARY_EXAMPLE)

    video_id: uuid.UUID
    external_id: str | None
    title: str
    status: VideoStatus
    error: str | None = None
    duration_s: float
    created_at: datetime
    updated_at: datetime

    @classmethod
    def fields_of(cls, video: Video) -> dict[str, Any]:
        return {
            "video_id": video.id,
            "external_id": video.external_id,
            "title": video.title,
            "status": video.status,
            "error": video.error,
            "duration_s": video.duration_s,
            "created_at": video.created_at,
            "updated_at": video.updated_at,
        }


class VideoOut(VideoSummary):
    model_config = openapi_examples(
        {**_SUMMARY_EXAMPLE, "scenes": [_SCENE_EXAMPLE], "spec_version": "2026-11-01+3f2a9c1d7e"}
    )

    scenes: list[SceneOut]
    spec_version: str = Field(description="the embedding spec the workers compute under")


class VideoPage(BaseModel):
    """A page of the caller's videos, newest first (no ``total``: not cheap to count)."""

    model_config = openapi_examples({"videos": [_SUMMARY_EXAMPLE], "limit": 50, "next_cursor": None})

    videos: list[VideoSummary]
    limit: int
    next_cursor: str | None = Field(
        description="send it as cursor for the next page (null: this is the last)"
    )


class TextsIn(_Body):
    """The texts to replace (those left out stay as they are), of up to ``MAX_TEXT_CHARS``
    characters, without control characters but tab and line breaks."""

    transcript: str | None = Field(None, max_length=MAX_TEXT_CHARS, pattern=TEXT_PATTERN)
    visual_description: str | None = Field(None, max_length=MAX_TEXT_CHARS, pattern=TEXT_PATTERN)
    summary: str | None = Field(None, max_length=MAX_TEXT_CHARS, pattern=TEXT_PATTERN)

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"summary": "two cyclists at dusk"}}
    )


class TextsAccepted(BaseModel):
    model_config = openapi_examples(
        {
            "video_id": _VIDEO,
            "scene": {**_SCENE_EXAMPLE, "summary": "two cyclists at dusk"},
            "message_id": _MESSAGE,
        }
    )

    video_id: uuid.UUID
    scene: SceneOut
    message_id: str | None = Field(description="the embed message sent (null: no text changed)")


class DeleteAccepted(BaseModel):
    model_config = openapi_examples({"video_id": _VIDEO, "message_id": _MESSAGE})

    video_id: uuid.UUID
    message_id: str


@router.post(
    "",
    operation_id="createVideo",
    status_code=202,
    response_model=VideoAccepted,
    summary="Create a video from the blob store; a worker ingests and embeds it",
    responses={
        **JSON_BODY_ERRORS,
        413: {"model": Problem, "description": "body over SCENEDEX_API__MAX_UPLOAD_BYTES"},
        409: {"model": Problem, "description": "external_id used with other fields"},
        404: {
            "model": Problem,
            "description": "a URI names no blob under the caller's prefix (another owner's, or none)",
        },
    },
)
def create_video(body: VideoCreate, caller: CallerDep, app: AppDep, response: Response) -> VideoAccepted:
    """``queued`` at once; poll ``GET /v1/videos/{id}`` (``Location``) until ``ready`` (or
    ``failed``). With an ``external_id`` the owner used before: the same video."""
    created = app.videos.create(caller.owner_id, body.to_new_video())
    accepted(response, f"{router.prefix}/{created.video.id}")
    return VideoAccepted(
        video_id=created.video.id, status=created.video.status, message_id=created.message_id
    )


@router.get(
    "", response_model=VideoPage, operation_id="listVideos", summary="The caller's videos, newest first"
)
def list_videos(
    caller: CallerDep,
    app: AppDep,
    status: Annotated[VideoStatus | None, Query(description="only videos in this status")] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
    updated_since: UpdatedSinceQuery = None,
) -> VideoPage:
    """Newest first, ``limit`` per page; ``next_cursor`` gives the next (``api.paging``). With
    ``updated_since``, only the videos changed since (status, texts, scenes: ``updated_at``).
    No ``total``: counting an owner's videos is not cheap."""
    before = decode_cursor(cursor) if cursor is not None else None
    page = app.videos.list(
        caller.owner_id,
        status=status,
        limit=limit + 1,
        before=before,
        newest_first=True,
        updated_since=since_utc(updated_since),
    )
    shown, next_cursor = cut_page(page, limit)
    return VideoPage(
        videos=[VideoSummary(**VideoSummary.fields_of(v)) for v in shown],
        limit=limit,
        next_cursor=next_cursor,
    )


@router.get(
    "/{video_id}",
    response_model=VideoOut,
    operation_id="getVideo",
    summary="One of the caller's videos",
    responses={**_NOT_FOUND, **etag_responses("video")},
)
def get_video(
    video_id: uuid.UUID, caller: CallerDep, app: AppDep, if_none_match: IfNoneMatchHeader = None
) -> Response:
    """The video with its scenes, with a strong ``ETag`` (304 for a current ``If-None-Match``)."""
    return tagged(_video_out(app, caller.owner_id, video_id), if_none_match)


def _video_out(app: Application, owner_id: uuid.UUID, video_id: uuid.UUID) -> VideoOut:
    detail = app.videos.get(owner_id, video_id)
    return VideoOut(
        **VideoSummary.fields_of(detail.video),
        scenes=[SceneOut.of(s) for s in detail.scenes],
        spec_version=app.spec.version,
    )


@router.put(
    "/{video_id}/scenes/{ordinal}/texts",
    operation_id="putSceneTexts",
    response_model=TextsAccepted,
    status_code=202,
    summary="Replace a scene's texts; the workers recompute what changed",
    responses={**JSON_BODY_ERRORS, **_NOT_FOUND, **_PRECONDITION},
)
def put_texts(
    video_id: uuid.UUID,
    ordinal: Annotated[int, Path(ge=0, le=1_000_000)],
    body: TextsIn,
    caller: CallerDep,
    app: AppDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> TextsAccepted:
    """The scene's new texts; ``If-Match`` is compared with the video's ETag (``getVideo``)."""
    require_match(if_match, _video_out(app, caller.owner_id, video_id))
    texts = body.model_dump(exclude_none=True)
    scene, message_id = app.videos.set_texts(caller.owner_id, video_id, ordinal, texts)
    accepted(response, f"{router.prefix}/{video_id}")
    return TextsAccepted(video_id=video_id, scene=SceneOut.of(scene), message_id=message_id)


@router.delete(
    "/{video_id}",
    operation_id="deleteVideo",
    status_code=202,
    response_model=DeleteAccepted,
    summary="Delete a video everywhere (rows, records, blobs, search documents) on a worker",
    responses=_NOT_FOUND,
)
def delete_video(video_id: uuid.UUID, caller: CallerDep, app: AppDep, response: Response) -> DeleteAccepted:
    """Deleted on a worker: ``Location`` answers 404 once it is done."""
    message_id = app.videos.request_deletion(caller.owner_id, video_id)
    accepted(response, f"{router.prefix}/{video_id}")
    return DeleteAccepted(video_id=video_id, message_id=message_id)
