"""Where the suite's CPU goes, per test module: ``pytest -p tests.cpu_profile`` (with or without
``-n``) prints, after the run, each module's wall seconds and the CPU seconds of the test process
(``RUSAGE_SELF``) and of the processes it started and waited for (``RUSAGE_CHILDREN``: the API,
worker, CLI and embedding-service processes the e2e tests start), the slowest first, and the
machine's use: CPU seconds over session seconds times cores.

It is how ``make test``'s worker count was chosen (tests/xdist_schedule.py): with two workers
the suite left a fifth of the 2 cores idle, so a third fills the waits. Under pytest-xdist a
module runs on one worker, alone there, so the worker's own rusage deltas around it are the
module's. Children are counted when reaped: a process killed and never waited for (e.g. the
worker processes of a dramatiq master killed with SIGKILL, reparented to init) is missing, so
the figures are a lower bound.

    .venv/bin/python -m pytest -q -n 3 --dist loadfile -p tests.cpu_profile
"""

from __future__ import annotations

import os
import resource
import time
from typing import Any

import pytest

Figures = list[float]
"""``[wall_s, self_cpu_s, children_cpu_s]`` of one module."""

_modules: dict[str, Figures] = {}
_current: dict[str, Any] = {}
_started = time.monotonic()


def _sample() -> tuple[float, float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.monotonic(), own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _close_module() -> None:
    module = _current.pop("module", None)
    _current.pop("last", None)
    if module is None:
        return
    end = _sample()
    figures = _modules.setdefault(module, [0.0, 0.0, 0.0])
    for i, (before, after) in enumerate(zip(_current.pop("start"), end, strict=True)):
        figures[i] += after - before


def _module_of(item: pytest.Item | None) -> str | None:
    return item.nodeid.split("::", 1)[0] if item is not None else None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    module = _module_of(item)
    if _current.get("module") != module:
        _close_module()
        _current.update(module=module, start=_sample())
    _current["last"] = _module_of(nextitem) != module  # module fixtures end with this test's teardown


def pytest_runtest_logfinish(nodeid: str, location: Any) -> None:
    if _current.get("last"):
        _close_module()


def pytest_sessionfinish(session: pytest.Session) -> None:
    _close_module()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the figures to the controller
        workeroutput["cpu_profile"] = dict(_modules)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist's controller: add a worker's figures."""
    for module, figures in getattr(node, "workeroutput", {}).get("cpu_profile", {}).items():
        total = _modules.setdefault(module, [0.0, 0.0, 0.0])
        for i, value in enumerate(figures):
            total[i] += value


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _modules:
        return
    session_s = time.monotonic() - _started
    cores = os.cpu_count() or 1
    write = terminalreporter.write_line
    terminalreporter.section("CPU per test module (tests/cpu_profile.py)")
    write(f"{'module':60} {'wall s':>8} {'self s':>8} {'children s':>10} {'cpu s':>8}")
    rows = sorted(_modules.items(), key=lambda row: -(row[1][1] + row[1][2]))
    for module, (wall, own, children) in rows:
        write(f"{module:60} {wall:8.1f} {own:8.1f} {children:10.1f} {own + children:8.1f}")
    wall, own, children = (sum(figures[i] for figures in _modules.values()) for i in range(3))
    write(f"{'all modules':60} {wall:8.1f} {own:8.1f} {children:10.1f} {own + children:8.1f}")
    write(
        f"session {session_s:.0f} s on {cores} cores: the modules used {own + children:.0f} CPU-s of "
        f"{session_s * cores:.0f} core-s ({(own + children) / (session_s * cores):.0%}; collection and "
        "unreaped processes not counted)"
    )
