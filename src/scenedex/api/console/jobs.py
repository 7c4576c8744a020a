"""The jobs pages: the list, one job (per-step counts, failed items and their errors), the
fragments their scripts poll while a job runs, and the job actions.

The actions call what the admin API's routes call (``JobCoordinator`` and its store); each is
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
from scenedex.api.deps import RuntimeDep
from scenedex.application import JobRuntime
from scenedex.domain.errors import InvalidRequestError, NotFoundError

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
    (``offered(job)``, on ``JobSummary.to_dict()``) and what it does (``run(runtime, job_id)``,
    raising ``InvalidRequestError`` when the job's state refuses it)."""

    name: str
    label: str
    offered: Callable[[dict[str, Any]], bool]
    run: Callable[[JobRuntime, uuid.UUID], Any]


JOB_ACTIONS = (
    JobAction(
        "pause",
        "Pause",
        lambda job: job["status"] in ("queued", "running"),
        lambda runtime, job_id: runtime.coordinator.pause(job_id),
    ),
    JobAction(
        "resume",
        "Resume",
        lambda job: job["status"] == "paused",
        lambda runtime, job_id: runtime.coordinator.resume(job_id, runtime.probe),
    ),
    JobAction(
        "cancel",
        "Cancel",
        lambda job: job["status"] in ACTIVE_JOB_STATUSES,
        lambda runtime, job_id: runtime.coordinator.store.cancel(job_id),
    ),
    JobAction(
        "retry-failed",
        "Retry failed",
        lambda job: job["items"]["failed"] > 0 and job["status"] != "cancelled",
        lambda runtime, job_id: runtime.coordinator.retry_failed(job_id),
    ),
)
ACTIONS_BY_NAME = {action.name: action for action in JOB_ACTIONS}


def job_summary(runtime: JobRuntime, job_id: uuid.UUID) -> dict[str, Any]:
    """The job's progress as the admin API returns it (``JobSummary.to_dict()``); raises
    ``NotFoundError``."""
    summary = runtime.coordinator.store.summary(job_id)
    if summary is None:
        raise NotFoundError(f"job {job_id} not found")
    result: dict[str, Any] = summary.to_dict()
    return result


def recent_jobs(runtime: JobRuntime) -> list[dict[str, Any]]:
    """The most recent jobs with their progress, most recent first."""
    jobs = runtime.coordinator.store.list(limit=LISTED_JOBS)
    return [job_summary(runtime, job.id) for job in jobs]


@router.get("")
def jobs_page(request: Request, session: SessionDep, runtime: RuntimeDep) -> Response:
    return render(request, "jobs.html", session, nav="jobs", jobs=recent_jobs(runtime))


@router.get("/live")
def jobs_fragment(request: Request, session: SessionDep, runtime: RuntimeDep) -> Response:
    """The jobs table alone, which the list page polls while a job is active."""
    return render(request, "_jobs_table.html", session, jobs=recent_jobs(runtime))


@router.get("/{job_id}")
def job_page(
    request: Request, job_id: uuid.UUID, session: SessionDep, runtime: RuntimeDep, notice: str = ""
) -> Response:
    try:
        job = job_summary(runtime, job_id)
    except NotFoundError as error:
        return render(request, "error.html", session, title="Job", message=str(error), status_code=404)
    return job_view(request, session, job, notice=NOTICES.get(notice))


@router.get("/{job_id}/live")
def job_fragment(request: Request, job_id: uuid.UUID, session: SessionDep, runtime: RuntimeDep) -> Response:
    """The job's live part (status, progress, counts, failures, actions), polled by its page."""
    try:
        job = job_summary(runtime, job_id)
    except NotFoundError as error:
        return Response(str(error), status_code=404)
    return render(request, "_job_live.html", session, job=job, actions=JOB_ACTIONS)


@router.post("/{job_id}/{action}")
def job_action(
    request: Request, job_id: uuid.UUID, action: str, session: PostDep, runtime: RuntimeDep
) -> Response:
    """Run one of ``JOB_ACTIONS``; a state that refuses it shows the job with the reason (409)."""
    chosen = ACTIONS_BY_NAME.get(action)
    if chosen is None:
        return render(request, "error.html", session, title="Job", message="no such action", status_code=404)
    try:
        chosen.run(runtime, job_id)
    except NotFoundError as error:
        return render(request, "error.html", session, title="Job", message=str(error), status_code=404)
    except InvalidRequestError as error:  # the job's state refuses it (ActiveJobError included)
        return job_view(request, session, job_summary(runtime, job_id), error=str(error), status_code=409)
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
