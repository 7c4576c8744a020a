"""The job coordinator: durable job state for at-least-once workers.

A job is one ``ReprocessRequest`` run by workers. The database holds the truth (the broker only
carries ids): a job row (scope, request, spec version, trigger, status, plan cursor) and one
item per unit of work: a ``persons`` item per owner (person photo and query embeddings, run by
the planner) and a ``video`` item per video (the scene steps, one message each).

``JobCoordinator`` holds the rules every delivery follows, whatever the broker does:

- planning is resumable: owners are planned in id order and the cursor (last owner fully
  planned) is stored with that owner's items, so a re-delivered planner goes on where it
  stopped; items are inserted idempotently and re-sending one is harmless;
- an item is claimed by incrementing its delivery counter; after ``max_deliveries`` claims
  (a message that keeps killing its worker) it fails as a poison item instead of looping;
- a finished item stores its per-step counts (set, never incremented), so a duplicate delivery
  cannot double them; the job's counts are the sum over its items;
- the job finishes when its last item does, decided in the database under a lock on the job
  row, so two workers finishing the last two items cannot both miss (or both make) the end.
"""

from __future__ import annotations

import logging
import uuid

from scenedex.domain.errors import InvalidRequestError, NotFoundError, PermanentError
from scenedex.domain.jobs import (
    DEFAULT_MAX_DELIVERIES,
    ItemKind,
    ItemStatus,
    Job,
    JobItem,
    JobStatus,
    JobTrigger,
    error_dicts,
    progress_counts,
)
from scenedex.domain.logcontext import log_context
from scenedex.domain.ports import JobEvents, JobStore, MessageProbe, MessageSender
from scenedex.domain.progress import ProgressListener, ReprocessProgress
from scenedex.domain.reprocess import ReprocessRunner
from scenedex.domain.request import ReprocessRequest, ReprocessScope

log = logging.getLogger("scenedex.jobs")


class _NoEvents:
    def item_finished(self, kind: ItemKind, status: ItemStatus, counts: dict[str, dict[str, int]]) -> None:
        pass

    def job_finished(self, job: Job) -> None:
        pass


