"""How ``make test`` spreads the suite over pytest-xdist workers (``-n 3 --dist loadfile``).

Two rules on top of xdist's ``loadfile`` (one test module is one unit of work, so that module
fixtures such as a module's database or a process stack are built once):

- **One unit per shared stack**: the modules of ``tests/clients`` share one package-scoped API +
  worker stack (tests/clients/conftest.py), so the package is one unit; split over two workers
  it would start two stacks.
- **The longest units first** (longest-processing-time-first, the classic greedy bound for
  scheduling on identical machines: Graham, "Bounds on multiprocessing timing anomalies", 1969):
  a long module started last would leave the other worker idle at the end. ``SLOWEST_FIRST``
  lists the modules that took more than about 20 s in a serial run, slowest first (measured on
  the 2-core AVX2-only AMD EPYC, stop 38); the others keep their collection order after them.
  A module missing from the list costs only balance, never a test.

Most of these long modules wait more than they compute (process start-ups, outages held for
their whole length, pollers): in the serial run the machine was busy 1.1 of its 2 cores on
average, so a second worker fills the waits of the first. With two workers on 2 cores the
machine was still idle about a fifth of the time (a clean-clone run on the 2-core Intel Xeon
with AMX, stop 40: 1,105 CPU-s of test processes and the processes they started in 704 s, so
78 % of 1,408 core-s), so ``make test`` runs three: 637 s against 704 s on that machine, the same
commit, back to back (1,132 CPU-s, 89 %). More would only add contention: the suite is then
bound by its CPU seconds, not by its waits.
"""

from __future__ import annotations

from typing import Any

import pytest

SLOWEST_FIRST = (
    "tests/e2e/test_outages.py",  # 316 s serial
    "tests/integration/test_worker_process.py",  # 276 s
    "tests/integration/test_api_schemathesis.py",  # 232 s
    "tests/e2e/test_embed_pool.py",  # 203 s (about 100 s with the tiny CLIP)
    "tests/e2e/test_webhooks_e2e.py",  # 112 s
    "tests/e2e/test_http_lifecycle.py",  # 110 s
    "tests/clients",  # 102 s
    "tests/e2e/test_reprocessing_guide.py",  # 88 s
    "tests/integration/test_bench.py",  # 78 s
    "tests/e2e/test_cli_real_media.py",  # 76 s
    "tests/browser/test_admin_console.py",  # 75 s
    "tests/integration/test_search_cache.py",  # 65 s
    "tests/integration/test_backlog_metric.py",  # 56 s
    "tests/e2e/test_ocr_search.py",  # 54 s
    "tests/integration/test_embed_server.py",  # 33 s
    "tests/integration/test_embed_bench.py",  # 33 s
    "tests/integration/test_worker_supervisor.py",  # 29 s
    "tests/integration/test_model_fetch.py",  # 26 s
    "tests/integration/test_model_adapters.py",  # 26 s
)
"""Test modules (or packages that are one unit) by their serial time, slowest first."""

GROUPED_PACKAGES = ("tests/clients",)
"""Packages whose modules are one unit of work (a package-scoped stack)."""


def unit_of(nodeid: str) -> str:
    """The unit of work of a test: its package when that is in ``GROUPED_PACKAGES``, else its
    module (the part of the node id before ``::``)."""
    module = nodeid.split("::", 1)[0]
    for package in GROUPED_PACKAGES:
        if module.startswith(package + "/"):
            return package
    return module


def slowest_first(items: list[pytest.Item]) -> None:
    """Sort ``items`` in place: the units of ``SLOWEST_FIRST`` in its order, then the rest in
    their collection order (a stable sort; a unit's own tests keep their order)."""
    rank = {unit: i for i, unit in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(unit_of(getattr(item, "nodeid", "")), len(rank)))


def make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's ``loadfile`` scheduling with ``unit_of`` as its scope, in collection order (which
    ``slowest_first`` made) instead of xdist's "most tests first" reordering."""
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    config.option.loadscopereorder = False
    return UnitScheduling(config, log)
