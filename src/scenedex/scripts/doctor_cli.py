"""``scenedex doctor``: one line per dependency check (OK / WARN / FAIL and what to fix).

Exit codes: 0 when nothing FAILs (WARNs are fine), 1 otherwise.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from scenedex.scripts.common import JsonOption
from scenedex.settings import Settings
from scenedex.worker.logs import configure_logging

_STYLES = {"ok": "green", "warn": "yellow", "fail": "bold red"}

# `scenedex doctor` is registered by cli.py, with this epilog
DOCTOR_EPILOG = (
    "Checks the database and its migrations, Redis, the search index, the model weights, storage and "
    "(backend http) the embedding service. Never downloads model weights (HF_HUB_OFFLINE=1 unless set) "
    "and changes nothing. Exit 0 when nothing FAILs (WARNs are fine), 1 otherwise."
    "\n\n"
    '--json: {"ok": bool, "checks": [{"name", "status" (ok|warn|fail), "detail", "fix"}]}'
)


def doctor(
    json_output: JsonOption = False,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds each network dependency gets to answer.")
    ] = 2.0,
    load_models: Annotated[
        bool, typer.Option("--load-models", help="Also load every model (slower; catches corrupt files).")
    ] = False,
) -> None:
    """Check every configured dependency, one line each (OK, WARN or FAIL), and say what to fix."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from scenedex.application.checks import Status
    from scenedex.application.health import run_checks

    settings = Settings()
    configure_logging("ERROR", settings.log_format)  # the checks report failures themselves
    logging.getLogger("opensearch").setLevel(logging.ERROR)  # (its failed requests log a WARNING)
    checks = run_checks(settings, timeout=timeout, load_models=load_models)
    failed = any(check.status is Status.FAIL for check in checks)
    if json_output:
        sys.stdout.write(json.dumps({"ok": not failed, "checks": [c.to_dict() for c in checks]}) + "\n")
    else:
        console = Console(highlight=False, soft_wrap=True)
        width = max(len(check.name) for check in checks)
        for check in checks:
            status = check.status.value
            label = f"[{_STYLES[status]}]{status.upper():<4}[/]"
            fix = f" -> fix: {escape(check.fix)}" if check.fix and check.status is not Status.OK else ""
            console.print(f"{label} {check.name:<{width}}  {escape(check.detail)}{fix}")
    raise typer.Exit(1 if failed else 0)
