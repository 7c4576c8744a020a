"""The suggested-people page: one owner's suggested persons (``app.face_clusters``: clusters
of the faces no person matched, largest first, paged) and the decisions about them: confirm a
suggestion as an existing person or a new named one, split faces off it.

A decision is stored by ``FaceClusters`` (what ``scenedex faces`` and the API call), then the
owner's reprocess is enqueued as a person change enqueues it (``reprocess_owner``). The POST
redirects back to the page with what was stored and which job picks it up in the query
(``done``, ``faces``, ``person_id``, ``created``, ``job``, ``job_id``: ids and counts only, the
page writes the sentence); a refused decision (a blank name, a suggestion gone since the page
was loaded) shows the page again with the reason.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from scenedex.api.console.home import owner_ids
from scenedex.api.console.render import render
from scenedex.api.console.session import PostDep, SessionDep
from scenedex.api.deps import AppDep, reprocess_after_change
from scenedex.application import Application
from scenedex.domain.errors import InvalidRequestError, NotFoundError, ScenedexError
from scenedex.domain.request import parse_uuid
from scenedex.services.face_clusters import Decided, thumbnail_uri
from scenedex.services.persons import Reprocessing

log = logging.getLogger("scenedex.api.console")
router = APIRouter(prefix="/admin/people", include_in_schema=False)
PAGE_SIZE = 12
SHOWN_TIMES = 3
"""Faces whose scene times a suggestion's card lists (all of them are in its split list)."""
JOB_NOTES = {
    "new": "A new reprocess job of the owner picks it up:",
    "queued": "The owner's queued reprocess job picks it up:",
    "follow-up": "The owner's running job is followed by another reprocess that picks it up:",
    "none": "No reprocess was enqueued (nothing to reprocess, or the broker is unreachable); the "
    "sweeper's periodic job or `scenedex reprocess` picks it up.",
}


@dataclass(frozen=True)
class Notice:
    """What the last decision stored (``text``) and the job that picks it up (``job``: a key of
    ``JOB_NOTES``; ``job_id`` None when none)."""

    text: str
    job: str
    job_id: uuid.UUID | None


@router.get("")
def people(
    request: Request,
    session: SessionDep,
    app: AppDep,
    owner_id: str = "",
    offset: int = 0,
    done: str = "",
    faces: int = 0,
    person_id: str = "",
    created: bool = False,
    job: str = "none",
    job_id: str = "",
) -> Response:
    """The suggestions of ``owner_id`` (default: the first owner), with the notice of the
    decision the last POST stored (``done``)."""
    context = {"done": done, "faces": faces, "person_id": person_id, "created": created}
    return people_page(
        request, session, app, owner_id, offset, notice_of=dict(context, job=job, job_id=job_id)
    )


@router.post("/confirm")
def confirm(
    request: Request,
    session: PostDep,
    app: AppDep,
    owner_id: Annotated[str, Form()] = "",
    cluster_id: Annotated[str, Form()] = "",
    person_id: Annotated[str, Form()] = "",
    name: Annotated[str | None, Form()] = None,
    offset: Annotated[int, Form()] = 0,
) -> Response:
    """Confirm a suggestion as the existing person ``person_id``, or else as a new person
    ``name``."""
    try:
        owner = form_owner(owner_id)
        person = parse_uuid(person_id, "person id") if person_id else None
        decided = app.face_clusters.confirm(
            owner, cluster_id, person_id=person, name=None if person else (name or "")
        )
    except ScenedexError as error:
        return people_page(request, session, app, owner_id, offset, error=error)
    return decided_redirect(owner, offset, decided, reprocess_after_change(app, owner, "face decision"))


@router.post("/split")
def split(
    request: Request,
    session: PostDep,
    app: AppDep,
    owner_id: Annotated[str, Form()] = "",
    cluster_id: Annotated[str, Form()] = "",
    face_ids: Annotated[list[str] | None, Form()] = None,
    offset: Annotated[int, Form()] = 0,
) -> Response:
    """Split the ticked faces off a suggestion: suggested apart from the next clustering on."""
    try:
        owner = form_owner(owner_id)
        decided = app.face_clusters.split(owner, cluster_id, face_ids or [])
    except ScenedexError as error:
        return people_page(request, session, app, owner_id, offset, error=error)
    return decided_redirect(owner, offset, decided, reprocess_after_change(app, owner, "face decision"))


