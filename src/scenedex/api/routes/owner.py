"""Owner endpoints for the API services: embed one of the caller's videos (search is in
``routes.search``). The owner is always the token's ``owner_id``; another owner's ids answer
404, exactly like ids that do not exist."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from scenedex.api.contract import accepted
from scenedex.api.deps import AppDep, CallerDep
from scenedex.api.schemas import COMMON_ERRORS, EmbedResponse, Problem

router = APIRouter(prefix="/v1", tags=["owner"], responses=COMMON_ERRORS)


@router.post(
    "/videos/{video_id}/embed",
    operation_id="embedVideo",
    status_code=202,
    response_model=EmbedResponse,
    summary="Enqueue embed_video for one of the caller's videos",
    responses={404: {"model": Problem, "description": "no such video for the caller's owner"}},
)
def embed_video(video_id: uuid.UUID, caller: CallerDep, app: AppDep, response: Response) -> EmbedResponse:
    """Runs the latest spec for the video on a worker (missing or stale records only); 404
    unless the caller's owner owns the video."""
    message_id = app.videos.embed(caller.owner_id, video_id)
    accepted(response, f"{router.prefix}/videos/{video_id}")
    return EmbedResponse(video_id=video_id, owner_id=caller.owner_id, message_id=message_id)
