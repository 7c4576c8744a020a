"""Admin endpoints (role ``admin``): enqueue reprocess jobs and follow, pause, resume, cancel,
re-send or retry them, through the application's use cases (``app.reprocess``, ``app.jobs``),
which the console, the CLI and the scheduler call too."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from scenedex.api.contract import accepted_headers
from scenedex.api.deps import AppDep, CallerDep, require_admin
from scenedex.api.idempotency import IdempotencyKeyHeader, answer_once
from scenedex.api.paging import CursorQuery, LimitQuery, cut_page, decode_cursor
from scenedex.api.schemas import (
    COMMON_ERRORS,
    JSON_BODY_ERRORS,
    EnqueueResponse,
    JobActionResponse,
    JobListItem,
    JobListResponse,
    JobResponse,
    PlanResponse,
    Problem,
    ReprocessBody,
    ReprocessFields,
)
from scenedex.domain.errors import InvalidRequestError
from scenedex.domain.jobs import ActiveJobError, Job, JobStatus, JobTrigger, scope_key
from scenedex.domain.request import ReprocessScope

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses={
        **COMMON_ERRORS,
        403: {"model": Problem, "description": "the token lacks the admin role"},
    },
)
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "unknown job"}}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "the job's state does not allow this"}
}


@contextmanager
def _conflicts() -> Iterator[None]:
    """A job state that refuses the action (finished, cancelled, nothing failed) is a 409."""
    try:
        yield
    except ActiveJobError:
        raise
    except InvalidRequestError as error:
        raise HTTPException(409, str(error)) from None


async def _ids_fit_the_scope(request: Request) -> None:
    """A body whose fields are well typed but whose ids do not fit its ``scope`` gets the
    domain's one-line 422 (``"scope 'video' needs a video id"``) rather than the union's field
    errors; everything else is validated by ``ReprocessBody`` itself (same inputs accepted)."""
    try:
        fields = ReprocessFields.model_validate(await request.json())
    except (ValueError, ValidationError):  # not JSON, or not well typed: ReprocessBody says why
        return
    fields.to_request()


@router.post(
    "/reprocess-embeddings",
    operation_id="enqueueReprocess",
    status_code=202,
    response_model=EnqueueResponse,
    summary="Enqueue a reprocess job (or plan one with dry_run)",
    responses={
        200: {"model": PlanResponse, "description": "dry_run: the plan, nothing enqueued"},
        **JSON_BODY_ERRORS,
        404: {"model": Problem, "description": "unknown video or owner"},
        409: {"model": Problem, "description": "the scope already has an active job"},
        422: {"model": Problem, "description": "invalid body, or a scope without its id"},
    },
    dependencies=[Depends(_ids_fit_the_scope)],
)
def reprocess_embeddings(
    body: ReprocessBody, app: AppDep, caller: CallerDep, idempotency_key: IdempotencyKeyHeader = None
) -> Any:
    """Create a job for the scope and send its planner message; 202 with the job id. Only
    records that are missing or stale are recomputed unless ``force``. With an
    ``Idempotency-Key`` (per the admin token's owner) sent before for the same body: the first
    answer, and no second job."""
    request = body.to_request()
    if body.dry_run:
        plan = app.reprocess.plan(request)
        return JSONResponse(PlanResponse.model_validate(plan.to_dict()).model_dump(mode="json"))

    def enqueue() -> tuple[int, EnqueueResponse, dict[str, str]]:
        enqueued = app.reprocess.enqueue(request, JobTrigger.API)
        job, video_count = enqueued.job, enqueued.video_count
        location = f"{router.prefix}/reprocess-jobs/{job.id}"
        answer = EnqueueResponse(
            job_id=job.id,
            spec_version=job.spec_version,
            scope=job.request.scope,
            video_count=video_count,
            message=f"reprocess of {scope_key(request)} queued: {video_count} video(s); "
            f"progress at {location}",
        )
        return 202, answer, accepted_headers(location)

    parts = body.model_dump(mode="json")
    return answer_once(app, caller.owner_id, idempotency_key, "enqueueReprocess", parts, enqueue)


@router.get(
    "/reprocess-jobs",
    response_model=JobListResponse,
    operation_id="listReprocessJobs",
    summary="Recent jobs, most recent first",
)
def list_jobs(
    app: AppDep,
    status: JobStatus | None = None,
    scope: ReprocessScope | None = None,
    trigger: JobTrigger | None = None,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
) -> JobListResponse:
    """Every owner's jobs (admins), newest first, ``limit`` per page; ``next_cursor`` gives the
    next (``api.paging``). No ``total``."""
    before = decode_cursor(cursor) if cursor is not None else None
    jobs = app.jobs.list(limit=limit + 1, status=status, scope=scope, trigger=trigger, before=before)
    shown, next_cursor = cut_page(jobs, limit)
    return JobListResponse(jobs=[_list_item(job) for job in shown], limit=limit, next_cursor=next_cursor)


@router.get(
    "/reprocess-jobs/{job_id}",
    operation_id="getReprocessJob",
    response_model=JobResponse,
    summary="A job's progress, per-step counts, failed items and ETA",
    responses=_NOT_FOUND,
)
def get_job(job_id: uuid.UUID, app: AppDep) -> dict[str, Any]:
    return _summary(app, job_id)


@router.post(
    "/reprocess-jobs/{job_id}/cancel",
    operation_id="cancelReprocessJob",
    response_model=JobResponse,
    summary="Cancel an active job (items not yet run are cancelled)",
    responses={**_NOT_FOUND, **_CONFLICT},
)
def cancel_job(job_id: uuid.UUID, app: AppDep) -> dict[str, Any]:
    with _conflicts():
        app.jobs.cancel(job_id)
    return _summary(app, job_id)


@router.post(
    "/reprocess-jobs/{job_id}/pause",
    operation_id="pauseReprocessJob",
    response_model=JobResponse,
    summary="Pause a queued or running job (no new item starts; running items finish)",
    responses={**_NOT_FOUND, **_CONFLICT},
)
def pause_job(job_id: uuid.UUID, app: AppDep) -> dict[str, Any]:
    """409 when the job is not queued or running (already paused, or over)."""
    with _conflicts():
        app.jobs.pause(job_id)
    return _summary(app, job_id)


@router.post(
    "/reprocess-jobs/{job_id}/resume",
    operation_id="resumeReprocessJob",
    response_model=JobActionResponse,
    summary="Resume a paused job (the messages it dropped while paused are sent again)",
    responses={**_NOT_FOUND, **_CONFLICT},
)
def resume_job(job_id: uuid.UUID, app: AppDep) -> JobActionResponse:
    """409 when the job is not paused."""
    with _conflicts():
        job, resent = app.jobs.resume(job_id)
    return JobActionResponse(job_id=job_id, status=job.status, resent=resent)


@router.post(
    "/reprocess-jobs/{job_id}/resend",
    operation_id="resendReprocessJob",
    response_model=JobActionResponse,
    summary="Re-send the messages of a running job that the broker lost",
    responses={**_NOT_FOUND, **_CONFLICT},
)
def resend_job(job_id: uuid.UUID, app: AppDep) -> JobActionResponse:
    """For a Redis that lost its queues (restarted without persistence, flushed); the worker's
    sweeper does the same every ``SCENEDEX_WORKER__SWEEP_INTERVAL_S``. 409 when the job is
    paused or over."""
    with _conflicts():
        job, resent = app.jobs.resend(job_id)
    return JobActionResponse(job_id=job_id, status=job.status, resent=resent)


@router.post(
    "/reprocess-jobs/{job_id}/retry-failed",
    operation_id="retryFailedReprocessItems",
    response_model=JobActionResponse,
    summary="Run the job's failed video items again",
    responses={**_NOT_FOUND, **_CONFLICT},
)
def retry_failed(job_id: uuid.UUID, app: AppDep) -> JobActionResponse:
    """Failed video items go back to queued and their messages are sent again; a finished job
    becomes running. 409 when the job is cancelled, has no failed video item, or its scope is
    held by another active job (``active_job_id``)."""
    with _conflicts():
        job, retried = app.jobs.retry(job_id)
    return JobActionResponse(job_id=job_id, status=job.status, retried=retried)


def _summary(app: Any, job_id: uuid.UUID) -> dict[str, Any]:
    result: dict[str, Any] = app.jobs.summary(job_id).to_dict()
    return result


def _list_item(job: Job) -> JobListItem:
    return JobListItem.model_validate(job.to_dict())
