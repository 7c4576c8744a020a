"""The unit tier's guard (tests/unit/conftest.py, issue 27) refuses process starts and sees model
library imports, directly and through the hooks of a unit test run in this process."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.conftest import ProcessStartRefused, watch

pytest_plugins = ["pytester"]


def test_every_way_to_start_a_process_is_refused_and_noted() -> None:
    with watch() as found:
        with pytest.raises(ProcessStartRefused):
            subprocess.run(["true"], check=False)
        with pytest.raises(ProcessStartRefused):
            os.system("true")
        with pytest.raises(ProcessStartRefused):
            os.posix_spawn("/bin/true", ["true"], os.environ)
        with pytest.raises(ProcessStartRefused):
            multiprocessing.get_context("fork").Process(target=print).start()
        with pytest.raises(ProcessStartRefused):
            multiprocessing.get_context("spawn").Process(target=print).start()
        with contextlib.suppress(ProcessStartRefused):  # caught by the code under test: still noted
            subprocess.run(["true"], check=False)
    assert len(found) == 6
    assert all("started a process" in line for line in found)
    assert "['true']" in found[0]


def test_a_first_import_of_a_listed_library_is_noted_and_an_earlier_one_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fake_model_library.py").write_text("WEIGHTS = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fake_model_library", raising=False)
    with watch(("fake_model_library", "json")) as found:
        import json  # noqa: F401  (imported before the block)

        import fake_model_library  # noqa: F401
    monkeypatch.delitem(sys.modules, "fake_model_library")
    assert found == [
        "imported fake_model_library: a unit test imports no model library (move it to tests/integration)"
    ]


def test_the_hooks_fail_a_unit_test_that_starts_a_process(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "from tests.unit.conftest import pytest_make_collect_report  # noqa: F401\n"
        "from tests.unit.conftest import pytest_runtest_call, pytest_runtest_setup  # noqa: F401\n"
        "from tests.unit.conftest import pytest_runtest_teardown  # noqa: F401\n"
    )
    pytester.makepyfile(
        test_rules="""
        import subprocess

        def test_quiet():
            pass

        def test_starts_a_process():
            try:
                subprocess.run(["true"])
            except Exception:
                pass
        """,
        test_collected="""
        import os

        try:  # caught on import: still a collection error
            os.system("true")
        except Exception:
            pass
        """,
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--continue-on-collection-errors")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    output = result.stdout.str()
    assert "started a process (subprocess._fork_exec ['true'])" in output
    assert "test_collected.py: started a process (os.system 'true')" in output
