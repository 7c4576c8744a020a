"""Dramatiq actors (``actors``), the runtime middleware the actors reach their process's runtime
through (``runtime``), and what the broker holds (``messaging``).

Importing this package does nothing else: it installs no broker, opens no connection, loads no
model and does not import torch. The actors are declared on dramatiq's global broker when
``scenedex.tasks.actors`` is first imported, which ``scenedex.tasks.queue.task_broker`` does once it
has installed the broker; the names below are looked up lazily, so ``from scenedex.tasks import
reprocess_video`` works once a runtime is built.

Python services enqueue through the application's reprocess use case::

    app = bootstrap(settings, queue=task_queue)  # scenedex.application, scenedex.tasks.queue
    app.reprocess.enqueue(request, JobTrigger.API)  # scenedex.services.reprocess
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "EMBEDDINGS_QUEUE",
    "REPROCESSING_QUEUE",
    "delete_video",
    "embed_video",
    "enqueue_embed_video",
    "ingest_video",
    "refresh_owner",
    "reprocess_embeddings",
    "reprocess_video",
    "sweep_jobs",
]


def __getattr__(name: str) -> Any:
    """The actors' module attributes, imported (and so declared) on first use."""
    if name in __all__:
        from scenedex.tasks import actors

        return getattr(actors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
