"""Suggested persons (``/v1/face-clusters``) and face decisions (``/v1/faces/{face_id}/reject``).

A suggested person is a cluster of the faces no person matched (largest first, with a JPEG
thumbnail of its representative face as a ``data:`` URI). The owner confirms it as an existing
person or as a new named one, splits faces off it, or rejects one face for a person. Routes
parse, call the use cases of ``scenedex.services.face_clusters`` (the CLI's ``scenedex faces``
calls the same) and leave the errors to the app's handlers: an unknown id, or another owner's,
404; a confirm body without exactly one of ``person_id``/``name``, faces not in the suggestion,
422.

Every decision is an input of the pipeline: like a person change it enqueues the owner's
reprocess (``reprocess_owner``), named in the response's ``reprocess``.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError

from scenedex.api.deps import AppDep, CallerDep, reprocess_after_change
from scenedex.api.idempotency import IdempotencyKeyHeader, answer_once
from scenedex.api.paging import CursorQuery, LimitQuery, decode_size_cursor, encode_size_cursor
from scenedex.api.routes.persons import ReprocessOut
from scenedex.api.schemas import COMMON_ERRORS, JSON_BODY_ERRORS, Problem, Responses
from scenedex.domain.errors import InvalidRequestError
from scenedex.domain.face_decisions import DecisionKind
from scenedex.services.face_clusters import Decided, SuggestionView
from scenedex.services.persons import MAX_NAME_LENGTH, NAME_PATTERN, Reprocessing

log = logging.getLogger("scenedex.api")

CLUSTER_ID_PATTERN = r"^fc-[0-9a-f]{16}$"
"""A suggestion's id: ``fc-`` and 16 hex digits (``domain.face_clusters.cluster_id_of``)."""
FACE_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:[0-9]{1,6}$"
"""A face id as the API lists it: ``<scene id>:<track index>`` (lower-case UUID)."""

_CLUSTER = "fc-3f2a9c1d7e5b4a60"
_SCENE = "0b7e4c1a-9d2f-4e8b-a3c5-6f1d2e3a4b5c"
_VIDEO = "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"
_PERSON = "5d0b6a8e-2f4e-4c8e-9a51-3f0f6f7f1a22"
_GROUP = "8e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
_JOB = "c56a4180-65aa-42ec-a945-5fd21dec0538"
_FACE: dict[str, Any] = {
    "face_id": f"{_SCENE}:0",
    "scene_id": _SCENE,
    "video_id": _VIDEO,
    "start_s": 12.0,
    "end_s": 15.5,
    "bbox": [120, 64, 248, 192],
}
_SUGGESTION: dict[str, Any] = {
    "cluster_id": _CLUSTER,
    "size": 1,
    "scene_count": 1,
    "split": False,
    "representative": _FACE,
    "thumbnail": "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQ...",
    "scene_ids": [_SCENE],
    "faces": [_FACE],
}
_DECIDED: dict[str, Any] = {
    "decision": "confirm",
    "group_id": _GROUP,
    "face_ids": [f"{_SCENE}:0"],
    "person_id": _PERSON,
    "person_name": "Eileen Collins",
    "person_created": True,
    "reprocess": {"job_id": _JOB, "created": True, "follow_up_message_id": None},
}

ClusterId = Annotated[
    str, Path(pattern=CLUSTER_ID_PATTERN, description="a suggestion's id, as listed (fc-...)")
]
FaceId = Annotated[
    str, Field(pattern=FACE_ID_PATTERN, description="a face id, as listed: <scene id>:<track index>")
]


class FaceOut(BaseModel):
    """One face: its scene and video, when it is on screen (seconds from the video start), and
    its box ``[left, top, right, bottom]`` in pixels of its best frame."""

    model_config = ConfigDict(json_schema_extra={"examples": [_FACE]})

    face_id: str = Field(description="<scene id>:<track index>")
    scene_id: uuid.UUID
    video_id: uuid.UUID
    start_s: float
    end_s: float
    bbox: list[int] = Field(min_length=4, max_length=4)


class SuggestionOut(BaseModel):
    """A suggested person: its faces, the representative one and its JPEG thumbnail (a
    ``data:image/jpeg;base64,...`` URI; null when its frame could not be read), and ``split``:
    faces a user split off another suggestion."""

    model_config = ConfigDict(json_schema_extra={"examples": [_SUGGESTION]})

    cluster_id: str
    size: int = Field(description="faces in the suggestion")
    scene_count: int
    split: bool
    representative: FaceOut
    thumbnail: str | None
    scene_ids: list[uuid.UUID]
    faces: list[FaceOut]


