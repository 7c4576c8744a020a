"""Request and response bodies of the API (pydantic), with the examples shown in OpenAPI.

Request bodies forbid unknown fields. Response models mirror the dictionaries the domain
already produces (``JobSummary.to_dict``, ``ReprocessPlan.to_dict``), so the API and the CLI's
``--json`` outputs have one shape. The search models live beside their routes
(``routes.search``, ``SceneResult.to_dict``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from scenedex.api.problems import Problem as Problem
from scenedex.domain.jobs import JobStatus, JobTrigger
from scenedex.domain.request import ReprocessRequest, ReprocessScope

_OWNER = "7f0c2d7e-3c1a-4f43-9d55-0b7a4b1e2a10"
_VIDEO = "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"
_JOB = "c56a4180-65aa-42ec-a945-5fd21dec0538"
_SPEC = "2026-11-01+3f2a9c1d7e"


def openapi_examples(*examples: dict[str, Any]) -> ConfigDict:
    """A model's ``model_config`` with its examples for the OpenAPI document."""
    return ConfigDict(json_schema_extra={"examples": list(examples)})


class _ReprocessOptions(BaseModel):
    """The options every scope takes; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    force: bool = Field(False, description="recompute current records too")
    since: datetime | None = Field(
        None, description="only videos updated at or after this time (no timezone: UTC)"
    )
    dry_run: bool = Field(False, description="return the plan (missing / stale / current), enqueue nothing")

    def _request(
        self, scope: str, video_id: uuid.UUID | None, owner_id: uuid.UUID | None
    ) -> ReprocessRequest:
        """The domain request (``InvalidRequestError`` for a scope without its id)."""
        return ReprocessRequest(
            scope=ReprocessScope(scope),
            video_id=video_id,
            owner_id=owner_id,
            force=self.force,
            since=None if self.since is None else _utc(self.since),
        )


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC (no timezone: taken as UTC), clamped to the years 1..9999 that Python and
    the database read back: ``0001-01-01T00:00:00+05:00`` is before every video, not an error."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        edge = datetime.min if moment.year == datetime.min.year else datetime.max
        return edge.replace(tzinfo=UTC)


class ReprocessVideoBody(_ReprocessOptions):
    """``scope: video``: one video (``video_id``); ``owner_id``, when given, must own it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"scope": "video", "video_id": _VIDEO, "dry_run": True}]},
    )

    scope: Literal["video"]
    video_id: uuid.UUID
    owner_id: uuid.UUID | None = Field(None, description="checked when given: 404 unless it owns the video")

    def to_request(self) -> ReprocessRequest:
        return self._request(self.scope, self.video_id, self.owner_id)


class ReprocessOwnerBody(_ReprocessOptions):
    """``scope: owner``: every video of one owner (``owner_id``); no ``video_id``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"scope": "owner", "owner_id": _OWNER, "force": False}]},
    )

    scope: Literal["owner"]
    owner_id: uuid.UUID
    video_id: None = Field(None, description="not taken by this scope (null or absent)")

    def to_request(self) -> ReprocessRequest:
        return self._request(self.scope, None, self.owner_id)


class ReprocessAllBody(_ReprocessOptions):
    """``scope: all``: every video of every owner; neither id."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"scope": "all"}, {"scope": "all", "since": "2026-11-01T00:00:00Z"}]},
    )

    scope: Literal["all"]
    video_id: None = Field(None, description="not taken by this scope (null or absent)")
    owner_id: None = Field(None, description="not taken by this scope (null or absent)")

    def to_request(self) -> ReprocessRequest:
        return self._request(self.scope, None, None)


ReprocessVariant = Annotated[
    ReprocessVideoBody | ReprocessOwnerBody | ReprocessAllBody, Field(discriminator="scope")
]


class ReprocessBody(RootModel[ReprocessVariant]):
    """What to reprocess, one shape per ``scope`` (a discriminated union): ``video`` needs
    ``video_id`` (``owner_id`` optional, checked when given), ``owner`` needs ``owner_id`` and
    takes no ``video_id``, ``all`` takes neither. ``since`` keeps videos updated at or after it
    (no timezone: UTC). ``dry_run`` answers with the plan instead of enqueuing."""

    model_config = openapi_examples(
        {"scope": "all"},
        {"scope": "owner", "owner_id": _OWNER, "force": False},
        {"scope": "video", "video_id": _VIDEO, "dry_run": True},
        {"scope": "all", "since": "2026-11-01T00:00:00Z"},
    )

    @property
    def dry_run(self) -> bool:
        return self.root.dry_run

    def to_request(self) -> ReprocessRequest:
        """The domain request of the chosen variant."""
        return self.root.to_request()


