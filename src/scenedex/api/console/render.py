"""Rendering the console's pages: the Jinja2 environment (templates next to this module,
autoescaped), its filters, and ``render`` (a page with the signed-in admin and the CSRF token
every form of it carries)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from scenedex.api.console.session import CSRF_FIELD, ConsoleSession
from scenedex.domain import jobs
from scenedex.services.search import format_ranges

HERE = Path(__file__).resolve().parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
STATIC_DIR = HERE / "static"
STATIC_PATH = "/admin/static"
ACTIVE_JOB_STATUSES = frozenset(status.value for status in jobs.ACTIVE_JOB_STATUSES)
"""Statuses of a job that is not over (``JobStatus.active``): its page keeps refreshing."""


def duration(seconds: float | None) -> str:
    """``75.4`` -> ``"1 min 15 s"``; ``None`` -> ``"-"``."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, rest = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def timestamp(value: str | datetime | None) -> str:
    """An ISO 8601 time (or datetime) as ``2026-11-21 14:05:09 UTC``; ``None`` -> ``"-"``."""
    if value is None:
        return "-"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def progress_percent(job: dict[str, Any]) -> int:
    """Finished items over all items of a job summary (``JobSummary.to_dict()``), 0..100; a job
    that is over with no item counts as 100."""
    items = job["items"]
    if not items["total"]:
        return 0 if job["status"] in ACTIVE_JOB_STATUSES else 100
    return int(100 * items["done"] / items["total"])


TEMPLATES.env.filters.update(duration=duration, timestamp=timestamp, ranges=format_ranges)
TEMPLATES.env.globals.update(
    static=STATIC_PATH, csrf_field=CSRF_FIELD, percent=progress_percent, active_statuses=ACTIVE_JOB_STATUSES
)


def render(
    request: Request,
    template: str,
    session: ConsoleSession | None = None,
    *,
    status_code: int = 200,
    **context: Any,
) -> Response:
    """``template`` rendered for ``session`` (None: signed out), with ``Cache-Control:
    no-store`` (pages show one admin's data) and the page's section (``nav``) for the menu."""
    response = TEMPLATES.TemplateResponse(
        request,
        template,
        {"session": session, "csrf_token": session.csrf_token if session else None, **context},
        status_code=status_code,
    )
    response.headers["Cache-Control"] = "no-store"
    return response
