"""Request and response bodies of the API (pydantic), with the examples shown in OpenAPI.

Request bodies forbid unknown fields. Response models mirror the dictionaries the domain
already produces (``JobSummary.to_dict``, ``ReprocessPlan.to_dict``, ``SearchHit.to_dict``), so
the API and the CLI's ``--json`` outputs have one shape.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from scenedex.domain.jobs import JobStatus, JobTrigger
from scenedex.domain.request import ReprocessRequest, ReprocessScope

_OWNER = "7f0c2d7e-3c1a-4f43-9d55-0b7a4b1e2a10"
_VIDEO = "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"
_JOB = "c56a4180-65aa-42ec-a945-5fd21dec0538"
_SPEC = "2026-11-01+3f2a9c1d7e"


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(examples)})


class ReprocessBody(BaseModel):
    """What to reprocess. ``video`` scope needs ``video_id`` (``owner_id`` optional, checked
    when given), ``owner`` needs ``owner_id``, ``all`` takes neither. ``since`` keeps videos
    updated at or after it (no timezone: UTC). ``dry_run`` answers with the plan instead of
    enqueuing."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"scope": "all"},
                {"scope": "owner", "owner_id": _OWNER, "force": False},
                {"scope": "video", "video_id": _VIDEO, "dry_run": True},
                {"scope": "all", "since": "2026-11-01T00:00:00Z"},
            ]
        },
    )

    scope: ReprocessScope
    video_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = None
    force: bool = Field(False, description="recompute current records too")
    since: datetime | None = Field(None, description="only videos updated at or after this time")
    dry_run: bool = Field(False, description="return the plan (missing / stale / current), enqueue nothing")

    def to_request(self) -> ReprocessRequest:
        """The domain request; raises ``InvalidRequestError`` for a scope without its id."""
        since = self.since
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return ReprocessRequest(
            scope=self.scope, video_id=self.video_id, owner_id=self.owner_id, force=self.force, since=since
        )


class EnqueueResponse(BaseModel):
    model_config = _examples(
        {
            "job_id": _JOB,
            "status": "queued",
            "spec_version": _SPEC,
            "scope": "all",
            "video_count": 1250,
            "message": f"reprocess of all queued: 1250 video(s); progress at /v1/admin/reprocess-jobs/{_JOB}",
        }
    )

    job_id: uuid.UUID
    status: Literal["queued"] = "queued"
    spec_version: str
    scope: ReprocessScope
    video_count: int = Field(description="videos the scope covers now (the planner lists them again)")
    message: str


class StepPlan(BaseModel):
    step: str
    missing: int
    stale: int
    stale_by_reason: dict[str, int]
    current: int


class PlanResponse(BaseModel):
    """``dry_run``: per step, how many records are missing, stale (by reason) or current."""

    model_config = _examples(
        {
            "spec_version": _SPEC,
            "owners": 1,
            "videos": 3,
            "scenes": 9,
            "steps": [
                {
                    "step": "scene_clip_embeddings",
                    "missing": 2,
                    "stale": 7,
                    "stale_by_reason": {"fingerprint": 7},
                    "current": 0,
                }
            ],
        }
    )

    spec_version: str
    owners: int
    videos: int
    scenes: int
    steps: list[StepPlan]


class StepCounts(BaseModel):
    planned: int = 0
    computed: int = 0
    skipped: int = 0
    failed: int = 0


class ItemCounts(BaseModel):
    total: int
    done: int
    failed: int
    by_status: dict[str, int]


class FailedItem(BaseModel):
    kind: str
    subject_id: uuid.UUID
    error: str | None
    deliveries: int
    errors: list[dict[str, Any]]


