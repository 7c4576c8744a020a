"""Person endpoints: an owner's persons and their reference photos (``/v1/persons``).

The owner is always the token's ``owner_id``; another owner's ids answer 404 exactly like ids
that do not exist. Routes parse, call the use cases of ``scenedex.services.persons`` (the CLI's
``scenedex person`` calls the same) and map their errors: a photo over ``max_image_bytes`` (or
the pixel limit: ``PhotoTooLargeError``) 413, a photo that is not an image
(``NotAnImageError``) 415, a bad body 422 (the app's error handlers).

A change of the person set (create, add or delete photos, delete) enqueues the owner's
reprocess (``reprocess_owner``: person steps, then the scene faces matched again from their
stored descriptors, no detection); the response names the job in ``reprocess``. A rename
changes no embedding and enqueues nothing. Photo uploads are multipart (``POST /v1/persons``,
``POST /v1/persons/{id}/photos``): their bodies are held to ``max_upload_bytes``, not to
``max_body_bytes`` (``BodySizeLimit``), and each photo to ``max_image_bytes``.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from scenedex.api.deps import AppDep, CallerDep, reprocess_after_change
from scenedex.api.etags import IfMatchHeader, IfNoneMatchHeader, etag_responses, require_match, tagged
from scenedex.api.idempotency import IdempotencyKeyHeader, answer_once
from scenedex.api.paging import (
    CursorQuery,
    LimitQuery,
    UpdatedSinceQuery,
    created_key,
    cut_page,
    decode_cursor,
    since_utc,
)
from scenedex.api.schemas import COMMON_ERRORS, JSON_BODY_ERRORS, Problem, Responses
from scenedex.domain.model import PhotoStatus
from scenedex.services.persons import (
    MAX_NAME_LENGTH,
    NAME_PATTERN,
    PersonView,
    PhotoUpload,
    Reprocessing,
)
from scenedex.settings import ApiSettings

log = logging.getLogger("scenedex.api")

_PERSON = "5d0b6a8e-2f4e-4c8e-9a51-3f0f6f7f1a22"
_PHOTO = "9a1e3c55-7b8d-4e2f-8c3a-1d2b3c4d5e6f"
_JOB = "c56a4180-65aa-42ec-a945-5fd21dec0538"
_TIME = "2026-11-01T12:00:00Z"
_PERSON_EXAMPLE: dict[str, Any] = {
    "person_id": _PERSON,
    "name": "Eileen Collins",
    "created_at": _TIME,
    "searchable": True,
    "photos": [{"photo_id": _PHOTO, "status": "ok", "error": None, "created_at": _TIME}],
}


class PhotoOut(BaseModel):
    """A reference photo: ``pending`` until the person steps ran, then ``ok``, ``no_face`` or
    ``failed`` (with ``error``)."""

    photo_id: uuid.UUID
    status: PhotoStatus
    error: str | None = None
    created_at: datetime


class ReprocessOut(BaseModel):
    """The job that picks a person change up: a new owner-scope job (``created``), or the
    owner's active job; when that one was already running, ``follow_up_message_id`` names the
    delayed message that enqueues the owner's reprocess again once it is over."""

    job_id: uuid.UUID
    created: bool
    follow_up_message_id: str | None = None


class PersonOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_PERSON_EXAMPLE]})

    person_id: uuid.UUID
    name: str
    created_at: datetime
    searchable: bool = Field(
        False,
        description="every scene of the owner was matched again after the person's last change "
        "(created, photos added or removed): the person.searchable event was sent",
    )
    photos: list[PhotoOut]


class PersonChange(PersonOut):
    """A person after a change, and the reprocess that picks the change up (null when the
    owner has nothing left to reprocess or the broker was unreachable: the sweeper's periodic
    jobs or ``scenedex reprocess`` pick it up then)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "person_id": _PERSON,
                    "name": "Eileen Collins",
                    "created_at": _TIME,
                    "photos": [{"photo_id": _PHOTO, "status": "pending", "error": None, "created_at": _TIME}],
                    "reprocess": {"job_id": _JOB, "created": True, "follow_up_message_id": None},
                }
            ]
        }
    )

    reprocess: ReprocessOut | None = None


class PersonPageOut(BaseModel):
    """A page of the caller's persons, newest first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "persons": [_PERSON_EXAMPLE],
                    "total": 1,
                    "limit": 50,
                    "next_cursor": None,
                }
            ]
        }
    )

    persons: list[PersonOut]
    total: int = Field(description="the owner's persons in all (those updated since updated_since, if given)")
    limit: int
    next_cursor: str | None = Field(
        description="send it as cursor for the next page (null: this is the last)"
    )


class RenameBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "Eileen M. Collins"}]})

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=NAME_PATTERN)


router = APIRouter(prefix="/v1/persons", tags=["persons"], responses=COMMON_ERRORS)
_NOT_FOUND: Responses = {
    404: {"model": Problem, "description": "no such person (or photo) for the caller's owner"}
}
_UPLOAD_ERRORS: Responses = {
    413: {"model": Problem, "description": "a photo (or the whole upload) over the size limit"},
    415: {"model": Problem, "description": "a photo that is not a decodable image"},
}
MAX_PHOTOS_DOCUMENTED: int = ApiSettings.model_fields["max_photos"].default
"""``maxItems`` of ``photos`` in the OpenAPI document, which does not depend on the settings:
the default of ``SCENEDEX_API__MAX_PHOTOS`` (the service refuses more with 422)."""
PhotosField = Annotated[
    list[UploadFile],
    Field(
        min_length=1,
        description="reference photos (JPEG, PNG, ...), one face each; 1 to SCENEDEX_API__MAX_PHOTOS "
        f"({MAX_PHOTOS_DOCUMENTED} unless configured) per request",
        # format: binary (OpenAPI 3.0's spelling, which every client generator reads), not the
        # contentMediaType FastAPI writes for 3.1, which some type as text
        json_schema_extra={
            "maxItems": MAX_PHOTOS_DOCUMENTED,
            "items": {"type": "string", "format": "binary"},
        },
    ),
]


class CreatePersonForm(BaseModel):
    """The multipart body of ``createPerson``: a name and 1 to ``max_photos`` photos."""

    name: str = Field(
        min_length=1, max_length=MAX_NAME_LENGTH, pattern=NAME_PATTERN, description="the person's name"
    )
    photos: PhotosField


class AddPersonPhotosForm(BaseModel):
    """The multipart body of ``addPersonPhotos``: 1 to ``max_photos`` photos."""

    photos: PhotosField


_PHOTO_BYTES = "(the bytes of astronaut.png: curl -F photos=@astronaut.png)"


