"""Search endpoints for the API services: the caller's nearest scenes for a text, a person or an
image, and the keyframe of a scene (the thumbnail of a hit). The owner is always the token's
``owner_id``; another owner's ids answer 404, exactly like ids that do not exist.

Every hit has one shape (``SceneResult.to_dict``, the same as ``scenedex search --json``):
``scene_id, video_id, external_id, start_s, end_s, score, persons: [{person_id, name}],
keyframe_url, appearances: [{start_s, end_s}], channel, ocr_snippet`` (appearances: person
searches only; channel: text searches only; ocr_snippet: scenes with words read on the keyframe).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.datastructures import UploadFile

from scenedex.api.deps import AppDep, CallerDep
from scenedex.api.etags import etag_matches
from scenedex.api.schemas import COMMON_ERRORS, JSON_BODY_ERRORS, KIND_UNAVAILABLE, Problem
from scenedex.services.search import KEYFRAME_PATH, MAX_K, SceneResult

KEYFRAME_MAX_AGE_S = 3600
"""``Cache-Control: private, max-age`` of a keyframe: a results page shows its thumbnails again
without a request for an hour, then revalidates them with ``If-None-Match`` (a 304 reads no
blob). Short enough that a deleted video's thumbnails leave the browser caches the same day."""

MAX_URI_LENGTH = 2000
MAX_TEXT_LENGTH = 2000

_SCENE = "0d1f7a36-9b0e-4f5b-8d7e-6b2f0a9c1e11"
_VIDEO = "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"
_PERSON = "5e2b7c1a-8d44-4c0e-a3f1-2b9c6d7e8f90"
_KEYFRAME_URI = "s3://media/scenedex/owners/7f0c2d7e-3c1a-4f43-9d55-0b7a4b1e2a10/uploads/frame.jpg"

router = APIRouter(prefix="/v1", tags=["search"], responses=COMMON_ERRORS)


class PersonResult(BaseModel):
    person_id: uuid.UUID
    name: str


class AppearanceResult(BaseModel):
    """A time range in which the searched person is on screen (seconds from the video start)."""

    start_s: float
    end_s: float


class SearchResult(BaseModel):
    scene_id: uuid.UUID
    video_id: uuid.UUID
    external_id: str | None = Field(description="the video's id in the caller's system, when given")
    start_s: float
    end_s: float
    score: float = Field(description="cosine similarity in [-1, 1], higher is nearer")
    persons: list[PersonResult] = Field(description="the caller's persons recognised in the scene")
    keyframe_url: str = Field(description="the scene's keyframe (GET with the same bearer token)")
    appearances: list[AppearanceResult] = Field(
        description="person search: when the person is on screen in the scene, as time ranges "
        "in seconds from the video start, ascending (a face seen in one sampled frame only gives "
        "start_s == end_s); empty for text and image searches",
        examples=[[{"start_s": 12.9, "end_s": 14.5}, {"start_s": 16.0, "end_s": 17.5}]],
    )
    channel: str | None = Field(
        None,
        description="text search: the text channel that matched best: transcript, visual, summary, "
        "or ocr (the words read on the keyframe); null for image and person searches",
        examples=["ocr"],
    )
    ocr_snippet: str | None = Field(
        None,
        description="the start of the words read on the scene's keyframe (at most 160 characters, "
        "one line); null when none were read or OCR is off",
        examples=["HARBOUR STREET Exit 42"],
    )


class SearchResponse(BaseModel):
    """Best first; the same shape as ``scenedex search --json``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "results": [
                        {
                            "scene_id": _SCENE,
                            "video_id": _VIDEO,
                            "external_id": "catalog-4711",
                            "start_s": 12.4,
                            "end_s": 18.0,
                            "score": 0.612345,
                            "persons": [{"person_id": _PERSON, "name": "alice"}],
                            "keyframe_url": KEYFRAME_PATH.format(scene_id=_SCENE),
                            "appearances": [
                                {"start_s": 12.9, "end_s": 14.5},
                                {"start_s": 16.0, "end_s": 17.5},
                            ],
                            "channel": None,
                            "ocr_snippet": "HARBOUR STREET Exit 42",
                        }
                    ]
                }
            ]
        }
    )

    results: list[SearchResult]

    @classmethod
    def of(cls, results: list[SceneResult]) -> SearchResponse:
        return cls.model_validate({"results": [result.to_dict() for result in results]})


class ImageSearchBody(BaseModel):
    """An image search by a blob of the caller's in the blob store (under its
    ``owners/{owner_id}/`` prefix, e.g. a keyframe its pipeline uploaded)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"keyframe_uri": _KEYFRAME_URI}]}
    )

    keyframe_uri: str = Field(min_length=1, max_length=MAX_URI_LENGTH)


