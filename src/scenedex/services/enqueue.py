"""The enqueue use case: the one code path by which the CLI (``scenedex reprocess --enqueue``),
the admin API (``POST /v1/admin/reprocess-embeddings``), the owner API (``POST
/v1/videos/{id}/embed``) and the scheduler put work on the queue.

Each call resolves the request's scope first, so an unknown video or owner (or another owner's
video) is a ``NotFoundError`` before anything is written or sent, then creates the job (or
refuses it) and sends its message. The request itself is validated when it is built
(``ReprocessRequest.parse``, ``ReprocessBody.to_request``: ``InvalidRequestError``).

Python services call these with the parts the composition root builds::

    services = build_services(settings)
    runtime = build_runtime(settings, services)
    enqueue_reprocess(request, runner=services.runner(), coordinator=runtime.coordinator,
                      trigger=JobTrigger.API)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from scenedex.domain.coordinator import JobCoordinator
from scenedex.domain.jobs import Job, JobTrigger
from scenedex.domain.reprocess import ReprocessRunner
from scenedex.domain.request import ReprocessRequest, ReprocessScope

EmbedSender = Callable[[uuid.UUID, uuid.UUID], str]
"""Sends ``embed_video(video_id, owner_id)``; returns the message id."""


@dataclass(frozen=True)
class EnqueuedJob:
    """A job just created, queued, with its planner message sent; ``video_count``: the videos
    its scope covered when it was created."""

    job: Job
    video_count: int


def enqueue_reprocess(
    request: ReprocessRequest,
    *,
    runner: ReprocessRunner,
    coordinator: JobCoordinator,
    trigger: JobTrigger,
) -> EnqueuedJob:
    """Resolve ``request``'s scope with ``runner``, create a queued job under ``runner``'s spec
    version and send its planner message through ``coordinator``.

    Raises ``NotFoundError`` for an unknown video or owner (nothing is created),
    ``ActiveJobError`` (with ``active_job_id``) when the scope already has a queued or running
    job, and the broker's or database's errors when they are unreachable.
    """
    video_count = scope_video_count(request, runner=runner)
    job = coordinator.enqueue(request, runner.spec.version, trigger)
    return EnqueuedJob(job, video_count)


def scope_video_count(request: ReprocessRequest, *, runner: ReprocessRunner) -> int:
    """The videos ``request``'s scope covers now: the ``video_count`` that ``enqueue_reprocess``
    reports, computed without creating a job (the admin console's confirmation shows it).
    Raises ``NotFoundError`` for an unknown video or owner."""
    return sum(len(scope.videos) for scope in runner.resolve(request))


def enqueue_embed_video(
    video_id: uuid.UUID, owner_id: uuid.UUID, *, runner: ReprocessRunner, send: EmbedSender
) -> str:
    """Check that ``owner_id`` owns ``video_id`` and send ``embed_video`` for it (the worker
    creates and runs a video-scope job, trigger ``ingest``); returns the message id.

    Raises ``NotFoundError`` when the video does not exist or is another owner's (nothing is
    sent), and the broker's errors when it is unreachable.
    """
    runner.resolve(ReprocessRequest(ReprocessScope.VIDEO, video_id=video_id, owner_id=owner_id))
    return send(video_id, owner_id)
