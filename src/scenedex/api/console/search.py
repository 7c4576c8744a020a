"""The search check: text, person and image (upload) search for one owner through
``Services.search`` (what ``GET /v1/search`` runs), the hits' keyframes, and the owner's persons
with their reference photos and each photo's status."""

from __future__ import annotations

import mimetypes
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from starlette.responses import Response

from scenedex.api.console.home import owner_ids
from scenedex.api.console.render import render
from scenedex.api.console.session import PostDep, SessionDep
from scenedex.api.deps import AppDep
from scenedex.application import Application
from scenedex.domain.errors import InvalidRequestError, NotFoundError, ScenedexError
from scenedex.domain.request import parse_uuid

router = APIRouter(prefix="/admin", include_in_schema=False)
DEFAULT_K = 8
ANY_OWNER = uuid.UUID(int=0)
MEDIA_HEADERS = {"Cache-Control": "private, max-age=300"}


def search_page(
    request: Request,
    session: Any,
    app: Application,
    owner_id: str,
    query: dict[str, Any] | None,
    *,
    k: int,
    described: str = "",
) -> Response:
    """The page for ``owner_id`` (default: the first owner), with the hits of ``query`` (None:
    no search yet) and the owner's persons."""
    owners = owner_ids(app)
    context: dict[str, Any] = {"owners": owners, "hits": None, "error": None, "persons": [], "k": k}
    context.update(described=described, text=(query or {}).get("text", ""))
    status, owner = 200, None
    try:
        owner = parse_uuid(owner_id, "owner id") if owner_id else (owners[0] if owners else None)
        if owner is not None:
            context["persons"] = list(app.persons.list(owner, limit=100).persons)
            if query is not None:
                hits = app.search.scenes(owner, k=k, **query)
                titles = app.videos.titles(owner, (hit.video_id for hit in hits))
                context.update(hits=hits, titles=titles)
    except ScenedexError as error:
        context["error"], status = str(error), 404 if isinstance(error, NotFoundError) else 422
    context["owner"] = owner
    return render(request, "search.html", session, nav="search", status_code=status, **context)


@router.get("/search")
def search(
    request: Request,
    session: SessionDep,
    app: AppDep,
    owner_id: str = "",
    text: str = "",
    person_id: str = "",
    k: int = DEFAULT_K,
) -> Response:
    """Text search (``text``) or person search (``person_id``) for one owner."""
    query: dict[str, Any] | None = None
    described = ""
    try:
        if person_id:
            query, described = {"person_id": parse_uuid(person_id, "person id")}, "person"
        elif text.strip():
            query, described = {"text": text}, f"text “{text}”"
    except InvalidRequestError as error:
        return render(request, "error.html", session, title="Search", message=str(error), status_code=422)
    return search_page(request, session, app, owner_id, query, k=k, described=described)


@router.post("/search")
def search_image(
    request: Request,
    session: PostDep,
    app: AppDep,
    image: Annotated[UploadFile, File()],
    owner_id: Annotated[str, Form()] = "",
    k: Annotated[int, Form()] = DEFAULT_K,
) -> Response:
    """Image search with an uploaded picture, held to the API's image limits."""
    limit = app.search.max_image_bytes
    data = image.file.read(limit + 1)  # a sync route: the model runs off the event loop
    try:
        checked = app.search.query_image(ANY_OWNER, data=data)  # an upload: checked, not looked up
    except ScenedexError as error:
        return render(request, "error.html", session, title="Search", message=str(error), status_code=422)
    name = image.filename or "upload"
    return search_page(request, session, app, owner_id, {"image": checked}, k=k, described=f"image {name}")


@router.get("/keyframes/{owner_id}/{scene_id}")
def keyframe(owner_id: uuid.UUID, scene_id: uuid.UUID, session: SessionDep, app: AppDep) -> Response:
    """A scene's keyframe (what ``GET /v1/scenes/{id}/keyframe`` serves), for any owner."""
    try:
        data, media_type = app.search.keyframe(app.search.scene(owner_id, scene_id))
    except NotFoundError as error:
        return Response(str(error), status_code=404)
    return Response(data, media_type=media_type, headers=MEDIA_HEADERS)


@router.get("/photos/{owner_id}/{person_id}/{photo_id}")
def person_photo(
    owner_id: uuid.UUID, person_id: uuid.UUID, photo_id: uuid.UUID, session: SessionDep, app: AppDep
) -> Response:
    """A person's reference photo, read from the owner's part of the blob store."""
    try:
        view = app.persons.get(owner_id, person_id)
        photo = next(p for p in view.photos if p.id == photo_id)
        data = app.search.blob(owner_id, photo.image_uri)
    except (NotFoundError, StopIteration):
        return Response("no such photo", status_code=404)
    media_type = mimetypes.guess_type(photo.image_uri)[0] or "application/octet-stream"
    return Response(data, media_type=media_type, headers=MEDIA_HEADERS)
