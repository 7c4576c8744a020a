"""``scenedex worker`` and ``scenedex jobs ...``: the queued side of reprocessing.

Exit codes as in ``common``: 0 ok, 1 failed job or unusable dependency, 2 usage error.
``jobs status`` exits with the job's outcome once it is over (0 succeeded, 1 otherwise) and 0
while it runs.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from scenedex.domain.errors import NotFoundError
from scenedex.domain.request import parse_uuid
from scenedex.scripts.common import JsonOption, check_model_files, fail, print_json, user_errors
from scenedex.settings import Settings

jobs_app = typer.Typer(
    help="Queued reprocess jobs: status, list, pause, resume, resend, retry, cancel.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


def _jobs() -> Any:
    """The job use cases on a runtime without services (no spec computed, no model library
    imported)."""
    from scenedex.application import Application
    from scenedex.tasks.queue import build_runtime

    return Application(None, build_runtime(Settings())).jobs


def _job_id(value: str) -> Any:
    return parse_uuid(value, "job id")


# `scenedex worker` is registered by cli.py, with this epilog
WORKER_EPILOG = (
    "Models load once per process before consuming; SIGTERM finishes or re-queues the current messages. "
    "When a worker process dies, dramatiq stops the others and they are started again (1 s, doubling "
    "up to 60 s); not after a model load failure (exit 78)."
)


def worker(
    processes: Annotated[int | None, typer.Option(help="Worker processes (default: settings, 1).")] = None,
    threads: Annotated[int | None, typer.Option(help="Threads per process (default: settings, 1).")] = None,
    queues: Annotated[
        list[str] | None,
        typer.Option("--queues", help="Queues to consume (default: embeddings, reprocessing, webhooks)."),
    ] = None,
) -> None:
    """Run the Dramatiq workers (dramatiq's CLI on scenedex.worker.dramatiq_app), restarted if one dies."""
    from scenedex.worker.logs import configure_logging
    from scenedex.worker.supervisor import supervise

    base = Settings()
    configure_logging(base.log_level, base.log_format)
    if base.embedder.backend_of("clip") == "local":
        check_model_files(base)  # before forking: a corrupt file is one line, not a restart loop
    settings = base.worker
    processes = processes or settings.processes
    threads = threads or settings.threads
    env = dict(os.environ)
    env["dramatiq_queue_prefetch"] = str(threads)  # prefetch = threads: no message waits behind a busy one
    env["dramatiq_prom_port"] = str(settings.metrics_port)
    argv = [
        sys.executable,
        "-m",
        "dramatiq",
        "scenedex.worker.dramatiq_app",
        "--processes",
        str(processes),
        "--threads",
        str(threads),
        "--worker-shutdown-timeout",
        str(settings.shutdown_timeout_ms),
        "--queues",
        *(queues or settings.queues),
    ]
    raise typer.Exit(supervise(argv, env))


@jobs_app.command(
    "status", epilog="Exit code: 0 while the job runs; once it is over, 0 if it succeeded, 1 otherwise."
)
def jobs_status(
    job_id: Annotated[str, typer.Argument(help="Job UUID.")],
    watch: Annotated[bool, typer.Option("--watch", help="Refresh every 2 s until the job is over.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Progress of a job: items done/failed/total, per-step counts, throughput, ETA, failed items."""
    with user_errors():
        job_id_value = _job_id(job_id)
        jobs = _jobs()
        while True:
            try:
                summary = jobs.summary(job_id_value)
            except NotFoundError:
                fail(f"job {job_id} not found", 2)
            report = summary.to_dict()
            if not watch or not summary.job.status.active:
                break
            if not json_output:
                _print_status(report, compact=True)
            time.sleep(2)
    if json_output:
        print_json(report)
    else:
        _print_status(report)
    over = not summary.job.status.active
    raise typer.Exit(1 if over and report["status"] != "succeeded" else 0)


@jobs_app.command("list")
def jobs_list(
    limit: Annotated[int, typer.Option(help="How many, most recent first.")] = 20,
    status: Annotated[str | None, typer.Option(help="Only jobs in this status.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Recent jobs."""
    from scenedex.domain.errors import InvalidRequestError
    from scenedex.domain.jobs import JobStatus

    with user_errors():
        try:
            wanted = JobStatus(status) if status else None
        except ValueError:
            raise InvalidRequestError(
                f"unknown status {status!r} (one of: {', '.join(s.value for s in JobStatus)})"
            ) from None
        jobs = _jobs().list(limit=limit, status=wanted)
    rows = [job.to_dict() for job in jobs]
    if json_output:
        print_json({"jobs": rows})
        return
    table = Table(title="reprocess jobs")
    for column in ("job_id", "status", "scope", "trigger", "created_at"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(row[c] for c in ("job_id", "status", "scope", "trigger", "created_at")))
    Console().print(table)


@jobs_app.command("pause")
def jobs_pause(
    job_id: Annotated[str, typer.Argument(help="Job UUID.")],
    json_output: JsonOption = False,
) -> None:
    """Pause a queued or running job: no new item starts (running items finish)."""
    with user_errors():
        job = _jobs().pause(_job_id(job_id))
    _print_action(job_id, job.status.value, {}, json_output)


@jobs_app.command("resume")
def jobs_resume(
    job_id: Annotated[str, typer.Argument(help="Job UUID.")],
    json_output: JsonOption = False,
) -> None:
    """Resume a paused job: its items run again (their messages are sent again)."""
    with user_errors():
        job, sent = _jobs().resume(_job_id(job_id))
    _print_action(job_id, job.status.value, {"resent": sent}, json_output)


@jobs_app.command("resend")
def jobs_resend(
    job_id: Annotated[str, typer.Argument(help="Job UUID.")],
    json_output: JsonOption = False,
) -> None:
    """Re-send the messages of a running job that the broker lost (e.g. Redis restarted)."""
    with user_errors():
        job, sent = _jobs().resend(_job_id(job_id))
    _print_action(job_id, job.status.value, {"resent": sent}, json_output)


@jobs_app.command("retry")
def jobs_retry(
    job_id: Annotated[str, typer.Argument(help="Job UUID.")],
    json_output: JsonOption = False,
) -> None:
    """Run a job's failed video items again (a finished job becomes running)."""
    with user_errors():
        job, retried = _jobs().retry(_job_id(job_id))
    _print_action(job_id, job.status.value, {"retried": retried}, json_output)


def _print_action(job_id: str, status: str, counts: dict[str, int], json_output: bool) -> None:
    if json_output:
        print_json({"job_id": job_id, "status": status, **counts})
        return
    what = {"resent": "re-sent {} message(s)", "retried": "retried {} item(s)"}
    done = "".join(f", {what[name].format(n)}" for name, n in counts.items())
    print(f"job {job_id}: {status}{done}")


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: Annotated[str, typer.Argument(help="Job UUID.")],
    json_output: JsonOption = False,
) -> None:
    """Cancel an active job: items not yet finished are not run (a running video finishes)."""
    with user_errors():
        job = _jobs().cancel(_job_id(job_id))
    _print_action(job_id, job.status.value, {}, json_output)


def _print_status(report: dict[str, Any], compact: bool = False) -> None:
    items = report["items"]
    eta = f", ETA {report['eta_s']:.0f} s" if report["eta_s"] is not None else ""
    rate = f", {report['items_per_s']:.2f} items/s" if report["items_per_s"] else ""
    line = (
        f"job {report['job_id']} {report['status']}: {items['done']}/{items['total']} items done, "
        f"{items['failed']} failed{rate}{eta}"
    )
    console = Console(stderr=compact)
    console.print(line, highlight=False)
    if compact:
        for group in report["waiting"]:
            console.print(f"  waiting on {group['waiting_on']}: {group['items']} item(s)", highlight=False)
        return
    if report["error"]:
        console.print(f"error: {report['error']}", highlight=False)
    table = Table(title=f"{report['scope']} job under spec {report['spec_version']}")
    for column in ("step", "planned", "computed", "skipped", "failed"):
        table.add_column(column, justify="left" if column == "step" else "right")
    for step, counts in report["steps"].items():
        table.add_row(step, *(str(counts.get(k, 0)) for k in ("planned", "computed", "skipped", "failed")))
    console.print(table)
    for group in report["waiting"]:
        console.print(
            f"waiting on {group['waiting_on']}: {group['items']} item(s) since {group['since']}"
            + (f" ({group['error']})" if group["error"] else ""),
            highlight=False,
        )
    for item in report["failed_items"]:
        console.print(f"failed {item['kind']} {item['subject_id']}: {item['error']}", highlight=False)