class SuggestionPageOut(BaseModel):
    """A page of the owner's suggestions, largest first, and the clustering they come from."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "suggestions": [_SUGGESTION],
                    "total": 1,
                    "limit": 20,
                    "next_cursor": None,
                    "computed_at": "2026-11-01T12:00:00Z",
                    "unknown_faces": 7,
                    "waiting_faces": 0,
                }
            ]
        }
    )

    suggestions: list[SuggestionOut]
    total: int = Field(description="the owner's suggestions in all")
    limit: int
    next_cursor: str | None = Field(
        description="send it as cursor for the next page (null: this is the last)"
    )
    computed_at: datetime | None = Field(description="when the owner's faces were clustered (null: never)")
    unknown_faces: int = Field(description="faces no person matched, as the clustering saw them")
    waiting_faces: int = Field(description="new unknown faces waiting for the next full clustering")


class ConfirmAsPerson(BaseModel):
    """The suggestion is this existing person of the owner."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"person_id": _PERSON}]})

    person_id: uuid.UUID


class ConfirmAsNew(BaseModel):
    """The suggestion is a new person with this name."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "Eileen Collins"}]})

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=NAME_PATTERN)


class ConfirmBody(RootModel[ConfirmAsPerson | ConfirmAsNew]):
    """Exactly one of ``person_id`` (an existing person) or ``name`` (a new person)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"person_id": _PERSON}, {"name": "Eileen Collins"}]}
    )


class ConfirmFields(BaseModel):
    """Both fields, unchecked against each other: ``_exactly_one`` parses with it first so that
    both or neither get the use case's one-line 422 rather than the union's field errors. Not an
    API schema."""

    person_id: uuid.UUID | None = None
    name: str | None = None


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"person_id": _PERSON}]})

    person_id: uuid.UUID = Field(description="the person this face is not")


class SplitBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"face_ids": [f"{_SCENE}:0"]}]})

    face_ids: list[FaceId] = Field(
        min_length=1, description="faces of the suggestion to suggest apart (not all of them)"
    )


