"""The admin console: server-rendered pages under ``/admin`` of ``scenedex api``.

Sign in with a bearer token (``session``), the overview with the dry-run plan, queues, workers
and health (``home``, ``overview``), jobs and their actions (``jobs``), the search check
(``search``), the suggested people and the decisions about them (``people``), the webhook
endpoints of every owner and their deliveries (``webhooks``). Templates and
static files sit next to the modules (``templates/``, ``static/``, no third-party script). None
of it is in the OpenAPI document.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from scenedex.api.console import home, jobs, people, search, sign_in, webhooks
from scenedex.api.console.overview import PlanCache
from scenedex.api.console.render import STATIC_DIR, STATIC_PATH

__all__ = ["install_console"]


def install_console(app: FastAPI) -> None:
    """Add the console's routes, static files, plan cache and error pages to ``app``."""
    app.state.console_plans = PlanCache()
    for router in (sign_in.router, home.router, jobs.router, search.router, people.router, webhooks.router):
        app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="console-static")
    for error, handler in sign_in.ERROR_HANDLERS.items():
        app.add_exception_handler(error, handler)
