"""``Application``: the one object every entry point calls.

Its attributes are the use cases, each called the same way, the owner first where it is
owner-scoped: ``app.videos``, ``app.persons``, ``app.face_clusters``, ``app.search`` (the
owner's library), ``app.reprocess`` and ``app.jobs`` (the jobs, an admin's), ``app.events`` (the feed) and
``app.webhooks`` (endpoints and their deliveries). The API routes,
the console pages, the CLI commands, the actors, the scheduler and the tools parse their input,
call one of them and map its errors; they reach no adapter or store themselves.

It is built by ``bootstrap(settings)`` on the adapters of one process (``Services``,
``application.root``) and, when the process enqueues or runs jobs, on the job runtime of the
``TaskQueue`` its entry point hands in (``queue``, e.g. ``tasks.queue.task_queue``); the runtime
is built on first use. A process that only reads and acts on jobs (``scenedex jobs``) builds it
from a runtime alone (``Application(None, runtime)``) and imports no model library.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from scenedex.application.root import Services, build_services
from scenedex.application.runtime import JobRuntime, TaskQueue, TaskSender, build_runtime
from scenedex.domain.spec import ReprocessSpec
from scenedex.services.events import Events
from scenedex.services.face_clusters import FaceClusters
from scenedex.services.idempotency import Idempotency
from scenedex.services.jobs import Jobs
from scenedex.services.persons import Persons
from scenedex.services.reprocess import Reprocess
from scenedex.services.search import Search
from scenedex.services.video_library import Videos, VideoSenders
from scenedex.services.webhooks import Webhooks
from scenedex.settings import Settings


def bootstrap(
    settings: Settings, *, queue: Callable[[Settings], TaskQueue] | None = None, **overrides: Any
) -> Application:
    """The application of a process on ``settings``: its adapters (``overrides`` replace them,
    ``build_services``) and, with ``queue`` (the entry point's ``TaskQueue`` builder, called on
    first use), the sender of the actors' messages and the job runtime on the same engine."""
    services = build_services(settings, **overrides)
    return Application(services, queue=(lambda: queue(settings)) if queue is not None else None)


class Application:
    """The use cases of one process, on its adapters (``services``; None in a process that only
    handles jobs) and its queued side: a job ``runtime`` given, or one built on first use from
    ``queue`` (a process that only sends messages builds the queue, not the runtime)."""

    def __init__(
        self,
        services: Services | None,
        runtime: JobRuntime | None = None,
        *,
        queue: Callable[[], TaskQueue] | None = None,
    ) -> None:
        self._services = services
        self._runtime = runtime
        self._queue_factory = queue
        self._queue: TaskQueue | None = None

    @property
    def services(self) -> Services:
        """The adapters (``Services``); ``RuntimeError`` in a jobs-only application."""
        if self._services is None:
            raise RuntimeError("this application handles jobs only: it was built without services")
        return self._services

    @property
    def settings(self) -> Settings:
        return self._services.settings if self._services is not None else self.runtime.settings

    @property
    def spec(self) -> ReprocessSpec:
        """The latest spec of the configured models (read without loading weights)."""
        return self.services.spec

    @property
    def runtime(self) -> JobRuntime:
        """The job runtime (coordinator, sender, probe, breakers), built on first use; a
        ``RuntimeError`` in a process built without a task queue (it cannot enqueue)."""
        if self._runtime is None:
            self._runtime = build_runtime(self.settings, self._services, queue=self._task_queue())
        return self._runtime

    @property
    def sender(self) -> TaskSender:
        """The sender of the actors' messages: the runtime's, or the queue's without building a
        runtime (no spec computed, no model library imported)."""
        return self._runtime.sender if self._runtime is not None else self._task_queue().sender

    def _task_queue(self) -> TaskQueue:
        if self._queue is None:
            if self._queue_factory is None:
                raise RuntimeError("no task queue: build it with bootstrap(settings, queue=task_queue)")
            self._queue = self._queue_factory()
        return self._queue

    @cached_property
    def jobs(self) -> Jobs:
        """Job reads and commands (list, get, summary, pause, resume, resend, retry, cancel)."""
        return Jobs(self.runtime.coordinator, self.runtime.probe, self.runtime.fleet)

    @cached_property
    def reprocess(self) -> Reprocess:
        """Reprocess plans, jobs and the owner's reprocess after a change."""
        return Reprocess(self.services.runner, lambda: self.runtime.coordinator, lambda: self.sender)

    @cached_property
    def persons(self) -> Persons:
        """Persons and their photos (create, add and delete photos, list, get, rename, delete)."""
        return self.services.persons()

    @cached_property
    def face_clusters(self) -> FaceClusters:
        """Suggested persons and the decisions about them (list, get, confirm, reject, split)."""
        return self.services.face_clusters()

    @cached_property
    def idempotency(self) -> Idempotency:
        """Creates run once per ``Idempotency-Key``, their answers replayed."""
        return self.services.idempotency()

    @cached_property
    def search(self) -> Search:
        """The owner's search: scenes for a text, an image or a person; image queries; keyframes."""
        return self.services.searcher()

    @cached_property
    def videos(self) -> Videos:
        """The owner's videos (create, list, get, texts, embed, deletion) and the workers' side of
        an upload (ingest, its embed step, deletion)."""
        services = self.services
        return Videos(
            uow_factory=services.uow_factory,
            blobs=services.blobs,
            search_index=services.search_index,
            policy=services.source_policy,
            limits=services.ingest_limits,
            cutter=services.video_cutter,
            download=services.source_download,
            runner=services.runner,
            coordinator=lambda: self.runtime.coordinator,
            senders=self._video_senders,
        )

    @cached_property
    def events(self) -> Events:
        """The event feed (owner-scoped; admins: every owner's) and the outbox's retention."""
        from scenedex.adapters.db.outbox import EventFeed

        return Events(EventFeed(self.services.engine), retention_days=self.settings.webhooks.retention_days)

    @cached_property
    def webhooks(self) -> Webhooks:
        """Webhook endpoints (create, list, get, update, delete, rotate, deliveries, replay) and
        the workers' side (dispatch the due deliveries, deliver one)."""
        from scenedex.application.webhooks import build_webhooks

        return build_webhooks(self.services.engine, self.settings, self._breaker_store, lambda: self.sender)

    def _breaker_store(self) -> Any:
        """Where the endpoints' breakers live: the broker's Redis (shared by every worker)."""
        from scenedex.adapters.breakers import LocalKeyValue

        broker = self._runtime.broker if self._runtime is not None else self._task_queue().broker
        return getattr(broker, "client", None) or LocalKeyValue()

    def _video_senders(self) -> VideoSenders:
        sender = self.sender
        return VideoSenders(ingest=sender.send_ingest, embed=sender.send_embed, delete=sender.send_delete)
