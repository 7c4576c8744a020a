"""Owner endpoints for the API services: embed one of the caller's videos, search the caller's
scenes. The owner is always the token's ``owner_id``; another owner's ids answer 404, exactly
like ids that do not exist."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from scenedex.api.deps import CallerDep, RuntimeDep, ServicesDep
from scenedex.api.schemas import EmbedResponse, ErrorResponse, SearchResponse
from scenedex.services.enqueue import enqueue_embed_video
from scenedex.services.search import MAX_K

router = APIRouter(
    prefix="/v1",
    tags=["owner"],
    responses={401: {"model": ErrorResponse, "description": "missing, expired or badly signed token"}},
)


@router.post(
    "/videos/{video_id}/embed",
    status_code=202,
    response_model=EmbedResponse,
    summary="Enqueue embed_video for one of the caller's videos",
    responses={404: {"model": ErrorResponse, "description": "no such video for the caller's owner"}},
)
def embed_video(
    video_id: uuid.UUID, caller: CallerDep, services: ServicesDep, runtime: RuntimeDep
) -> EmbedResponse:
    """Runs the latest spec for the video on a worker (missing or stale records only); 404
    unless the caller's owner owns the video."""
    message_id = enqueue_embed_video(
        video_id, caller.owner_id, runner=services.runner(), send=runtime.sender.send_embed
    )
    return EmbedResponse(video_id=video_id, owner_id=caller.owner_id, message_id=message_id)


@router.get(
    "/search",
    response_model=SearchResponse,
    summary="The caller's nearest scenes for a text or a person",
    responses={
        404: {"model": ErrorResponse, "description": "no such person for the caller's owner"},
        422: {"model": ErrorResponse, "description": "not exactly one of text, person_id; bad k"},
    },
)
def search(
    caller: CallerDep,
    services: ServicesDep,
    text: Annotated[str | None, Query(max_length=2000, description="find scenes by meaning")] = None,
    person_id: Annotated[uuid.UUID | None, Query(description="find scenes showing this person")] = None,
    k: Annotated[int, Query(ge=1, le=MAX_K, description="how many scenes")] = 10,
) -> SearchResponse:
    """Owner-scoped exact kNN through the search index, best first; give exactly one of
    ``text`` or ``person_id``."""
    hits = services.search(caller.owner_id, text=text, person_id=person_id, k=k)
    return SearchResponse.model_validate({"results": [hit.to_dict() for hit in hits]})