def _multipart_example(example: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` for an upload: FastAPI generates the multipart schema from the form
    parameters, this adds its example (merged into the generated request body)."""
    return {"requestBody": {"content": {"multipart/form-data": {"example": example}}}}


@router.post(
    "",
    status_code=201,
    response_model=PersonChange,
    operation_id="createPerson",
    summary="Create a person from reference photos (multipart: name, photos)",
    responses=_UPLOAD_ERRORS,
    openapi_extra=_multipart_example({"name": "Eileen Collins", "photos": [_PHOTO_BYTES]}),
)
def create_person(
    caller: CallerDep,
    app: AppDep,
    form: Annotated[CreatePersonForm, Form(media_type="multipart/form-data")],
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    """Stores the photos and the person, then enqueues the owner's reprocess: the person steps
    find the face in each photo, and the owner's scenes are matched against the new person.
    With an ``Idempotency-Key`` sent before for the same name and photos: the first answer."""
    persons = app.persons
    photos = _read(form.photos, persons.max_image_bytes)

    def create() -> tuple[int, PersonChange, dict[str, str]]:
        view = persons.create(caller.owner_id, form.name, photos)
        return 201, _change(view, reprocess_after_change(app, caller.owner_id, "person change")), {}

    parts = {"name": form.name, "photos": _digests(photos)}
    return answer_once(app, caller.owner_id, idempotency_key, "createPerson", parts, create)


@router.post(
    "/{person_id}/photos",
    status_code=201,
    response_model=PersonChange,
    operation_id="addPersonPhotos",
    summary="Add reference photos to a person (multipart: photos)",
    responses={**_UPLOAD_ERRORS, **_NOT_FOUND},
    openapi_extra=_multipart_example({"photos": [_PHOTO_BYTES]}),
)
def add_photos(
    person_id: uuid.UUID,
    caller: CallerDep,
    app: AppDep,
    form: Annotated[AddPersonPhotosForm, Form(media_type="multipart/form-data")],
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    """The person with all its photos after the upload; enqueues the owner's reprocess. With an
    ``Idempotency-Key`` sent before for the same person and photos: the first answer."""
    persons = app.persons
    photos = _read(form.photos, persons.max_image_bytes)

    def add() -> tuple[int, PersonChange, dict[str, str]]:
        view = persons.add_photos(caller.owner_id, person_id, photos)
        return 201, _change(view, reprocess_after_change(app, caller.owner_id, "person change")), {}

    parts = {"person_id": str(person_id), "photos": _digests(photos)}
    return answer_once(app, caller.owner_id, idempotency_key, "addPersonPhotos", parts, add)


@router.delete(
    "/{person_id}/photos/{photo_id}",
    response_model=PersonChange,
    operation_id="deletePersonPhoto",
    summary="Remove one reference photo",
    responses=_NOT_FOUND,
)
def delete_photo(person_id: uuid.UUID, photo_id: uuid.UUID, caller: CallerDep, app: AppDep) -> PersonChange:
    """Removes the photo (row, descriptor, blob); the person with its remaining photos (it may
    have none: it then matches no face). Enqueues the owner's reprocess."""
    persons = app.persons
    persons.delete_photo(caller.owner_id, person_id, photo_id)
    return _change(
        persons.get(caller.owner_id, person_id),
        reprocess_after_change(app, caller.owner_id, "person change"),
    )


@router.get(
    "", response_model=PersonPageOut, operation_id="listPersons", summary="The caller's persons, newest first"
)
def list_persons(
    caller: CallerDep,
    app: AppDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
    updated_since: UpdatedSinceQuery = None,
) -> PersonPageOut:
    """Newest first, ``limit`` per page; ``next_cursor`` gives the next (``api.paging``). With
    ``updated_since``, only the persons whose resource changed since (name, photos and their
    status, searchable). ``total`` is cheap here: an owner has few persons."""
    before = decode_cursor(cursor) if cursor is not None else None
    page = app.persons.page(
        caller.owner_id, limit=limit + 1, before=before, updated_since=since_utc(updated_since)
    )
    shown, next_cursor = cut_page(page.persons, limit, key=lambda view: created_key(view.person))
    return PersonPageOut(
        persons=[_out(v) for v in shown], total=page.total, limit=limit, next_cursor=next_cursor
    )


@router.get(
    "/{person_id}",
    response_model=PersonOut,
    operation_id="getPerson",
    summary="A person with its photos",
    responses={**_NOT_FOUND, **etag_responses("person")},
)
def get_person(
    person_id: uuid.UUID, caller: CallerDep, app: AppDep, if_none_match: IfNoneMatchHeader = None
) -> Response:
    """Each photo with its status (``pending`` until the person steps ran) and error, with a
    strong ``ETag`` (304 for a current ``If-None-Match``)."""
    return tagged(_out(app.persons.get(caller.owner_id, person_id)), if_none_match)


@router.patch(
    "/{person_id}",
    response_model=PersonOut,
    operation_id="renamePerson",
    summary="Rename a person",
    responses={
        **JSON_BODY_ERRORS,
        **_NOT_FOUND,
        412: {"model": Problem, "description": "If-Match is not the person's current ETag"},
    },
)
def rename_person(
    person_id: uuid.UUID, body: RenameBody, caller: CallerDep, app: AppDep, if_match: IfMatchHeader = None
) -> PersonOut:
    """A new name; no embedding depends on it, so nothing is enqueued. ``If-Match``: the
    person's ETag (``getPerson``) the rename is based on."""
    require_match(if_match, _out(app.persons.get(caller.owner_id, person_id)))
    return _out(app.persons.rename(caller.owner_id, person_id, body.name))


@router.delete(
    "/{person_id}",
    response_model=PersonChange,
    operation_id="deletePerson",
    summary="Delete a person, its photos and their records",
    responses=_NOT_FOUND,
)
def delete_person(person_id: uuid.UUID, caller: CallerDep, app: AppDep) -> PersonChange:
    """Removes the person, its photos, their derived records and the photo blobs (the person
    as it was is returned); the enqueued reprocess matches the owner's scene faces again, after
    which no scene lists the person."""
    view = app.persons.delete(caller.owner_id, person_id)
    return _change(view, reprocess_after_change(app, caller.owner_id, "person change"))


# -- helpers ---------------------------------------------------------------------------------


def _read(photos: list[UploadFile], max_bytes: int) -> list[PhotoUpload]:
    """The uploads' bytes, each read up to one byte over ``max_bytes`` (enough to refuse it)."""
    return [PhotoUpload(photo.filename, photo.file.read(max_bytes + 1)) for photo in photos]


def _digests(photos: list[PhotoUpload]) -> list[str]:
    """What identifies the uploaded photos in an idempotent request: their bytes' SHA-256."""
    return [hashlib.sha256(photo.data).hexdigest() for photo in photos]


def _out(view: PersonView) -> PersonOut:
    return PersonOut.model_validate(view.to_dict())


def _change(view: PersonView, done: Reprocessing | None) -> PersonChange:
    reprocess = ReprocessOut(**vars(done)) if done else None
    return PersonChange(**_out(view).model_dump(), reprocess=reprocess)
