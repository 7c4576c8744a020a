"""Reprocess use cases: the dry-run plan of a scope, a job for it, and the owner's reprocess after
a change (a person, a face decision), for the admin API, the console, the CLI, the scheduler and
the actors alike (``enqueue_reprocess``, ``reprocess_owner``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Protocol

from scenedex.domain.coordinator import JobCoordinator
from scenedex.domain.jobs import JobTrigger
from scenedex.domain.progress import ProgressListener, ReprocessPlan, ReprocessProgress
from scenedex.domain.reprocess import ReprocessRunner
from scenedex.domain.request import ReprocessRequest
from scenedex.services.enqueue import EnqueuedJob, enqueue_reprocess, scope_video_count
from scenedex.services.persons import FollowUp, Reprocessing, reprocess_owner


class RefreshSender(Protocol):
    """What ``after_change`` needs of the sender: the delayed ``refresh_owner`` message."""

    def send_refresh_owner(self, owner_id: uuid.UUID, trigger: JobTrigger = JobTrigger.API) -> str: ...


class Reprocess:
    """Plans and jobs on a runner (built per call: ``runner``) and the job coordinator and sender
    of the process's runtime (built on first use: ``coordinator``, ``sender``)."""

    def __init__(
        self,
        runner: Callable[[], ReprocessRunner],
        coordinator: Callable[[], JobCoordinator],
        sender: Callable[[], RefreshSender],
    ) -> None:
        self._runner = runner
        self._coordinator = coordinator
        self._sender = sender

    def runner(self) -> ReprocessRunner:
        """The runner of this process's spec (inline runs, the dry run's scope checks)."""
        return self._runner()

    def plan(self, request: ReprocessRequest) -> ReprocessPlan:
        """What a run of ``request`` would compute, read from the rows only (the dry run)."""
        return self._runner().plan(request)

    def run(self, request: ReprocessRequest, listener: ProgressListener | None = None) -> ReprocessProgress:
        """Run ``request`` here, inline (``scenedex reprocess``), telling ``listener`` how it goes."""
        return self._runner().run(request, listener=listener)

    def video_count(self, request: ReprocessRequest) -> int:
        """The videos ``request``'s scope covers now (``NotFoundError`` for an unknown one)."""
        return scope_video_count(request, runner=self._runner())

    def enqueue(self, request: ReprocessRequest, trigger: JobTrigger) -> EnqueuedJob:
        """A queued job for ``request`` with its planner message sent (``enqueue_reprocess``)."""
        runner, coordinator = self._runner(), self._coordinator()
        return enqueue_reprocess(request, runner=runner, coordinator=coordinator, trigger=trigger)

    def after_change(
        self, owner_id: uuid.UUID, trigger: JobTrigger, follow_up: FollowUp | None = None
    ) -> Reprocessing | None:
        """The owner's reprocess for a change already stored (``reprocess_owner``); while the
        owner's job runs, ``follow_up`` (default: a delayed ``refresh_owner`` message under
        ``trigger``) enqueues it again once that job is over."""
        return reprocess_owner(
            owner_id,
            runner=self._runner(),
            coordinator=self._coordinator(),
            trigger=trigger,
            follow_up=follow_up or (lambda owner: self._sender().send_refresh_owner(owner, trigger)),
        )
