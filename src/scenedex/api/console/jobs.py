"""The jobs pages: the list, one job (per-step counts, failed items and their errors), the
fragments their scripts poll while a job runs, and the job actions.

The actions call what the admin API's routes call (the application's ``app.jobs``); each is
one ``JobAction`` in ``JOB_ACTIONS``, which the job page renders as buttons, so a new action
(pause, resume) is one entry there.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from scenedex.api.console.render import ACTIVE_JOB_STATUSES, render
from scenedex.api.console.session import PostDep, SessionDep
from scenedex.api.deps import AppDep
from scenedex.application import Application
from scenedex.domain.errors import InvalidRequestError, NotFoundError
from scenedex.services.jobs import Jobs

router = APIRouter(prefix="/admin/jobs", include_in_schema=False)
LISTED_JOBS = 25
NOTICES = {
    "started": "Job queued. This page follows it.",
    "active": "A job for this scope is already queued or running: here it is.",
    "pause": "Job paused: no new item starts; running items finish.",
    "resume": "Job resumed.",
    "cancel": "Job cancelled.",
    "retry-failed": "The failed items are queued again.",
}


@dataclass(frozen=True)
class JobAction:
    """A button of the job page: ``name`` (its URL segment), ``label``, when it is offered
    (``offered(job)``, on ``JobSummary.to_dict()``) and what it does (``run(jobs, job_id)``,
    raising ``InvalidRequestError`` when the job's state refuses it)."""

    name: str
    label: str
    offered: Callable[[dict[str, Any]], bool]
    run: Callable[[Jobs, uuid.UUID], Any]


JOB_ACTIONS = (
    JobAction(
        "pause",
        "Pause",
        lambda job: job["status"] in ("queued", "running"),
        lambda jobs, job_id: jobs.pause(job_id),
    ),
    JobAction(
        "resume",
        "Resume",
        lambda job: job["status"] == "paused",
        lambda jobs, job_id: jobs.resume(job_id),
    ),
    JobAction(
        "cancel",
        "Cancel",
        lambda job: job["status"] in ACTIVE_JOB_STATUSES,
        lambda jobs, job_id: jobs.cancel(job_id),
    ),
    JobAction(
        "retry-failed",
        "Retry failed",
        lambda job: job["items"]["failed"] > 0 and job["status"] != "cancelled",
        lambda jobs, job_id: jobs.retry(job_id),
    ),
)
ACTIONS_BY_NAME = {action.name: action for action in JOB_ACTIONS}


def job_summary(app: Application, job_id: uuid.UUID) -> dict[str, Any]:
    """The job's progress as the admin API returns it (``JobSummary.to_dict()``); raises
    ``NotFoundError``."""
    result: dict[str, Any] = app.jobs.summary(job_id).to_dict()
    return result


def recent_jobs(app: Application) -> list[dict[str, Any]]:
    """The most recent jobs with their progress, most recent first."""
    return [job_summary(app, job.id) for job in app.jobs.list(limit=LISTED_JOBS)]


@router.get("")
def jobs_page(request: Request, session: SessionDep, app: AppDep) -> Response:
    return render(request, "jobs.html", session, nav="jobs", jobs=recent_jobs(app))


@router.get("/live")
def jobs_fragment(request: Request, session: SessionDep, app: AppDep) -> Response:
    """The jobs table alone, which the list page polls while a job is active."""
    return render(request, "_jobs_table.html", session, jobs=recent_jobs(app))


@router.get("/{job_id}")
def job_page(
    request: Request, job_id: uuid.UUID, session: SessionDep, app: AppDep, notice: str = ""
) -> Response:
    try:
        job = job_summary(app, job_id)
    except NotFoundError as error:
        return render(request, "error.html", session, title="Job", message=str(error), status_code=404)
    return job_view(request, session, job, notice=NOTICES.get(notice))


@router.get("/{job_id}/live")
def job_fragment(request: Request, job_id: uuid.UUID, session: SessionDep, app: AppDep) -> Response:
    """The job's live part (status, progress, counts, failures, actions), polled by its page."""
    try:
        job = job_summary(app, job_id)
    except NotFoundError as error:
        return Response(str(error), status_code=404)
    return render(request, "_job_live.html", session, job=job, actions=JOB_ACTIONS)


@router.post("/{job_id}/{action}")
def job_action(request: Request, job_id: uuid.UUID, action: str, session: PostDep, app: AppDep) -> Response:
    """Run one of ``JOB_ACTIONS``; a state that refuses it shows the job with the reason (409)."""
    chosen = ACTIONS_BY_NAME.get(action)
    if chosen is None:
        return render(request, "error.html", session, title="Job", message="no such action", status_code=404)
    try:
        chosen.run(app.jobs, job_id)
    except NotFoundError as error:
        return render(request, "error.html", session, title="Job", message=str(error), status_code=404)
    except InvalidRequestError as error:  # the job's state refuses it (ActiveJobError included)
        return job_view(request, session, job_summary(app, job_id), error=str(error), status_code=409)
    return RedirectResponse(f"/admin/jobs/{job_id}?notice={action}", status_code=303)


def job_view(
    request: Request,
    session: Any,
    job: dict[str, Any],
    *,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "job.html",
        session,
        nav="jobs",
        job=job,
        actions=JOB_ACTIONS,
        notice=notice,
        error=error,
        status_code=status_code,
    )