class ReprocessFields(_ReprocessOptions):
    """The flat shape of every scope's fields, unchecked against the scope: the admin route
    parses with it first so that ids that do not fit the scope get the domain's one-line 422
    message (``ReprocessRequest``) instead of the union's field errors. Not an API schema."""

    scope: ReprocessScope
    video_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = None

    def to_request(self) -> ReprocessRequest:
        return self._request(self.scope, self.video_id, self.owner_id)


class EnqueueResponse(BaseModel):
    model_config = openapi_examples(
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

    model_config = openapi_examples(
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


class WaitingItems(BaseModel):
    """Items of a job held on one dependency (or waiting for a retry): how many, since when
    (the oldest), the last error."""

    waiting_on: str = Field(description="embedding, opensearch, database, blobs, redis, or retry")
    items: int
    since: datetime
    error: str | None


class JobResponse(BaseModel):
    """A job's progress (``JobSummary.to_dict``): items by status, per-step counts summed over
    finished items, throughput (items/s), ETA (seconds; null until an item finished or once the
    job is over), up to 100 failed items with their errors, and the items ``waiting`` grouped
    by what they wait on (a dependency whose circuit breaker is open, or ``retry``)."""

    model_config = openapi_examples(
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
            "items": {"total": 4, "done": 2, "failed": 0, "by_status": {"succeeded": 2, "waiting": 2}},
            "steps": {"scene_clip_embeddings": {"planned": 6, "computed": 6, "skipped": 0, "failed": 0}},
            "items_per_s": 0.5,
            "eta_s": 4.0,
            "failed_items": [],
            "waiting": [
                {
                    "waiting_on": "embedding",
                    "items": 2,
                    "since": "2026-11-02T03:00:03+00:00",
                    "error": "embedding service POST /v1/embed/image-batch failed after 5 attempts",
                }
            ],
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
    waiting: list[WaitingItems]


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
    model_config = openapi_examples(
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
            ],
            "limit": 20,
            "next_cursor": None,
        }
    )

    jobs: list[JobListItem]
    limit: int
    next_cursor: str | None = Field(
        description="send it as cursor for the next page (null: this is the last)"
    )


class JobActionResponse(BaseModel):
    """The outcome of resume or resend (``resent``: messages re-sent) or retry-failed
    (``retried``: items queued again)."""

    model_config = openapi_examples({"job_id": _JOB, "status": "running", "resent": 0, "retried": 3})

    job_id: uuid.UUID
    status: JobStatus
    resent: int | None = None
    retried: int | None = None


class EmbedResponse(BaseModel):
    model_config = openapi_examples(
        {"video_id": _VIDEO, "owner_id": _OWNER, "status": "queued", "message_id": "7d3c..."}
    )

    video_id: uuid.UUID
    owner_id: uuid.UUID
    status: Literal["queued"] = "queued"
    message_id: str


class HealthResponse(BaseModel):
    model_config = openapi_examples({"status": "ok"})

    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    model_config = openapi_examples(
        {"status": "ready", "checks": {"database": "ok", "redis": "ok", "search_index": "ok"}}
    )

    status: Literal["ready"] = "ready"
    checks: dict[str, str]


Responses = dict[int | str, dict[str, Any]]
"""The ``responses`` of a router or route (status: model and description)."""

COMMON_ERRORS: Responses = {
    400: {"model": Problem, "description": "malformed request (a Content-Length that is not a number)"},
    401: {"model": Problem, "description": "missing, expired or badly signed token"},
    422: {"model": Problem, "description": "invalid body or parameters"},
}
"""The errors every route behind a token can answer (its router's ``responses``; a route
that says more about its 422 declares its own)."""
JSON_BODY_ERRORS: Responses = {
    400: {"model": Problem, "description": "the body is not UTF-8 text"},
    413: {"model": Problem, "description": "body over SCENEDEX_API__MAX_BODY_BYTES"},
}
"""The errors of a route with a JSON body (FastAPI's 400, ``BodySizeLimit``'s 413)."""
KIND_UNAVAILABLE: Responses = {
    409: {
        "model": Problem,
        "description": "this search kind is unavailable: its model is switched off (SCENEDEX_EMBEDDER__CLIP, "
        "__TEXT or __FACES=off)",
    }
}
"""The refusal of a search whose model is switched off (``KindUnavailableError``)."""
