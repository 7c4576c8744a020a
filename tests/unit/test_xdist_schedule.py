"""How ``make test`` spreads the suite over pytest-xdist workers (tests/xdist_schedule.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from tests import xdist_schedule
from tests.xdist_schedule import SLOWEST_FIRST, slowest_first, unit_of

ROOT = Path(__file__).resolve().parents[1]


def test_a_module_is_a_unit_but_the_clients_package_is_one() -> None:
    assert unit_of("tests/e2e/test_outages.py::test_1_pause") == "tests/e2e/test_outages.py"
    assert unit_of("tests/clients/test_python_client.py::test_flow") == "tests/clients"
    assert unit_of("tests/clients/test_java_client.py::test_x[a]") == "tests/clients"
    assert unit_of("tests/clientside/test_x.py::t") == "tests/clientside/test_x.py"


def test_the_slowest_units_come_first_and_the_rest_keep_their_order() -> None:
    ids = [
        "tests/unit/test_a.py::t1",
        "tests/clients/test_python_client.py::flow",
        "tests/unit/test_a.py::t2",
        "tests/e2e/test_outages.py::test_1",
        "tests/browser/test_b.py::t",
        "tests/e2e/test_outages.py::test_2",
    ]
    items = [SimpleNamespace(nodeid=i) for i in ids]
    slowest_first(items)  # type: ignore[arg-type]
    assert [i.nodeid for i in items] == [
        "tests/e2e/test_outages.py::test_1",
        "tests/e2e/test_outages.py::test_2",
        "tests/clients/test_python_client.py::flow",
        "tests/unit/test_a.py::t1",
        "tests/unit/test_a.py::t2",
        "tests/browser/test_b.py::t",
    ]


def test_every_listed_unit_exists_once() -> None:
    """A renamed module would silently lose its place (balance only, but unseen)."""
    assert len(set(SLOWEST_FIRST)) == len(SLOWEST_FIRST)
    for unit in SLOWEST_FIRST:
        assert (ROOT.parent / unit).exists(), unit
    assert set(xdist_schedule.GROUPED_PACKAGES) <= set(SLOWEST_FIRST)