def form_owner(value: str) -> uuid.UUID:
    """The owner a decision form names; raises ``InvalidRequestError`` for none or not a UUID."""
    owner = parse_uuid(value, "owner id")
    if owner is None:
        raise InvalidRequestError("choose an owner")
    return owner


def people_page(
    request: Request,
    session: Any,
    app: Application,
    owner_id: str,
    offset: int,
    *,
    error: ScenedexError | None = None,
    notice_of: dict[str, Any] | None = None,
) -> Response:
    """The page for ``owner_id`` at ``offset``, with ``error`` (a refused decision: 404 for a
    suggestion or person not found, else 422) or the notice of a stored decision."""
    owners = owner_ids(app)
    context: dict[str, Any] = {"owners": owners, "owner": None, "page": None, "persons": []}
    context.update(offset=0, limit=PAGE_SIZE, shown_times=SHOWN_TIMES, job_notes=JOB_NOTES)
    context.update(thumbnail_uri=thumbnail_uri, notice=None)
    status = 200 if error is None else 404 if isinstance(error, NotFoundError) else 422
    try:
        owner = parse_uuid(owner_id, "owner id") if owner_id else (owners[0] if owners else None)
        if owner is not None:
            page, offset = suggestions(app, owner, offset)
            persons = [view.person for view in app.persons.list(owner, limit=500).persons]
            context.update(owner=owner, page=page, offset=offset, persons=persons)
            if notice_of is not None:
                context["notice"] = notice(notice_of, {p.id: p.name for p in persons})
    except InvalidRequestError as bad:
        error, status = bad, 422
    context["error"] = error_message(error)
    return render(request, "suggested_people.html", session, nav="people", status_code=status, **context)


def suggestions(app: Application, owner: uuid.UUID, offset: int) -> tuple[Any, int]:
    """The page of suggestions at ``offset`` (the last page when fewer are left, as after a
    confirm on the last page) and its offset."""
    clusters = app.face_clusters
    page = clusters.list(owner, limit=PAGE_SIZE, offset=max(offset, 0))
    if not page.suggestions and page.total and offset > 0:
        offset = (page.total - 1) // PAGE_SIZE * PAGE_SIZE
        page = clusters.list(owner, limit=PAGE_SIZE, offset=offset)
    return page, max(offset, 0)


def error_message(error: ScenedexError | None) -> str | None:
    """What the page says about a refused decision (None: nothing refused)."""
    if error is None:
        return None
    if isinstance(error, NotFoundError):
        return (
            f"{error}. The suggestions may have changed since the page was loaded (a reprocess "
            "clusters the faces again): here is the current list."
        )
    return f"Nothing was stored: {error}."


def job_kind(done: Reprocessing | None) -> str:
    """The key of ``JOB_NOTES`` for the job that picks a decision up."""
    if done is None:
        return "none"
    if done.created:
        return "new"
    return "follow-up" if done.follow_up_message_id else "queued"


def decided_redirect(owner: uuid.UUID, offset: int, decided: Decided, done: Reprocessing | None) -> Response:
    """Back to the page, saying what was stored and which job picks it up."""
    query = {
        "owner_id": str(owner),
        "offset": str(offset),
        "done": decided.kind.value,
        "faces": str(len(decided.face_ids)),
        "job": job_kind(done),
    }
    if decided.person_id is not None:
        query.update(person_id=str(decided.person_id), created=str(decided.person_created).lower())
    if done is not None:
        query["job_id"] = str(done.job_id)
    return RedirectResponse(f"{router.prefix}?{urlencode(query)}", status_code=303)


def notice(params: dict[str, Any], names: dict[uuid.UUID, str]) -> Notice | None:
    """The notice of the page's query (see the module docstring); None when it names no
    decision or a malformed one."""
    faces = f"{params['faces']} face{'' if params['faces'] == 1 else 's'}"
    try:
        job_id = parse_uuid(params["job_id"], "job id") if params["job_id"] else None
        person = parse_uuid(params["person_id"], "person id") if params["person_id"] else None
    except InvalidRequestError:
        return None
    if params["done"] == "confirm" and person is not None:
        kind = "new person" if params["created"] else "existing person"
        text = f"Stored: {faces} confirmed as {names.get(person, str(person))} ({kind})."
    elif params["done"] == "split":
        text = f"Stored: {faces} split off; they are suggested apart from the next clustering on."
    else:
        return None
    job = params["job"] if params["job"] in JOB_NOTES else "none"
    return Notice(text, job, job_id if job != "none" else None)
