"""The queued side of a process: the ``JobRuntime`` (job coordinator on the SQL job store, the
sender of the actors' messages, the broker's message probe, the dependencies' circuit breakers).

The entry point hands in the ``TaskQueue`` (dramatiq's broker with the actors declared on it,
their sender and the probe: ``tasks.queue.task_queue``), so the application never imports the
actors and the actors never import it: they find their runtime through their broker's middleware
(``tasks.runtime.job_runtime``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

from scenedex.adapters.breakers import BreakerBoard, BreakerConfig, CircuitBreaker, LocalKeyValue
from scenedex.adapters.db.engine import create_engine
from scenedex.adapters.db.jobs import SqlJobStore
from scenedex.application.wiring import opensearch_client
from scenedex.domain.coordinator import JobCoordinator
from scenedex.domain.errors import BLOBS, DATABASE, EMBEDDING, OPENSEARCH, REDIS
from scenedex.domain.jobs import JobTrigger
from scenedex.domain.ports import MessageProbe, MessageSender, WorkerFleet
from scenedex.settings import Settings

if TYPE_CHECKING:
    from scenedex.application.root import Services


class TaskSender(MessageSender, Protocol):
    """Sends every actor's message (``tasks.actors.DramatiqSender``): the coordinator's planner
    and video messages (``MessageSender``) and the upload, deletion, owner refresh and sweep
    ones; each returns the message id it sent."""

    def send_embed(self, video_id: uuid.UUID, owner_id: uuid.UUID) -> str: ...

    def send_refresh_owner(self, owner_id: uuid.UUID, trigger: JobTrigger = JobTrigger.API) -> str: ...

    def send_ingest(self, video_id: uuid.UUID, owner_id: uuid.UUID) -> str: ...

    def send_delete(self, video_id: uuid.UUID, owner_id: uuid.UUID) -> str: ...

    def send_sweep(self) -> None: ...

    def send_webhook(self, delivery_id: uuid.UUID) -> str: ...


@dataclass(frozen=True)
class TaskQueue:
    """What the entry point hands the application for its queued side: dramatiq's broker (the
    actors declared on it), the sender of their messages, and the probe asking whether the broker
    still holds a message (``tasks.queue.task_queue`` builds them)."""

    broker: Any
    sender: TaskSender
    probe: MessageProbe
    fleet: WorkerFleet | None = None


@dataclass
class JobRuntime:
    """The queued side of a process, built by ``build_runtime``: the ``JobCoordinator`` (SQL
    job store, Dramatiq sender, and the services' runner when built with services), the Redis
    probe that ``resume`` and the sweeper ask, the sender of every actor's messages
    (``DramatiqSender``) and the circuit breakers of the dependencies (``breakers``).
    ``services``: None in a process that only enqueues or inspects jobs."""

    settings: Settings
    services: Services | None
    coordinator: JobCoordinator
    probe: MessageProbe
    sender: TaskSender
    breakers: BreakerBoard
    broker: Any = None
    """dramatiq's broker (its Redis client holds the shared breakers, webhooks' included)."""
    fleet: WorkerFleet | None = None


def build_runtime(
    settings: Settings,
    services: Services | None = None,
    *,
    queue: TaskQueue,
    engine: sa.Engine | None = None,
) -> JobRuntime:
    """The job runtime of a process on ``settings``.

    With ``services`` (the worker, the API, the scheduler, ``scenedex reprocess --enqueue``) it
    shares their engine and its coordinator runs jobs on their runner, which computes their
    spec from the configured model ids (no weights loaded; CLIP's preprocessing description
    imports open_clip). Without (``scenedex jobs``, the embed message after an ingest) it only
    creates, sends and inspects jobs, on ``engine`` or a new one, and imports no model library.

    ``queue``: the broker, sender and probe of the entry point (``tasks.queue.task_queue``).
    Opens no connection.
    """
    if services is not None:
        engine = services.engine
    engine = engine or create_engine(settings.database_url)
    sender = queue.sender
    coordinator = JobCoordinator(
        SqlJobStore(engine),
        sender,
        services.runner() if services is not None else None,
        max_deliveries=settings.worker.max_deliveries,
    )
    breakers = dependency_breakers(settings, queue.broker, engine, services)
    return JobRuntime(
        settings, services, coordinator, queue.probe, sender, breakers, queue.broker, queue.fleet
    )


def dependency_breakers(
    settings: Settings, broker: Any, engine: sa.Engine, services: Services | None = None
) -> BreakerBoard:
    """A circuit breaker and a health probe per dependency this process uses: the database,
    the blob store and Redis always, the embedding service when ``SCENEDEX_EMBEDDER__BACKEND``
    is ``http`` (``GET /health``), OpenSearch when it is the search backend (cluster health).
    The breakers are shared through the broker's Redis, except Redis's own (in the process)."""
    from fsspec.core import url_to_fs

    config = BreakerConfig(
        failure_threshold=settings.breakers.failure_threshold,
        failure_window_s=settings.breakers.failure_window_s,
        open_s=settings.breakers.open_s,
        max_open_s=settings.breakers.max_open_s,
        probe_timeout_s=settings.breakers.probe_timeout_s,
    )
    timeout = settings.breakers.probe_timeout_s

    def database() -> None:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))

    def blobs() -> None:
        fs, root = url_to_fs(settings.storage_url)
        fs.exists(root)

    def redis() -> None:
        broker.client.ping()

    probes: dict[str, Any] = {DATABASE: database, BLOBS: blobs, REDIS: redis}
    if remote_roles(settings):
        probes[EMBEDDING] = lambda: any_embed_service(settings, timeout)
    if settings.search.backend == "opensearch":
        client = opensearch_client(settings.search, timeout_s=timeout, max_retries=0)
        probes[OPENSEARCH] = lambda: client.cluster.health(request_timeout=timeout)
    shared = getattr(broker, "client", None) or LocalKeyValue()  # a stub broker (tests) has no Redis
    breakers = {
        name: CircuitBreaker(name, LocalKeyValue() if name == REDIS else shared, config) for name in probes
    }
    return BreakerBoard(breakers, probes)


def remote_roles(settings: Settings) -> tuple[str, ...]:
    """The model roles on the embedding services (``SCENEDEX_EMBEDDER__BACKEND`` and the roles'
    own settings)."""
    return tuple(r for r in ("clip", "text", "faces") if settings.embedder.backend_of(r) == "http")


def any_embed_service(settings: Settings, timeout: float) -> None:
    """The embedding breaker's probe: returns when one of the services answers ``GET /health``
    (the pool's own breakers then find which), raises the last error otherwise."""
    import httpx

    urls = dict.fromkeys(u for role in remote_roles(settings) for u in settings.embedder.urls_of(role))
    error: Exception | None = None
    for url in urls:
        try:
            httpx.get(url.rstrip("/") + "/health", timeout=timeout, trust_env=False).raise_for_status()
            return
        except httpx.HTTPError as failure:
            error = failure
    assert error is not None
    raise error