_IMAGE_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {"type": "string", "format": "binary", "description": "JPEG, PNG, GIF, WebP"}
                    },
                    "required": ["image"],
                    "additionalProperties": False,
                },
                "encoding": {"image": {"contentType": "image/jpeg, image/png, image/gif, image/webp"}},
                "example": {"image": "(the bytes of frame.jpg: curl -F image=@frame.jpg)"},
            },
        },
    }
}
"""The multipart body of ``POST /v1/search/image``, declared by hand: ``uploaded_image`` reads
the form itself, to stop at ``max_image_bytes`` and to take a part sent without a filename."""

KParam = Annotated[int, Query(ge=1, le=MAX_K, description="how many scenes")]
TextParam = Annotated[
    str | SkipJsonSchema[None],
    Query(
        min_length=1,
        max_length=MAX_TEXT_LENGTH,
        pattern=r"\S",
        json_schema_extra={"pattern": r"\S"},  # pydantic drops it beside SkipJsonSchema[None]
        description="find scenes by meaning; give exactly one of text, person_id",
        openapi_examples={"text": {"value": "cyclists riding down a busy street"}},
    ),
]
PersonParam = Annotated[
    uuid.UUID | SkipJsonSchema[None],
    Query(
        description="scenes showing this person of the caller's; give exactly one of text, person_id",
        openapi_examples={"person": {"value": _PERSON}},
    ),
]


def text_or_person(text: TextParam = None, person_id: PersonParam = None) -> dict[str, Any]:
    """The query of a ``GET /v1/search``: ``{"text": ...}`` or ``{"person_id": UUID}``, two
    optional scalar query parameters (each validated by FastAPI: 422); 422 unless exactly one
    is given, which no parameter schema can say (the operation's description does)."""
    if (text is None) == (person_id is None):
        raise HTTPException(422, "give exactly one of: text, person_id")
    return {"text": text} if person_id is None else {"person_id": person_id}


@router.get(
    "/search",
    response_model=SearchResponse,
    operation_id="searchScenes",
    summary="The caller's nearest scenes for a text or a person",
    description="Owner-scoped nearest scenes through the search index, best first. Give exactly "
    "one of `text` or `person_id` (both or neither: 422).",
    responses={
        **KIND_UNAVAILABLE,
        404: {"model": Problem, "description": "no such person for the caller's owner"},
        422: {"model": Problem, "description": "not exactly one of text, person_id; bad k"},
    },
)
def search(
    caller: CallerDep,
    app: AppDep,
    query: Annotated[dict[str, Any], Depends(text_or_person)],
    k: KParam = 10,
) -> SearchResponse:
    """Owner-scoped nearest scenes through the search index, best first; give exactly one of
    ``text`` or ``person_id``."""
    return SearchResponse.of(app.search.scenes(caller.owner_id, k=k, **query))


@dataclass(frozen=True)
class ImageQuery:
    """What an image search named: uploaded bytes or a blob URI (exactly one)."""

    data: bytes | None = None
    uri: str | None = None


