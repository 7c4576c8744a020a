"""The overview page (spec, per-step plan, queues, workers, health) and the reprocess buttons
with their confirmation. Jobs are enqueued with the application's ``app.reprocess.enqueue``, the path
the admin API, the CLI and the scheduler use."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any

import dramatiq
import redis
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from scenedex.api.console.overview import (
    JOB_HISTORY_SCANNED,
    PlanCache,
    dependency_health,
    plan_request,
    spec_change,
)
from scenedex.api.console.render import render
from scenedex.api.console.session import PostDep, SessionDep
from scenedex.api.deps import AppDep
from scenedex.application import Application
from scenedex.domain.errors import InvalidRequestError, NotFoundError
from scenedex.domain.jobs import ActiveJobError, JobTrigger, scope_key
from scenedex.domain.request import ReprocessRequest, parse_uuid

log = logging.getLogger("scenedex.api.console")
router = APIRouter(prefix="/admin", include_in_schema=False)


def plan_cache(request: Request) -> PlanCache:
    """The app's plan cache (made by ``install_console``)."""
    cache: PlanCache = request.app.state.console_plans
    return cache


def owner_ids(app: Application) -> list[uuid.UUID]:
    """Every owner with videos or persons, for the scope pickers."""
    return app.videos.owners()


def optional_owner(value: str | None) -> uuid.UUID | None:
    """An owner id from a form or query (empty: all owners); ``InvalidRequestError`` if not a UUID."""
    return parse_uuid(value, "owner id") if value else None


@router.get("")
def overview(request: Request, session: SessionDep, app: AppDep, owner_id: str = "") -> Response:
    """The overview for all owners or one (``owner_id``)."""
    return overview_page(request, session, app, owner_id, refresh=False)


@router.post("/refresh")
def refresh(
    request: Request,
    session: PostDep,
    app: AppDep,
    owner_id: Annotated[str, Form()] = "",
) -> Response:
    """Compute the scope's dry-run plan again, then show the overview."""
    return overview_page(request, session, app, owner_id, refresh=True)


def overview_page(
    request: Request, session: Any, app: Application, owner_id: str, *, refresh: bool
) -> Response:
    settings = app.settings
    context: dict[str, Any] = {"owners": owner_ids(app), "owner_id": owner_id, "error": None}
    try:
        owner = optional_owner(owner_id)
        cached = plan_cache(request).get(
            owner, lambda: app.reprocess.plan(plan_request(owner)).to_dict(), refresh=refresh
        )
    except (InvalidRequestError, NotFoundError) as error:
        return render(request, "error.html", session, title="Overview", message=str(error), status_code=404)
    jobs = app.jobs.list(limit=JOB_HISTORY_SCANNED)
    context.update(
        spec=app.spec,
        cached=cached,
        plan=cached.plan,
        change=spec_change(app.spec, jobs, cached.plan),
        health=dependency_health(settings),
        queues=None,
        workers=None,
    )
    try:
        context["queues"] = app.jobs.queue_depths(settings.worker.queues)
        own_broker = getattr(dramatiq.get_broker(), "broker_id", None)
        timeout_ms = settings.worker.heartbeat_timeout_ms
        context["workers"] = app.jobs.live_workers(timeout_ms, exclude=own_broker)
    except redis.exceptions.RedisError as error:
        context["error"] = f"Redis unreachable: {str(error).splitlines()[0] if str(error) else error}"
    return render(request, "overview.html", session, nav="overview", **context)


def reprocess_request(scope: str, owner_id: str, video_id: str, force: str) -> ReprocessRequest:
    """The request of the reprocess form (``InvalidRequestError`` for a bad scope or id)."""
    return ReprocessRequest.parse(
        scope,
        owner_id=(owner_id or None) if scope == "owner" else None,
        video_id=(video_id.strip() or None) if scope == "video" else None,
        force=force == "true",
    )


def active_job_for(app: Application, request: ReprocessRequest) -> Any:
    """The active job that holds ``request``'s scope, or None."""
    key = scope_key(request)
    return next((job for job in app.jobs.active() if scope_key(job.request) == key), None)


def held_scope(job_id: uuid.UUID) -> Response:
    """A second click while the scope's job runs: that job's page, saying so."""
    return RedirectResponse(f"/admin/jobs/{job_id}?notice=active", status_code=303)


@router.get("/reprocess")
def confirm_reprocess(
    request: Request,
    session: SessionDep,
    app: AppDep,
    scope: str = "all",
    owner_id: str = "",
    video_id: str = "",
    force: str = "false",
) -> Response:
    """The confirmation: the spec version and how many videos the job will touch."""
    try:
        wanted = reprocess_request(scope, owner_id, video_id, force)
        video_count = app.reprocess.video_count(wanted)
    except (InvalidRequestError, NotFoundError) as error:
        return render(request, "error.html", session, title="Reprocess", message=str(error), status_code=422)
    active = active_job_for(app, wanted)
    if active is not None:
        return held_scope(active.id)
    return render(
        request,
        "confirm.html",
        session,
        nav="overview",
        wanted=wanted,
        scope_label=scope_label(wanted),
        spec_version=app.spec.version,
        video_count=video_count,
    )


@router.post("/reprocess")
def start_reprocess(
    request: Request,
    session: PostDep,
    app: AppDep,
    scope: Annotated[str, Form()] = "all",
    owner_id: Annotated[str, Form()] = "",
    video_id: Annotated[str, Form()] = "",
    force: Annotated[str, Form()] = "false",
) -> Response:
    """Enqueue the confirmed job and show it; a scope already held shows the job holding it."""
    try:
        wanted = reprocess_request(scope, owner_id, video_id, force)
        enqueued = app.reprocess.enqueue(wanted, JobTrigger.API)
    except ActiveJobError as error:
        return held_scope(error.active_job_id)
    except (InvalidRequestError, NotFoundError) as error:
        return render(request, "error.html", session, title="Reprocess", message=str(error), status_code=422)
    log.info(
        "console: %s enqueued job %s (%s)", session.principal.subject, enqueued.job.id, scope_key(wanted)
    )
    return RedirectResponse(f"/admin/jobs/{enqueued.job.id}?notice=started", status_code=303)


def scope_label(request: ReprocessRequest) -> str:
    """``all owners``, ``owner <uuid>`` or ``video <uuid>``."""
    if request.video_id is not None:
        return f"video {request.video_id}"
    if request.owner_id is not None:
        return f"owner {request.owner_id}"
    return "all owners"