class JobCoordinator:
    """Creates, plans, runs and resumes jobs on a ``JobStore``, a runner and a sender.

    ``page_size``: video items written and sent per page while planning (one transaction each).
    """

    def __init__(
        self,
        store: JobStore,
        sender: MessageSender,
        runner: ReprocessRunner | None = None,
        *,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        page_size: int = 500,
        events: JobEvents | None = None,
    ) -> None:
        self.events: JobEvents = events or _NoEvents()
        self.store = store
        self.sender = sender
        self._runner = runner
        self.max_deliveries = max_deliveries
        self.page_size = page_size

    @property
    def runner(self) -> ReprocessRunner:
        """The runner items run on; raises ``RuntimeError`` when built for enqueueing only."""
        if self._runner is None:
            raise RuntimeError("this JobCoordinator was built without a runner (enqueue only)")
        return self._runner

    # -- enqueue (API services, CLI, scheduler) -----------------------------------------------

    def enqueue(self, request: ReprocessRequest, spec_version: str, trigger: JobTrigger) -> Job:
        """Create the job and send its planner message; raises ``ActiveJobError``."""
        job = self.store.create(request, spec_version, trigger)
        self.store.set_plan_message_id(job.id, self.sender.send_plan(job.id))
        return job

    # -- planner ------------------------------------------------------------------------------

    def plan(self, job_id: uuid.UUID, *, inline: bool = False) -> None:
        """Write the job's items owner by owner from its cursor and run each owner's person
        steps (its ``persons`` item), then send one message per video item, the owners in turn
        (``JobStore.unsent_video_items``: an ``all`` job interleaves owners instead of draining
        the largest first), then mark it planned. With ``inline`` the video items run here
        instead of being sent (``embed_video``). A scope that no longer exists fails the job
        (permanent). A paused job's planner stops; ``resume`` sends it again."""
        with log_context(job_id=job_id):
            job = self.store.start(job_id)
            if job is None:
                log.info(
                    "job %s is not runnable (finished, cancelled or paused); planner message ignored", job_id
                )
                return
            try:
                scopes = self.runner.resolve(job.request)
            except NotFoundError as error:
                self.store.fail(job_id, str(error))
                return
            for scope in sorted(scopes, key=lambda s: s.owner_id):
                if job.plan_cursor is not None and scope.owner_id <= job.plan_cursor:
                    continue
                if not self._runnable(job_id):
                    log.info("job %s paused or over while planning; planner stops", job_id)
                    return
                self._run_persons_item(job, scope.owner_id)
                videos = [v.id for v in scope.videos]
                for start in range(0, len(videos), self.page_size):
                    page = videos[start : start + self.page_size]
                    self.store.add_items(job_id, [(ItemKind.VIDEO, v, scope.owner_id) for v in page])
                self.store.set_cursor(job_id, scope.owner_id)
            if not inline:
                while page_items := self.store.unsent_video_items(job_id, self.page_size):
                    sent = [
                        (ItemKind.VIDEO, i.subject_id, self.sender.send_video(job_id, i.subject_id))
                        for i in page_items
                    ]
                    self.store.set_message_ids(job_id, sent)
            if (finished := self.store.mark_planned(job_id)) is not None:
                self.events.job_finished(finished)
            if inline:
                for item in self.store.unfinished_items(job_id):
                    if item.kind is ItemKind.VIDEO:
                        self.run_video(job_id, item.subject_id)

    def _runnable(self, job_id: uuid.UUID) -> bool:
        job = self.store.get(job_id)
        return job is not None and job.status.runnable

    def _run_persons_item(self, job: Job, owner_id: uuid.UUID) -> None:
        with log_context(owner_id=owner_id):
            self.store.add_items(job.id, [(ItemKind.PERSONS, owner_id, owner_id)])
            item = self.store.claim_item(job.id, ItemKind.PERSONS, owner_id)
            if item is None:
                return
            progress = ReprocessProgress(self.runner.spec.version)
            self.runner.run_persons(owner_id, progress, force=job.request.force)
            self._finish(job.id, ItemKind.PERSONS, owner_id, progress)

    # -- items --------------------------------------------------------------------------------

    def run_video(
        self, job_id: uuid.UUID, video_id: uuid.UUID, listener: ProgressListener | None = None
    ) -> JobItem | None:
        """Run one video item (scene steps). Returns the claimed item, or None when there was
        nothing to do (job no longer active, item already finished: a duplicate delivery).
        An item claimed more than ``max_deliveries`` times fails as poison without running.
        Transient errors propagate (the broker retries); a vanished video fails its item."""
        with log_context(job_id=job_id, video_id=video_id) as context:
            item = self.store.claim_item(job_id, ItemKind.VIDEO, video_id)
            if item is None:
                log.info(
                    "job %s video %s: nothing to do (finished, cancelled or duplicate)", job_id, video_id
                )
                return None
            context.update(owner_id=item.owner_id)
            if item.deliveries > self.max_deliveries:
                message = (
                    f"poison item: delivered {item.deliveries} times without finishing "
                    f"(limit {self.max_deliveries}); the worker probably crashed on it"
                )
                log.error("job %s video %s: %s", job_id, video_id, message)
                self._finished(
                    ItemKind.VIDEO,
                    ItemStatus.FAILED,
                    {},
                    self.store.finish_item(
                        job_id, ItemKind.VIDEO, video_id, ItemStatus.FAILED, error=message
                    ),
                )
                return item
            job = self.store.get(job_id)
            assert job is not None
            progress = ReprocessProgress(self.runner.spec.version)
            try:
                self.runner.run_video(
                    item.owner_id, video_id, progress, force=job.request.force, listener=listener
                )
            except PermanentError as error:
                self.fail_item(job_id, ItemKind.VIDEO, video_id, str(error))
                return item
            self._finish(job_id, ItemKind.VIDEO, video_id, progress)
            return item

    def fail_item(self, job_id: uuid.UUID, kind: ItemKind, subject_id: uuid.UUID, error: str) -> None:
        """Fail an item for good (permanent error, retries exhausted)."""
        log.error("job %s %s %s failed: %s", job_id, kind.value, subject_id, error)
        job = self.store.finish_item(job_id, kind, subject_id, ItemStatus.FAILED, error=error)
        self._finished(kind, ItemStatus.FAILED, {}, job)

    def hold(
        self,
        job_id: uuid.UUID,
        video_id: uuid.UUID,
        waiting_on: str,
        error: str | None,
        *,
        refund_delivery: bool,
    ) -> None:
        """The video item's message was delayed (a dependency is down, or a retry waits for its
        backoff): the item shows ``waiting`` on ``waiting_on``; ``refund_delivery`` when this
        delivery's claim must not count towards ``max_deliveries``."""
        log.warning("job %s video %s waiting on %s: %s", job_id, video_id, waiting_on, error)
        self.store.hold_item(
            job_id, ItemKind.VIDEO, video_id, waiting_on, error, refund_delivery=refund_delivery
        )

    def _finish(
        self, job_id: uuid.UUID, kind: ItemKind, subject_id: uuid.UUID, progress: ReprocessProgress
    ) -> None:
        status = ItemStatus.SUCCEEDED if progress.ok else ItemStatus.FAILED
        error = None if progress.ok else f"{progress.failed} record(s) failed"
        counts = progress_counts(progress)
        job = self.store.finish_item(
            job_id,
            kind,
            subject_id,
            status,
            counts=counts,
            errors=error_dicts(progress.errors),
            error=error,
        )
        self._finished(kind, status, counts, job)

    def _finished(
        self, kind: ItemKind, status: ItemStatus, counts: dict[str, dict[str, int]], job: Job | None
    ) -> None:
        self.events.item_finished(kind, status, counts)
        if job is not None:
            self._cluster_owners(job)
            self.events.job_finished(job)

    def _cluster_owners(self, job: Job) -> None:
        """FACE_CLUSTERS for the owners of a job that just finished (not cancelled), run by the
        worker that finished it: the owners' suggested persons follow their scene faces. An
        error is logged, not raised (the job is over; the next job or ``scenedex reprocess``
        brings the suggestions up to date)."""
        runner = self._runner
        if runner is None or runner.cluster_step is None or job.status is JobStatus.CANCELLED:
            return
        try:
            if job.request.scope is ReprocessScope.ALL:
                with runner.uow_factory() as uow:
                    owners = uow.list_owner_ids()
            else:
                owners = [scope.owner_id for scope in runner.resolve(job.request)]
            for owner_id in owners:
                runner.run_clusters(owner_id, ReprocessProgress(runner.spec.version), force=job.request.force)
        except Exception:
            log.exception("job %s: suggested persons not updated", job.id)

    # -- recovery -----------------------------------------------------------------------------

    def pause(self, job_id: uuid.UUID) -> Job:
        """Pause a queued or running job: no item starts until ``resume`` (running items
        finish; the messages of the others are dropped as they arrive and ``resume`` sends
        them again). Raises ``NotFoundError`` / ``InvalidRequestError`` (not queued or running)."""
        job = self.store.pause(job_id)
        log.info("job %s paused", job_id)
        return job

    def resume(self, job_id: uuid.UUID, message_exists: MessageProbe) -> tuple[Job, int]:
        """Resume a paused job: it runs again, and the messages it dropped while paused are
        sent again (``resend_lost``). Returns the job and the number of messages sent. Raises
        ``NotFoundError`` / ``InvalidRequestError`` (not paused)."""
        self.store.unpause(job_id)
        log.info("job %s resumed", job_id)
        sent = self.resend_lost(job_id, message_exists)
        job = self.store.get(job_id)
        assert job is not None
        return job, sent

    def resend_lost(self, job_id: uuid.UUID, message_exists: MessageProbe) -> int:
        """Re-send what a running job lost: its planner message if it is not fully planned,
        and every unfinished video item whose message the broker no longer holds (Redis
        flushed or restarted without persistence, or dropped while the job was paused).
        Returns the number of messages sent. Raises ``NotFoundError`` for an unknown job,
        ``InvalidRequestError`` for a finished or paused one."""
        job = self.store.get(job_id)
        if job is None:
            raise NotFoundError(f"job {job_id} not found")
        if not job.status.runnable:
            raise InvalidRequestError(f"job {job_id} is {job.status.value}; nothing to re-send")
        sent = 0
        if job.planned_at is None and not message_exists(job.plan_message_id):
            self.store.set_plan_message_id(job_id, self.sender.send_plan(job_id))
            sent += 1
        resend = [
            item
            for item in self.store.unfinished_items(job_id)
            if item.kind is ItemKind.VIDEO and not message_exists(item.message_id)
        ]
        if resend:
            # Read again: a worker records a held or retried message's new id before it
            # acknowledges the old one, so an id found gone may have been replaced after the
            # first read (seen under load: a held item re-sent as lost). Lost is: the same id
            # still recorded, and still not in the broker.
            now = {(i.kind, i.subject_id): i for i in self.store.unfinished_items(job_id)}
            resend = [
                item
                for item in resend
                if (fresh := now.get((item.kind, item.subject_id))) is not None
                and fresh.message_id == item.message_id
                and not message_exists(fresh.message_id)
            ]
        if resend:
            ids = [
                (ItemKind.VIDEO, i.subject_id, self.sender.send_video(job_id, i.subject_id)) for i in resend
            ]
            self.store.set_message_ids(job_id, ids)
            sent += len(ids)
        if sent:
            log.warning("job %s: re-sent %d lost message(s)", job_id, sent)
        return sent

    def retry_failed(self, job_id: uuid.UUID) -> tuple[Job, int]:
        """Run a job's failed video items again: they go back to queued (a finished job
        becomes running again) and their messages are re-sent. Returns the job and the number
        of messages sent. Failed ``persons`` items are not retried (the next job runs them).
        If sending fails midway, the sweeper re-sends the rest (queued items without a
        message). Raises ``NotFoundError``, ``InvalidRequestError`` (cancelled job, nothing
        failed) and ``ActiveJobError`` (another job now holds the scope)."""
        job, items = self.store.retry_failed(job_id)
        sent = [(ItemKind.VIDEO, i.subject_id, self.sender.send_video(job_id, i.subject_id)) for i in items]
        self.store.set_message_ids(job_id, sent)
        log.info("job %s: retrying %d failed item(s)", job_id, len(sent))
        return job, len(sent)

    def sweep(self, message_exists: MessageProbe) -> dict[uuid.UUID, int]:
        """``resend_lost`` of every runnable job (paused ones are left alone); messages re-sent
        per job (jobs with none left out)."""
        resent = {}
        for job in self.store.active_jobs():
            if not job.status.runnable:
                continue
            try:
                with log_context(job_id=job.id):
                    count = self.resend_lost(job.id, message_exists)
            except (NotFoundError, InvalidRequestError):
                continue  # finished meanwhile
            if count:
                resent[job.id] = count
        return resent