async def image_query(request: Request, app: AppDep) -> ImageQuery:
    """The image of a ``POST /v1/search/image``: a multipart upload with one part, ``image``.
    413 for an upload over ``max_image_bytes`` (read no further), 415 for another content type
    (a ``keyframe_uri`` goes to ``POST /v1/search/image-by-uri``), 422 for other parts."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        raise HTTPException(
            415, "send multipart/form-data with an image (a keyframe_uri: POST /v1/search/image-by-uri)"
        )
    limit = app.search.max_image_bytes
    async with request.form(max_files=1, max_fields=2) as form:
        if set(form) != {"image"}:
            raise HTTPException(422, "the multipart body takes exactly one part: image")
        value = form["image"]
        data = await value.read(limit + 1) if isinstance(value, UploadFile) else _part_bytes(value)
    if len(data) > limit:
        raise HTTPException(413, f"image larger than {limit} bytes")
    return ImageQuery(data=data)


@router.post(
    "/search/image",
    response_model=SearchResponse,
    operation_id="searchByImage",
    summary="The caller's nearest scenes for an uploaded image",
    openapi_extra=_IMAGE_REQUEST_BODY,
    responses={
        **KIND_UNAVAILABLE,
        413: {"model": Problem, "description": "image over SCENEDEX_MAX_IMAGE_BYTES (or _PIXELS)"},
        415: {"model": Problem, "description": "not an image, or not multipart/form-data"},
        422: {"model": Problem, "description": "a body without its one part (image); bad k"},
    },
)
def search_image(
    caller: CallerDep,
    app: AppDep,
    query: Annotated[ImageQuery, Depends(image_query)],
    k: KParam = 10,
) -> SearchResponse:
    """CLIP image kNN over the caller's scenes for an uploaded image (multipart ``image``), best
    first. Images are held to the worker's limits (bytes or pixels: 413; not an image: 415)."""
    image = app.search.query_image(caller.owner_id, data=query.data, uri=query.uri)
    return SearchResponse.of(app.search.scenes(caller.owner_id, image=image, k=k))


@router.post(
    "/search/image-by-uri",
    response_model=SearchResponse,
    operation_id="searchByImageUri",
    summary="The caller's nearest scenes for an image in the blob store (a blob of the caller's)",
    responses={
        **JSON_BODY_ERRORS,
        **KIND_UNAVAILABLE,
        404: {"model": Problem, "description": "keyframe_uri names no blob of the caller's"},
        413: {
            "model": Problem,
            "description": "body over the limit; image over SCENEDEX_MAX_IMAGE_BYTES",
        },
        415: {"model": Problem, "description": "the blob is not an image"},
    },
)
def search_image_by_uri(
    body: ImageSearchBody, caller: CallerDep, app: AppDep, k: KParam = 10
) -> SearchResponse:
    """CLIP image kNN over the caller's scenes for ``keyframe_uri``: a blob under the caller's
    ``owners/{owner_id}/`` prefix of the blob store; another owner's blob is as unknown as a
    missing one (404). Held to the same image limits as an upload."""
    return search_image(caller, app, ImageQuery(uri=body.keyframe_uri), k)


_KEYFRAME_HEADERS = {
    "ETag": {"description": "the keyframe's SHA-256 (strong)", "schema": {"type": "string"}},
    "Cache-Control": {
        "description": f"private, max-age={KEYFRAME_MAX_AGE_S}",
        "schema": {"type": "string"},
    },
}


@router.get(
    KEYFRAME_PATH.removeprefix(router.prefix),
    response_class=Response,
    operation_id="getKeyframe",
    summary="A scene's keyframe image (a hit's thumbnail)",
    responses={
        200: {
            "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
            "headers": _KEYFRAME_HEADERS,
        },
        304: {"description": "the If-None-Match ETag is current", "headers": _KEYFRAME_HEADERS},
        404: {"model": Problem, "description": "no such scene (or keyframe) for the caller's owner"},
        422: {"model": Problem, "description": "scene_id is not a UUID"},
    },
)
def keyframe(
    scene_id: uuid.UUID,
    caller: CallerDep,
    app: AppDep,
    if_none_match: Annotated[str | None, Header(description="an ETag from an earlier answer")] = None,
) -> Response:
    """The keyframe bytes (JPEG for detected scenes) with ``ETag`` (the keyframe's SHA-256) and
    ``Cache-Control: private``; 304 when ``If-None-Match`` names the current ETag."""
    scene = app.search.scene(caller.owner_id, scene_id)
    etag = f'"{scene.keyframe_sha256}"'
    headers = {
        "ETag": etag,
        "Cache-Control": f"private, max-age={KEYFRAME_MAX_AGE_S}",
        "Vary": "Authorization",
    }
    if if_none_match is not None and etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    data, media_type = app.search.keyframe(scene)
    return Response(data, media_type=media_type, headers=headers)


def _part_bytes(value: str) -> bytes:
    """The bytes of a multipart part sent without a filename, which Starlette hands over as text
    (decoded as UTF-8, else as Latin-1). Encoded images are never valid UTF-8, so Latin-1 gives
    their bytes back exactly (other text may not round-trip, and is no image anyway: 415)."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")
