"""``scenedex api`` (the admin/owner HTTP API on uvicorn), ``scenedex embed-server`` and
``scenedex scheduler``; cli.py registers them with the ``*_EPILOG`` texts.

Exit codes as in ``common``: 2 for unusable settings (no JWT key, bad cron), with a one-line
message; both run until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from scenedex.scripts.common import check_model_files, fail, print_json, user_errors
from scenedex.settings import Settings
from scenedex.worker.logs import configure_logging

API_EPILOG = (
    "Needs SCENEDEX_API__JWT_SECRET or SCENEDEX_API__JWT_PUBLIC_KEY: without a JWT key it refuses to "
    "start (exit 2), unless SCENEDEX_API__ALLOW_INSECURE_DEV=1 (development only). One process; scale "
    "with replicas. Runs until SIGTERM or Ctrl-C."
)


def api(
    host: Annotated[str | None, typer.Option(help="Listen address (default: SCENEDEX_API__HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default: SCENEDEX_API__PORT).")] = None,
) -> None:
    """Run the admin/owner HTTP API on uvicorn: jobs, videos, persons, search."""
    import uvicorn

    from scenedex.api import ApiConfigError, create_app

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    if settings.embedder.backend_of("clip") == "local":
        check_model_files(settings)
    try:
        app = create_app(settings)
    except ApiConfigError as error:
        fail(str(error), 2)
    uvicorn.run(
        app,
        host=host or settings.api.host,
        port=port or settings.api.port,
        log_config=None,  # keep scenedex's log format
        proxy_headers=True,
    )


EMBED_SERVER_EPILOG = (
    "Needs SCENEDEX_EMBED__HMAC_SECRET (requests are signed; see the README), else refuses to start "
    "(exit 2) unless SCENEDEX_EMBED__ALLOW_INSECURE_AUTH=1. Models load before it listens; a model that "
    "cannot be loaded stops it (exit 1). Model settings are the worker's (SCENEDEX_CLIP__*, "
    "SCENEDEX_TEXT__*, SCENEDEX_FACES__*). Runs until SIGTERM or Ctrl-C."
)


def embed_server(
    host: Annotated[str | None, typer.Option(help="Listen address (default: SCENEDEX_EMBED__HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default: SCENEDEX_EMBED__PORT).")] = None,
) -> None:
    """Run the embedding service (GPU or CPU) on uvicorn: CLIP image/text, text and face embeddings."""
    import uvicorn

    from scenedex.api import ApiConfigError
    from scenedex.api.embed_app import create_embed_app
    from scenedex.domain.errors import ModelLoadError

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    check_model_files(settings)
    try:
        app = create_embed_app(settings)
        app.state.embed.models.load()  # before listening: a bad checkpoint is one line, exit 1
    except (ApiConfigError, ModelLoadError) as error:
        fail(str(error), 2 if isinstance(error, ApiConfigError) else 1)
    config = uvicorn.Config(
        app,
        host=host or settings.embed.host,
        port=port or settings.embed.port,
        log_config=None,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:  # the lifespan failed: a model could not be loaded
        fail("embedding service did not start (see the log above)", 1)


SCHEDULER_EPILOG = (
    "Cron times are UTC; jobs are not forced (only stale records are recomputed). Any number of "
    "schedulers may run: one leader acts, under a Redis lease. A bad cron is exit 2. Runs until "
    "SIGTERM or Ctrl-C."
)


def scheduler(
    once: Annotated[bool, typer.Option("--once", help="One tick, then exit (prints its outcome).")] = False,
) -> None:
    """Periodic batch reindexing: a job of scope all per SCENEDEX_SCHEDULER__CRON period, and the sweeper."""
    from scenedex.application import build_services
    from scenedex.tasks.queue import build_runtime
    from scenedex.worker.scheduler import SchedulerConfigError, build_scheduler

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        instance = build_scheduler(build_runtime(settings, build_services(settings)))
    except SchedulerConfigError as error:
        fail(str(error), 2)
    if once:
        with user_errors():
            result = instance.tick()
        instance.lease.release()
        print_json(
            {
                "outcome": result.outcome,
                "period": result.period.isoformat() if result.period else None,
                "job_id": str(result.job_id) if result.job_id else None,
            }
        )
        return
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    instance.run(stop)
