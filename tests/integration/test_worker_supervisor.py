"""``scenedex.worker.supervisor``: which exits of dramatiq's main process are restarted, and how
signals reach it. The supervisor runs in a subprocess (it installs signal handlers) on a small
stand-in for dramatiq's CLI that records each start and what it received; the real fleet is in
``tests/integration/test_worker_process.py``."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dramatiq import cli as dramatiq_cli

from scenedex.worker import supervisor
from scenedex.worker.runtime import CANNOT_START

STAND_IN = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path

    root = Path(sys.argv[1])
    codes = [int(c) for c in sys.argv[2].split(",")]
    runs = root / "runs"
    runs.write_text(runs.read_text() + "x" if runs.exists() else "x")
    run = len(runs.read_text())
    with (root / "groups").open("a") as f:
        f.write(f"{os.getpgid(0)}\\n")

    def received(signum, frame):
        with (root / "signals").open("a") as f:
            f.write(f"{signal.Signals(signum).name}\\n")
        if signum != signal.SIGHUP:
            sys.exit(0)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, received)
    code = codes[min(run, len(codes)) - 1]
    if code == -9:
        os.kill(os.getpid(), signal.SIGKILL)
    if code >= 0:
        sys.exit(code)
    (root / "ready").write_text(str(run))
    while os.getppid() != 1:  # -1: run until a signal (or until orphaned: never outlive a test)
        time.sleep(0.05)
    """
)


class Supervised:
    """A supervisor on the stand-in, whose successive starts exit with ``codes`` (the last one
    repeats; -1 runs until a signal, -9 kills itself with SIGKILL)."""

    def __init__(self, root: Path, codes: list[int], delay_s: float = 0.05) -> None:
        self.root = root
        (root / "stand_in.py").write_text(STAND_IN)
        argv = [sys.executable, str(root / "stand_in.py"), str(root), ",".join(map(str, codes))]
        code = textwrap.dedent(
            f"""
            import logging, sys
            from scenedex.worker.supervisor import supervise
            logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
            sys.exit(supervise({argv!r}, delay_s={delay_s}, max_delay_s=60))
            """
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        _STARTED.append(self)

    def kill(self) -> None:
        """SIGKILL the supervisor's process group and every stand-in's group it started."""
        groups = {self.proc.pid, *(int(g) for g in self.read("groups").split())}
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def read(self, name: str) -> str:
        path = self.root / name
        return path.read_text() if path.exists() else ""

    def runs(self) -> int:
        return len(self.read("runs"))

    def wait_for(self, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not (self.root / name).exists():
            assert time.monotonic() < deadline and self.proc.poll() is None, self.proc.poll()
            time.sleep(0.05)

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        try:
            _, stderr = self.proc.communicate(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.returncode, stderr


_STARTED: list[Supervised] = []


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test() -> Iterator[None]:
    """A test that fails before ``finish`` (a wait that timed out on a loaded machine) must not
    leave a supervisor restarting its stand-in for ever."""
    yield
    while _STARTED:
        _STARTED.pop().kill()


def test_the_exit_codes_it_reads_are_dramatiqs() -> None:
    assert (dramatiq_cli.RET_OK, dramatiq_cli.RET_KILLED, dramatiq_cli.RET_IMPORT) == (0, 1, 2)
    assert (dramatiq_cli.RET_CONNECT, dramatiq_cli.RET_PIDFILE) == (3, 4)
    assert CANNOT_START not in {0, 1, 2, 3, 4}
    assert set(supervisor.FINAL_CODES) == {2, 4, CANNOT_START}


def test_a_dead_worker_process_is_restarted_with_a_growing_delay(tmp_path: Path) -> None:
    run = Supervised(tmp_path, [1, 1, 3, 0])
    code, log = run.finish()
    assert code == 0 and run.runs() == 4, log
    restarts = [line for line in log.splitlines() if "restarting it in" in line]
    assert len(restarts) == 3, log
    assert restarts[0].startswith("ERROR dramatiq exited with code 1 (a worker process died"), log
    assert "code 3 (the broker was unreachable" in restarts[2] and "(restart 3)" in restarts[2], log
    assert "not restarted" in log  # the final exit 0


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        pytest.param([CANNOT_START], CANNOT_START, id="model-load-failure"),
        pytest.param([2], 2, id="import-error"),
        pytest.param([4], 4, id="pidfile"),
        pytest.param([-9], 128 + 9, id="main-process-killed"),
        pytest.param([0], 0, id="stopped-directly"),
    ],
)
def test_what_a_restart_cannot_fix_stops_the_supervisor(
    tmp_path: Path, codes: list[int], expected: int
) -> None:
    run = Supervised(tmp_path, codes)
    code, log = run.finish()
    assert code == expected and run.runs() == 1, log
    assert "restarting" not in log, log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_is_sent_on_once_as_sigterm_and_not_restarted(
    tmp_path: Path, signum: signal.Signals
) -> None:
    run = Supervised(tmp_path, [-1])
    run.wait_for("ready")
    os.kill(run.proc.pid, signum)
    code, log = run.finish()
    assert code == 0 and run.runs() == 1, log
    assert run.read("signals").split() == ["SIGTERM"]
    # dramatiq's main process has a process group of its own: a terminal's Ctrl-C reaches it
    # through the supervisor only, once
    assert run.read("groups").split() != [str(run.proc.pid)]  # the supervisor leads its own


def test_sighup_is_sent_on_and_the_main_process_keeps_running(tmp_path: Path) -> None:
    run = Supervised(tmp_path, [-1])
    run.wait_for("ready")
    os.kill(run.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 30
    while "SIGHUP" not in run.read("signals") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.proc.poll() is None
    os.kill(run.proc.pid, signal.SIGTERM)
    code, log = run.finish()
    assert code == 0 and run.read("signals").split() == ["SIGHUP", "SIGTERM"], log


def test_a_stop_while_waiting_to_restart_ends_the_wait(tmp_path: Path) -> None:
    run = Supervised(tmp_path, [1], delay_s=600)
    run.wait_for("runs")
    time.sleep(0.5)  # the supervisor is in its delay now (or about to be: the signal is kept)
    os.kill(run.proc.pid, signal.SIGTERM)
    code, log = run.finish(timeout=60)  # far below the 600 s delay
    assert code == 0 and run.runs() == 1, log
    assert "restarting it in 600 s (restart 1)" in log, log
