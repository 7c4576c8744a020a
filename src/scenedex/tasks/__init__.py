"""Dramatiq actors and enqueue helpers.

Importing this package sets the RedisBroker (from ``SCENEDEX_REDIS_URL``) as dramatiq's broker,
unless a broker was set before, and declares the actors. It opens no connection, loads no model
and does not import torch, so API services can import it to enqueue::

    from scenedex.tasks import enqueue_reprocess
    job = enqueue_reprocess(ReprocessRequest.parse("owner", owner_id=...), trigger=JobTrigger.API)
"""

from __future__ import annotations

import dramatiq.broker

from scenedex.worker.broker import install_broker

if dramatiq.broker.global_broker is None:
    install_broker()

from scenedex.tasks.actors import (
    EMBEDDINGS_QUEUE,
    REPROCESSING_QUEUE,
    embed_video,
    reprocess_embeddings,
    reprocess_video,
    sweep_jobs,
)
from scenedex.tasks.enqueue import enqueue_embed_video, enqueue_reprocess

__all__ = [
    "EMBEDDINGS_QUEUE",
    "REPROCESSING_QUEUE",
    "embed_video",
    "enqueue_embed_video",
    "enqueue_reprocess",
    "reprocess_embeddings",
    "reprocess_video",
    "sweep_jobs",
]
