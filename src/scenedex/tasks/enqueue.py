"""Enqueue helpers for API services, the CLI and the scheduler: one code path for all of them.

Needs the database (job rows) and Redis (messages) and loads no model weights. Without a
``spec_version`` the first call computes the spec from the configured model ids, which imports
open_clip and torch for CLIP's preprocessing description (a few seconds, once per process);
callers that know the version pass it.
"""

from __future__ import annotations

import uuid
from functools import cache

from scenedex.domain.jobs import Job, JobTrigger
from scenedex.domain.request import ReprocessRequest
from scenedex.tasks import runtime


@cache
def _spec_version() -> str:
    """The latest spec version for the configured models (model ids, no weights loaded), from
    this process's services when it has them."""
    from scenedex.worker.bootstrap import bootstrap

    current = runtime.current(with_models=False)
    return (current.services or bootstrap(current.settings)).spec.version


def enqueue_reprocess(
    request: ReprocessRequest, *, trigger: JobTrigger = JobTrigger.API, spec_version: str | None = None
) -> Job:
    """Create a queued job for ``request`` and send its planner message; returns the job.

    Raises ``ActiveJobError`` (with ``active_job_id``) when the same scope already has a queued
    or running job. Unknown videos or owners are found by the planner (the job then fails);
    callers that want a 404 up front check with ``ReprocessRunner.resolve`` first.
    """
    coordinator = runtime.current(with_models=False).coordinator
    return coordinator.enqueue(request, spec_version or _spec_version(), trigger)


def enqueue_embed_video(video_id: uuid.UUID, owner_id: uuid.UUID) -> str:
    """Send ``embed_video`` for a newly ingested video; returns the message id."""
    from scenedex.tasks.actors import embed_video

    return str(embed_video.send(str(video_id), str(owner_id)).message_id)
