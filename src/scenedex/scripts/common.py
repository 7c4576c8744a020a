"""What the ``scenedex`` CLI modules share: stderr, option aliases, errors as exit codes, JSON output.

It imports no CLI module: ``cli.py`` imports the sub-apps (``index_cli``, ``jobs_cli``, ``api_cli``,
``doctor_cli``, ``person_cli``, ``videos_cli``) and they all import this module, never ``cli.py``.

Exit codes: 0 success; 1 some items failed or a dependency (model, database) is unusable;
2 usage error (bad uuid, unknown video or owner, wrong scope arguments, missing file), always
with a one-line message on stderr, never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from sqlalchemy.exc import OperationalError

from scenedex.domain.errors import InvalidRequestError, NotFoundError, ScenedexError
from scenedex.domain.request import parse_uuid
from scenedex.settings import Settings
from scenedex.worker.logs import configure_logging

stderr = Console(stderr=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
OwnerOption = Annotated[str, typer.Option("--owner-id", help="Owner (tenant) UUID.")]


def fail(message: str, code: int) -> NoReturn:
    stderr.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


NoReprocessOption = Annotated[
    bool, typer.Option("--no-reprocess", help="Do not enqueue the owner's reprocess.")
]
"""``--no-reprocess``: a change is stored, its owner's reprocess left to the next run."""


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn scenedex's own errors into a one-line message and an exit code."""
    try:
        yield
    except (InvalidRequestError, NotFoundError) as error:
        fail(str(error), 2)
    except ScenedexError as error:
        fail(str(error), 1)
    except OperationalError as error:
        fail(f"database unreachable: {str(error.orig or error).splitlines()[0]}", 1)


def build_application(*, log_spec_version: bool = False, **overrides: Any) -> Any:
    """Settings from the environment, logging configured once (before any model library is
    imported), then the ``Application`` of the composition root (``overrides`` replace adapters)
    with the actors' queue (``tasks.queue.task_queue``, built when a command first enqueues).
    With ``log_spec_version`` every log line carries the spec version (which reads the model
    ids, so it imports open_clip)."""
    from scenedex.application import bootstrap
    from scenedex.tasks.queue import task_queue

    settings = Settings()
    log_filter = configure_logging(settings.log_level, settings.log_format)
    app = bootstrap(settings, queue=task_queue, **overrides)
    if log_spec_version:
        log_filter.context["spec_version"] = app.services.spec.version
    return app


def build_services(*, log_spec_version: bool = False, **overrides: Any) -> Any:
    """The adapters of ``build_application`` (``Services``), for the commands not yet on its use
    cases."""
    return build_application(log_spec_version=log_spec_version, **overrides).services


def parse_owner(value: str) -> Any:
    return parse_uuid(value, "owner id")


def print_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, indent=None, default=str) + "\n")


def reprocess_owner_or_fail(app: Any, owner: Any, done_what: str) -> str | None:
    """Enqueue the owner's reprocess after a change already stored (``app.reprocess.after_change``,
    trigger ``cli``); returns the job id (None: nothing to reprocess). An unreachable broker is
    exit 1 naming ``done_what`` (e.g. "person deleted") and the command to run instead."""
    import redis

    from scenedex.domain.jobs import JobTrigger

    try:
        done = app.reprocess.after_change(owner, JobTrigger.CLI)
    except redis.exceptions.ConnectionError as error:
        fail(
            f"{done_what}, but the reprocess could not be enqueued ({error}); "
            f"run: scenedex reprocess --scope owner --owner-id {owner}",
            1,
        )
    return str(done.job_id) if done else None


def check_model_files(settings: Settings) -> None:
    """The start-up check of the worker, the API and the embedding service: a pinned model file
    with another SHA-256 than its pin is exit 1 with one line naming ``scenedex models fetch``."""
    from scenedex.services.models import ModelFiles

    with user_errors():
        ModelFiles.from_settings(settings).check_startup()
