"""The Dramatiq actors. Messages carry ids only; the database holds everything else.

Delivery is at least once, so every actor is safe to run twice or to die half way: job state
transitions are conditional updates, records are idempotent upserts, current records are
skipped, and item counts are set rather than incremented (see ``domain.jobs``).

Every line logged while an actor runs carries its ``job_id``, ``video_id``, ``owner_id`` and the
worker's ``spec_version`` (``scenedex.domain.logcontext``; the coordinator and runner add the rest).

The actors are declared on dramatiq's global broker when this module is first imported, so the
broker must be installed before (``tasks.queue.task_broker`` does that; ``worker.dramatiq_app``
calls it). Each actor finds its process's runtime through its broker's middleware
(``tasks.runtime.job_runtime``), never through a module global.

Options, on purpose:

- Every work actor runs through ``tasks.holds.run_guarded``: while a dependency's circuit
  breaker is open the message is held (delayed again, no retry or delivery spent, the item
  ``waiting`` on the dependency), so an outage pauses the work instead of failing it.
- Priorities (dramatiq's ``priority``: a worker runs the lowest number first among the messages
  it has fetched): new uploads (``embed_video``, ``ingest_video``, ``delete_video``, queue
  ``embeddings``) are ``0``, backfill (``reprocess_embeddings``, ``reprocess_video``, queue
  ``reprocessing``) ``10``, so a worker busy with a backfill takes an upload next (it waits for
  at most the items already running).
- ``reprocess_video`` / ``embed_video`` / ``ingest_video`` / ``delete_video``: ``max_retries=3``
  with exponential backoff from 5 s to 5 min for transient errors that are not outages
  (``SCENEDEX_WORKER__ITEM_RETRIES``, ``__MIN_BACKOFF_MS``, ``__MAX_BACKOFF_MS``; applied by
  ``configure_retries``); ``throws=(PermanentError,)``: bad input, unknown ids and model load
  errors are not retried (item failures are recorded on the item, not raised); ``time_limit``
  1 h (a 1000-scene video takes minutes on CPU). On the last retry the item (for
  ``ingest_video``: the video) is failed with the error instead of being dead-lettered, unless
  the error is a dependency's outage, which is held instead (``tasks.holds``). A worker
  killed mid-message is not a retry: the broker re-queues the message (see ``WorkerSettings``)
  and the item's delivery counter fails it as poison after ``max_deliveries``.
- ``reprocess_embeddings`` (planner): ``max_retries=5``; resumable from its cursor.
- ``refresh_owner``: delayed, retried with backoff (10 s to 10 min, 20 times) while the owner's
  job runs; such a retry is expected (``OwnerBusyRetry``, a dramatiq ``Retry``): logged at INFO
  without a traceback.
- ``sweep_jobs``: no retries; the next sweep runs anyway.
- ``deliver_webhook`` (queue ``webhooks``, priority 100: after uploads and backfill among a
  worker's fetched messages): one attempt of one delivery, ``max_retries=0``: the delivery row
  holds the retry schedule, and the workers' dispatcher sends the next message when it is due
  (or when this one is lost: its lease runs out), with the same ``webhook-id``.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from scenedex.domain.errors import PermanentError
from scenedex.domain.jobs import ItemKind, JobTrigger
from scenedex.domain.logcontext import log_context
from scenedex.domain.request import parse_uuid
from scenedex.tasks.holds import HeldItem, dependency_of, run_guarded
from scenedex.tasks.messaging import PendingMessageIds, broker_message_id
from scenedex.tasks.runtime import job_application, job_runtime

if TYPE_CHECKING:
    from scenedex.application import JobRuntime
    from scenedex.settings import WorkerSettings

if dramatiq.broker.global_broker is None:  # dramatiq would fall back to a RabbitMQ broker
    raise RuntimeError("install the broker before declaring the actors (scenedex.tasks.queue.task_broker)")

log = logging.getLogger("scenedex.worker")

EMBEDDINGS_QUEUE = "embeddings"
REPROCESSING_QUEUE = "reprocessing"
WEBHOOKS_QUEUE = "webhooks"
UPLOAD_PRIORITY = 0
BACKFILL_PRIORITY = 10
WEBHOOK_PRIORITY = 100
"""dramatiq priorities (lower runs first among a worker's fetched messages)."""
_ITEM_OPTIONS: dict[str, Any] = {
    "max_retries": 3,
    "min_backoff": 5_000,
    "max_backoff": 300_000,
    "time_limit": 3_600_000,
    "throws": (PermanentError,),
}


def _uuid(value: str, what: str) -> uuid.UUID:
    parsed = parse_uuid(value, what)
    assert parsed is not None
    return parsed


def _spec_version(rt: JobRuntime) -> str | None:
    """The spec the worker computes under (for the log context)."""
    return rt.services.spec.version if rt.services is not None else None


def _retries(actor: Any) -> int:
    return int(actor.options.get("max_retries", 0))


def _last_attempt(actor: Any) -> bool:
    message = CurrentMessage.get_current_message()
    return message is not None and message.options.get("retries", 0) >= _retries(actor)


def configure_retries(settings: WorkerSettings) -> None:
    """Apply ``SCENEDEX_WORKER__ITEM_RETRIES`` / ``__MIN_BACKOFF_MS`` / ``__MAX_BACKOFF_MS`` to
    the item actors (dramatiq's ``Retries`` reads them from the actor's options)."""
    for actor in (reprocess_video, embed_video, ingest_video, delete_video):
        actor.options.update(
            max_retries=settings.item_retries,
            min_backoff=settings.min_backoff_ms,
            max_backoff=settings.max_backoff_ms,
        )


@dramatiq.actor(
    queue_name=REPROCESSING_QUEUE,
    priority=BACKFILL_PRIORITY,
    max_retries=5,
    time_limit=3_600_000,
    throws=(PermanentError,),
)
def reprocess_embeddings(job_id: str) -> None:
    """Plan job ``job_id``: persons items inline, one ``reprocess_video`` message per video."""
    rt = job_runtime(reprocess_embeddings.broker)
    with log_context(job_id=job_id, spec_version=_spec_version(rt)):
        run_guarded(rt, reprocess_embeddings, lambda _: rt.coordinator.plan(_uuid(job_id, "job id")))


@dramatiq.actor(queue_name=REPROCESSING_QUEUE, priority=BACKFILL_PRIORITY, **_ITEM_OPTIONS)
def reprocess_video(job_id: str, video_id: str) -> None:
    """Run the scene steps of one video item of job ``job_id`` (held while a dependency is down)."""
    rt = job_runtime(reprocess_video.broker)
    item = HeldItem(_uuid(job_id, "job id"), _uuid(video_id, "video id"))
    with log_context(job_id=job_id, video_id=video_id, spec_version=_spec_version(rt)):
        run_guarded(rt, reprocess_video, lambda held: _run_video_item(rt, held), item)


@dramatiq.actor(queue_name=EMBEDDINGS_QUEUE, priority=UPLOAD_PRIORITY, **_ITEM_OPTIONS)
def embed_video(video_id: str, owner_id: str) -> None:
    """A newly ingested video: a video-scope job (trigger ``ingest``) planned and run here,
    the same code path as ``scenedex reprocess --scope video``. If a job for this video is
    already active it covers the video, and this message does nothing (a video created over
    HTTP waiting for its embed, ``embedding``, retries instead: the active job may have read
    its scenes before a text change). A video ``embedding`` becomes ``ready`` when the job ends."""
    rt, app = job_runtime(embed_video.broker), job_application(embed_video.broker)

    def embed(held: HeldItem) -> None:
        video = _uuid(video_id, "video id")
        app.videos.run_embed(_uuid(owner_id, "owner id"), video, _holding(held, video))

    with log_context(video_id=video_id, owner_id=owner_id, spec_version=_spec_version(rt)):
        run_guarded(rt, embed_video, embed)


@dramatiq.actor(queue_name=EMBEDDINGS_QUEUE, priority=UPLOAD_PRIORITY, **_ITEM_OPTIONS)
def ingest_video(video_id: str) -> None:
    """A video created over HTTP: fetch its source from the blob store (or download its
    allow-listed URL through the SSRF guard; a timeout or 5xx is retried), cut it (the caller's
    scenes, or scene detection), write keyframes and scenes (``services.videos``), then embed
    it as ``embed_video`` does. Safe twice; an unreadable source fails the video, not the
    message. When the retries of a transient error run out, the video is failed."""
    rt, app = job_runtime(ingest_video.broker), job_application(ingest_video.broker)
    video_uuid = _uuid(video_id, "video id")

    def ingest(held: HeldItem) -> None:
        try:
            video = app.videos.ingest(video_uuid)
        except Exception as error:
            if _last_attempt(ingest_video) and dependency_of(error) is None:
                app.videos.fail_ingest(video_uuid, f"gave up after {_retries(ingest_video)} retries: {error}")
            raise
        if video is not None:
            app.videos.run_embed(video.owner_id, video.id, _holding(held, video.id))

    with log_context(video_id=video_id, spec_version=_spec_version(rt)):
        run_guarded(rt, ingest_video, ingest)


@dramatiq.actor(queue_name=EMBEDDINGS_QUEUE, priority=UPLOAD_PRIORITY, **_ITEM_OPTIONS)
def delete_video(video_id: str, owner_id: str) -> None:
    """Remove a video everywhere (``services.videos.delete_video``: search documents, rows,
    blobs). Idempotent: a second delivery finds nothing left."""
    rt, app = job_runtime(delete_video.broker), job_application(delete_video.broker)

    def remove(_: HeldItem) -> None:
        done = app.videos.delete(_uuid(owner_id, "owner id"), _uuid(video_id, "video id"))
        log.info("video %s deleted: %d scenes, %d blobs", video_id, done.scenes, done.blobs)

    with log_context(video_id=video_id, owner_id=owner_id, spec_version=_spec_version(rt)):
        run_guarded(rt, delete_video, remove)


def _holding(held: HeldItem, video_id: uuid.UUID) -> Any:
    """What the embed step tells the actor once it knows the video's job: the held item."""

    def on_job(job_id: uuid.UUID) -> None:
        held.job_id, held.video_id = job_id, video_id

    return on_job


@dramatiq.actor(queue_name=REPROCESSING_QUEUE, priority=BACKFILL_PRIORITY, max_retries=0, time_limit=300_000)
def sweep_jobs() -> None:
    """Write the message ids kept in Redis during a database outage, then re-send the lost
    messages of every running job (see ``JobCoordinator.sweep``)."""
    rt = job_runtime(sweep_jobs.broker)
    client = getattr(sweep_jobs.broker, "client", None)
    if client is not None:
        PendingMessageIds(client).flush(rt.coordinator.store)
    rt.coordinator.sweep(rt.probe)


@dramatiq.actor(queue_name=WEBHOOKS_QUEUE, priority=WEBHOOK_PRIORITY, max_retries=0, time_limit=120_000)
def deliver_webhook(delivery_id: str) -> None:
    """One attempt of webhook delivery ``delivery_id`` (``services.webhooks.Webhooks.deliver``)."""
    app = job_application(deliver_webhook.broker)
    outcome = app.webhooks.deliver(_uuid(delivery_id, "delivery id"))
    log.debug("webhook delivery %s: %s", delivery_id, outcome)


REFRESH_DELAY_MS = 10_000
"""How long a ``refresh_owner`` message waits before its first attempt (milliseconds)."""


class OwnerBusyRetry(dramatiq.Retry):
    """``refresh_owner`` waits for the owner's running job: an expected retry. dramatiq logs no
    error for a ``Retry``; its Retries middleware schedules it with the actor's backoff and logs
    "Retrying message ..." at INFO, then "Retries exceeded ..." at WARNING past ``max_retries``,
    neither with a traceback."""


@dramatiq.actor(
    queue_name=REPROCESSING_QUEUE,
    priority=BACKFILL_PRIORITY,
    max_retries=20,
    min_backoff=10_000,
    max_backoff=600_000,
    time_limit=60_000,
    throws=(PermanentError,),
)
def refresh_owner(owner_id: str, trigger: str) -> None:
    """A person change made while the owner's job was running (which may have run its person
    steps already): enqueue the owner's reprocess (``services.persons.reprocess_owner``) once
    that job is over. While the owner still has a running job this logs it at INFO and raises
    ``OwnerBusyRetry`` (from the service's ``OwnerBusyError``): Retries tries again with backoff
    (10 s to 10 min, 20 times: hours); past that the scheduler's periodic jobs pick the change
    up."""
    from scenedex.services.persons import OwnerBusyError

    def busy(owner: uuid.UUID) -> str:
        raise OwnerBusyError(f"owner {owner} still has a running job; retried later")

    rt, app = job_runtime(refresh_owner.broker), job_application(refresh_owner.broker)
    with log_context(owner_id=owner_id, spec_version=_spec_version(rt)):
        try:
            done = app.reprocess.after_change(
                _uuid(owner_id, "owner id"), JobTrigger(trigger), follow_up=busy
            )
        except OwnerBusyError as busy_error:
            log.info("%s", busy_error)
            raise OwnerBusyRetry(str(busy_error)) from None
        log.info("owner %s: person change picked up by job %s", owner_id, done.job_id if done else None)


def _run_video_item(rt: JobRuntime, item: HeldItem) -> None:
    """Run the item; an error that is not an outage fails it on the last attempt (an outage is
    held by ``run_guarded`` whatever the attempt)."""
    assert item.job_id is not None and item.video_id is not None
    coordinator = rt.coordinator
    try:
        coordinator.run_video(item.job_id, item.video_id)
    except Exception as error:
        if not _last_attempt(reprocess_video) or dependency_of(error) is not None:
            raise
        coordinator.fail_item(
            item.job_id,
            ItemKind.VIDEO,
            item.video_id,
            f"gave up after {_retries(reprocess_video)} retries: {error}",
        )


class DramatiqSender:
    """Sends the actors' messages (on the broker they are declared on): ``MessageSender`` for
    the coordinator (planner and video messages, returning their broker ids), plus the
    ``embed_video``, ``ingest_video``, ``delete_video``, ``refresh_owner`` and ``sweep_jobs``
    messages."""

    def send_plan(self, job_id: uuid.UUID) -> str:
        """Send the planner message of ``job_id``; returns its broker id."""
        return broker_message_id(reprocess_embeddings.send(str(job_id)))

    def send_video(self, job_id: uuid.UUID, video_id: uuid.UUID) -> str:
        """Send the message of one video item; returns its broker id."""
        return broker_message_id(reprocess_video.send(str(job_id), str(video_id)))

    def send_embed(self, video_id: uuid.UUID, owner_id: uuid.UUID) -> str:
        """Send ``embed_video`` for a video; returns the message id."""
        return str(embed_video.send(str(video_id), str(owner_id)).message_id)

    def send_refresh_owner(self, owner_id: uuid.UUID, trigger: JobTrigger = JobTrigger.API) -> str:
        """Send ``refresh_owner`` for ``owner_id``, delayed by ``REFRESH_DELAY_MS``; returns
        the message id."""
        message = refresh_owner.send_with_options(args=(str(owner_id), trigger.value), delay=REFRESH_DELAY_MS)
        return str(message.message_id)

    def send_ingest(self, video_id: uuid.UUID, owner_id: uuid.UUID) -> str:
        """Send ``ingest_video`` for a video created over HTTP; returns the message id."""
        return str(ingest_video.send(str(video_id)).message_id)

    def send_delete(self, video_id: uuid.UUID, owner_id: uuid.UUID) -> str:
        """Send ``delete_video``; returns the message id."""
        return str(delete_video.send(str(video_id), str(owner_id)).message_id)

    def send_webhook(self, delivery_id: uuid.UUID) -> str:
        """Send ``deliver_webhook`` for one delivery; returns the message id."""
        return str(deliver_webhook.send(str(delivery_id)).message_id)

    def send_sweep(self) -> None:
        """Send ``sweep_jobs`` (a worker re-sends the lost messages of every active job)."""
        sweep_jobs.send()


def enqueue_embed_video(video_id: uuid.UUID, owner_id: uuid.UUID) -> str:
    """Send ``embed_video`` for a video this process just created (no ownership check: callers
    that take the ids from outside use ``scenedex.services.enqueue.enqueue_embed_video``);
    returns the message id. Raises redis-py's errors when the broker is unreachable."""
    return DramatiqSender().send_embed(video_id, owner_id)
