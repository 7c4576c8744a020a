"""``scenedex metrics``: the queue backlog exporter the autoscaler reads (``worker.backlog``).

One small always-on process per deployment (it holds no state: any number may run). Exit codes as
in ``common``: 0 stopped by SIGTERM/SIGINT (or ``--once`` read the queues), 1 Redis unreachable
with ``--once``, 2 the port cannot be bound.
"""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from scenedex.scripts.common import fail, print_json
from scenedex.settings import Settings

# registered by cli.py with this epilog
METRICS_EPILOG = (
    "Serves scenedex_queue_backlog{queue} (messages not yet acknowledged: waiting + prefetched or "
    "running + delayed), scenedex_queue_waiting{queue} (the Redis list alone) and "
    "scenedex_queue_oldest_age_seconds{queue}, read from Redis at each scrape; see docs/SCALING.md."
)


def metrics(
    port: Annotated[int, typer.Option(help="Port to serve the metrics on (any path).")] = 9192,
    host: Annotated[str, typer.Option(help="Listen address.")] = "0.0.0.0",
    queues: Annotated[
        list[str] | None,
        typer.Option("--queues", help="Queues to report (default: SCENEDEX_WORKER__QUEUES)."),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Print each queue's backlog as JSON and exit.")
    ] = False,
) -> None:
    """Export the queue backlog (Prometheus) that the workers' autoscaler scales on."""
    import redis

    from scenedex.worker.backlog import read_backlog, serve_backlog
    from scenedex.worker.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    names = list(queues or settings.worker.queues)
    client = redis.Redis.from_url(settings.redis_url)
    if once:
        try:
            backlog = read_backlog(client, names)
        except redis.RedisError as error:
            fail(f"redis {settings.redis_url} unreachable: {error}", 1)
        print_json({"queues": [queue.to_dict() for queue in backlog]})
        return
    try:
        server = serve_backlog(client, names, host, port)
    except OSError as error:
        fail(f"cannot serve on {host}:{port}: {error}", 2)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