class DecidedOut(BaseModel):
    """A stored decision: its kind, the person (null for a split; ``person_created`` when the
    confirm made it), the decision group and the faces it covers (faces already decided the
    same way are not stored twice), and the reprocess that applies it (null when the broker was
    unreachable: the sweeper's periodic jobs or ``scenedex reprocess`` pick it up then)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_DECIDED]})

    decision: DecisionKind
    group_id: uuid.UUID
    face_ids: list[str]
    person_id: uuid.UUID | None
    person_name: str | None
    person_created: bool
    reprocess: ReprocessOut | None = None


router = APIRouter(prefix="/v1", tags=["suggested persons"], responses=COMMON_ERRORS)
_NOT_FOUND: Responses = {
    404: {"model": Problem, "description": "no such suggestion, face or person for the caller"}
}


async def _exactly_one(request: Request, caller: CallerDep) -> None:
    """A confirm body with both ``person_id`` and ``name``, or neither, gets the use case's
    one-line 422 (after the token is checked: ``caller``); everything else is validated by
    ``ConfirmBody`` itself."""
    try:
        fields = ConfirmFields.model_validate(await request.json())
    except (ValueError, ValidationError):  # not JSON, or not well typed: ConfirmBody says why
        return
    if (fields.person_id is None) == (fields.name is None):
        raise InvalidRequestError("give exactly one of person_id (an existing person) or name (a new one)")


@router.get(
    "/face-clusters",
    response_model=SuggestionPageOut,
    operation_id="listFaceClusters",
    summary="The caller's suggested persons",
)
def list_suggestions(
    caller: CallerDep,
    app: AppDep,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
) -> SuggestionPageOut:
    """Clusters of the faces no person matched, largest first (ties: cluster id), each with
    its faces and the thumbnail of its representative face; ``limit`` per page, ``next_cursor``
    gives the next (``api.paging``). ``total`` is cheap here: one count of stored suggestions."""
    after = decode_size_cursor(cursor) if cursor is not None else None
    page = app.face_clusters.list(caller.owner_id, limit=limit, after=after)
    return SuggestionPageOut(
        suggestions=[_out(v) for v in page.suggestions],
        total=page.total,
        limit=limit,
        next_cursor=encode_size_cursor(*page.next_after) if page.next_after is not None else None,
        computed_at=page.computed_at,
        unknown_faces=page.unknown_faces,
        waiting_faces=page.waiting_faces,
    )


@router.get(
    "/face-clusters/{cluster_id}",
    operation_id="getFaceCluster",
    response_model=SuggestionOut,
    summary="One suggested person",
    responses=_NOT_FOUND,
)
def get_suggestion(cluster_id: ClusterId, caller: CallerDep, app: AppDep) -> SuggestionOut:
    """The suggestion with all its faces."""
    return _out(app.face_clusters.get(caller.owner_id, cluster_id))


@router.post(
    "/face-clusters/{cluster_id}/confirm",
    operation_id="confirmFaceCluster",
    response_model=DecidedOut,
    summary="Confirm a suggestion as an existing person or a new one",
    responses={
        201: {"model": DecidedOut, "description": "confirmed as a new person (created)"},
        **JSON_BODY_ERRORS,
        **_NOT_FOUND,
        422: {"model": Problem, "description": "invalid body, or not exactly one of person_id, name"},
    },
    dependencies=[Depends(_exactly_one)],
)
def confirm_suggestion(
    cluster_id: ClusterId,
    body: ConfirmBody,
    caller: CallerDep,
    app: AppDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    """The suggestion's faces are the person (201 when ``name`` created it); the suggestion
    leaves the list at once. Enqueues the owner's reprocess, after which those faces match the
    person. With an ``Idempotency-Key`` sent before for the same suggestion and body: the first
    answer (no second person, decision or reprocess)."""
    choice = body.root
    person_id = choice.person_id if isinstance(choice, ConfirmAsPerson) else None
    name = choice.name if isinstance(choice, ConfirmAsNew) else None

    def confirm() -> tuple[int, DecidedOut, dict[str, str]]:
        decided = app.face_clusters.confirm(caller.owner_id, cluster_id, person_id=person_id, name=name)
        out = _decided(decided, reprocess_after_change(app, caller.owner_id, "face decision"))
        return 201 if decided.person_created else 200, out, {}

    parts = {"cluster_id": cluster_id, "person_id": str(person_id) if person_id else None, "name": name}
    return answer_once(app, caller.owner_id, idempotency_key, "confirmFaceCluster", parts, confirm)


@router.post(
    "/faces/{face_id}/reject",
    operation_id="rejectFace",
    response_model=DecidedOut,
    summary="Reject one face for a person",
    responses={**JSON_BODY_ERRORS, **_NOT_FOUND},
)
def reject_face(
    face_id: Annotated[str, Path(pattern=FACE_ID_PATTERN, description="<scene id>:<track index>")],
    body: RejectBody,
    caller: CallerDep,
    app: AppDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    """In its scene this face never matches the person again (it may match another). Enqueues
    the owner's reprocess. With an ``Idempotency-Key`` sent before for the same face and body:
    the first answer."""

    def reject() -> tuple[int, DecidedOut, dict[str, str]]:
        decided = app.face_clusters.reject(caller.owner_id, face_id, body.person_id)
        return 200, _decided(decided, reprocess_after_change(app, caller.owner_id, "face decision")), {}

    parts = {"face_id": face_id, "person_id": str(body.person_id)}
    return answer_once(app, caller.owner_id, idempotency_key, "rejectFace", parts, reject)


@router.post(
    "/face-clusters/{cluster_id}/split",
    operation_id="splitFaceCluster",
    response_model=DecidedOut,
    summary="Split faces off a suggestion",
    responses={
        **JSON_BODY_ERRORS,
        **_NOT_FOUND,
        422: {
            "model": Problem,
            "description": "invalid body, or faces not in the suggestion (or all of them)",
        },
    },
)
def split_suggestion(
    cluster_id: ClusterId,
    body: SplitBody,
    caller: CallerDep,
    app: AppDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    """The faces are suggested apart, as one group, from the owner's next clustering on (the
    enqueued reprocess). With an ``Idempotency-Key`` sent before for the same suggestion and
    faces: the first answer."""

    def split() -> tuple[int, DecidedOut, dict[str, str]]:
        decided = app.face_clusters.split(caller.owner_id, cluster_id, body.face_ids)
        return 200, _decided(decided, reprocess_after_change(app, caller.owner_id, "face decision")), {}

    parts = {"cluster_id": cluster_id, "face_ids": list(body.face_ids)}
    return answer_once(app, caller.owner_id, idempotency_key, "splitFaceCluster", parts, split)


# -- helpers ---------------------------------------------------------------------------------


def _out(view: SuggestionView) -> SuggestionOut:
    return SuggestionOut.model_validate(view.to_dict())


def _decided(decided: Decided, done: Reprocessing | None) -> DecidedOut:
    reprocess = ReprocessOut(**vars(done)) if done else None
    return DecidedOut(**decided.to_dict(), reprocess=reprocess)