class JobResponse(BaseModel):
    """A job's progress (``JobSummary.to_dict``): items by status, per-step counts summed over
    finished items, throughput (items/s), ETA (seconds; null until an item finished or once the
    job is over) and up to 100 failed items with their errors."""

    model_config = _examples(
        {
            "job_id": _JOB,
            "status": "running",
            "scope": "all",
            "owner_id": None,
            "video_id": None,
            "force": False,
            "since": None,
            "trigger": "api",
            "spec_version": _SPEC,
            "created_at": "2026-11-02T03:00:00+00:00",
            "started_at": "2026-11-02T03:00:01+00:00",
            "finished_at": None,
            "planned": True,
            "error": None,
            "items": {"total": 4, "done": 2, "failed": 0, "by_status": {"succeeded": 2, "queued": 2}},
            "steps": {"scene_clip_embeddings": {"planned": 6, "computed": 6, "skipped": 0, "failed": 0}},
            "items_per_s": 0.5,
            "eta_s": 4.0,
            "failed_items": [],
        }
    )

    job_id: uuid.UUID
    status: JobStatus
    scope: ReprocessScope
    owner_id: uuid.UUID | None
    video_id: uuid.UUID | None
    force: bool
    since: datetime | None
    trigger: JobTrigger
    spec_version: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    planned: bool
    error: str | None
    items: ItemCounts
    steps: dict[str, StepCounts]
    items_per_s: float | None
    eta_s: float | None
    failed_items: list[FailedItem]


class JobListItem(BaseModel):
    job_id: uuid.UUID
    status: JobStatus
    scope: ReprocessScope
    owner_id: uuid.UUID | None
    video_id: uuid.UUID | None
    force: bool
    trigger: JobTrigger
    spec_version: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobListResponse(BaseModel):
    model_config = _examples(
        {
            "jobs": [
                {
                    "job_id": _JOB,
                    "status": "succeeded",
                    "scope": "all",
                    "owner_id": None,
                    "video_id": None,
                    "force": False,
                    "trigger": "scheduler",
                    "spec_version": _SPEC,
                    "created_at": "2026-11-02T03:00:00+00:00",
                    "started_at": "2026-11-02T03:00:01+00:00",
                    "finished_at": "2026-11-02T03:41:10+00:00",
                }
            ]
        }
    )

    jobs: list[JobListItem]


class JobActionResponse(BaseModel):
    """The outcome of resume (``resent``: messages re-sent) or retry-failed (``retried``)."""

    model_config = _examples({"job_id": _JOB, "status": "running", "resent": 0, "retried": 3})

    job_id: uuid.UUID
    status: JobStatus
    resent: int | None = None
    retried: int | None = None


class EmbedResponse(BaseModel):
    model_config = _examples(
        {"video_id": _VIDEO, "owner_id": _OWNER, "status": "queued", "message_id": "7d3c..."}
    )

    video_id: uuid.UUID
    owner_id: uuid.UUID
    status: Literal["queued"] = "queued"
    message_id: str


class SearchResult(BaseModel):
    scene_id: uuid.UUID
    video_id: uuid.UUID
    score: float = Field(description="cosine similarity in [-1, 1], higher is nearer")
    start_s: float
    end_s: float
    persons: list[uuid.UUID]


class SearchResponse(BaseModel):
    """Best first; the same shape as ``scenedex search --json``."""

    model_config = _examples(
        {
            "results": [
                {
                    "scene_id": "0d1f7a36-9b0e-4f5b-8d7e-6b2f0a9c1e11",
                    "video_id": _VIDEO,
                    "score": 0.612345,
                    "start_s": 12.4,
                    "end_s": 18.0,
                    "persons": [],
                }
            ]
        }
    )

    results: list[SearchResult]


class ReadyResponse(BaseModel):
    model_config = _examples(
        {"status": "ready", "checks": {"database": "ok", "redis": "ok", "search_index": "ok"}}
    )

    status: Literal["ready"] = "ready"
    checks: dict[str, str]


class ErrorResponse(BaseModel):
    """Every error: ``detail`` is a message (a list of field errors for invalid requests)."""

    model_config = _examples({"detail": "job c56a4180-... not found"})

    detail: Any


class ConflictResponse(BaseModel):
    """409: the scope already has an active job (``active_job_id``), or the job's state does
    not allow the action."""

    model_config = _examples(
        {"detail": f"job {_JOB} is already running for scope all", "active_job_id": _JOB}
    )

    detail: str
    active_job_id: uuid.UUID | None = None


class NotReadyResponse(BaseModel):
    model_config = _examples(
        {
            "detail": "not ready: redis",
            "checks": {"database": "ok", "redis": "error: Connection refused", "search_index": "ok"},
        }
    )

    detail: str
    checks: dict[str, str]
