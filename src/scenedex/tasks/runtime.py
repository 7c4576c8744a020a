"""How actors reach their process's job runtime: through a middleware of their broker.

The runtime (services, job coordinator, probe: ``application.JobRuntime``) is built by the
composition root and held by a ``TaskRuntime`` middleware on the broker the actors are declared
on; an actor finds it with ``job_runtime(actor.broker)``. There is no module-level runtime.

- ``worker.runtime.WorkerRuntime`` (added by ``worker.dramatiq_app``) builds it in each worker process at
  ``before_worker_boot`` (models loaded there, once, before any consumer starts) with the build
  function the entry point gives it, and runs the periodic sweeper;
- tests add a ``TaskRuntime`` holding a runtime they built (fake embedders) and remove it after.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dramatiq

from scenedex.application.app import Application

if TYPE_CHECKING:
    from scenedex.application import JobRuntime


class TaskRuntime(dramatiq.Middleware):
    """Holds the ``JobRuntime`` the actors of its broker run on (``runtime``: None until built)
    and the ``Application`` on it (``application``, built on first use)."""

    def __init__(self, runtime: JobRuntime | None = None) -> None:
        self.runtime = runtime
        self._application: Application | None = None

    @property
    def application(self) -> Application:
        """The use cases on ``runtime`` (the same object for as long as the runtime is)."""
        assert self.runtime is not None
        if self._application is None or self._application.runtime is not self.runtime:
            self._application = Application(self.runtime.services, self.runtime)
        return self._application


def job_runtime(broker: Any) -> JobRuntime:
    """The runtime held by the first ``TaskRuntime`` middleware of ``broker`` that has one.
    Raises ``RuntimeError`` when there is none (a broker set up without the worker's middleware)."""
    runtime = _holder(broker).runtime
    assert runtime is not None
    return runtime


def job_application(broker: Any) -> Application:
    """The ``Application`` on ``job_runtime(broker)``: the use cases the actors call."""
    return _holder(broker).application


def _holder(broker: Any) -> TaskRuntime:
    for middleware in broker.middleware:
        if isinstance(middleware, TaskRuntime) and middleware.runtime is not None:
            return middleware
    raise RuntimeError(
        "no job runtime on this broker: add WorkerRuntime (scenedex.worker.runtime) or a "
        "TaskRuntime holding one"
    )
