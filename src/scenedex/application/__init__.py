"""The application layer: the composition root and the use cases every entry point calls.

``bootstrap(settings)`` builds the adapters once per process (``root.build_services``) and returns
the ``Application`` whose attributes are the use cases (``app``); ``build_runtime`` (``runtime``)
adds the queued side on the ``TaskQueue`` the entry point hands in; ``health`` holds the
dependency checks the console and ``scenedex doctor`` share; ``wiring`` how each adapter is built
from settings.
"""

from __future__ import annotations

from scenedex.application.app import Application, bootstrap
from scenedex.application.root import Services, build_services
from scenedex.application.runtime import JobRuntime, TaskQueue, TaskSender, build_runtime

__all__ = [
    "Application",
    "JobRuntime",
    "Services",
    "TaskQueue",
    "TaskSender",
    "bootstrap",
    "build_runtime",
    "build_services",
]
