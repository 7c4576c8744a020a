"""What ``scenedex worker`` runs: dramatiq's CLI in a child process, started again when it stops
because one of its worker processes died, with a backoff.

Dramatiq alone (2.x, ``dramatiq/cli.py``, ``main``) does not restart anything. Its main process
forks ``--processes`` worker processes (and the middleware's fork processes: the Prometheus
exposition), then polls them. When one exits while the main process received no signal (killed
by the OOM killer, a native crash, a ``SystemExit``), it logs ``Worker with PID N exited
unexpectedly (code -9). Shutting down...`` (CRITICAL), sends SIGTERM to every other process (their
running messages get ``--worker-shutdown-timeout`` to finish, then go back to their queue), waits
for them and exits with the dead process's exit code, or ``RET_KILLED`` (1) when a signal ended it.
So one dead process stops every worker of the host. The dead process's own messages are
unacknowledged: the Redis broker re-queues them once its heartbeat is older than
``SCENEDEX_WORKER__HEARTBEAT_TIMEOUT_MS`` (any running worker's maintenance does it), and the
coordinator's delivery counter fails a message that keeps killing its worker as a poison item.

Its other exit codes: 0 after SIGTERM or SIGINT (sent on as SIGTERM; a second one kills the
worker processes, which then exit ``RET_KILLED``), ``RET_IMPORT`` (2: a module failed to import,
or a bad argument), ``RET_CONNECT`` (3: the broker was unreachable at a worker's start),
``RET_PIDFILE`` (4). SIGHUP stops the worker processes and re-executes the main process in place
(same pid); ``--watch DIR`` (development, needs watchdog) sends itself SIGHUP on a source change.
Neither restarts a process that died.

``supervise`` starts the main process in a process group of its own (a terminal's Ctrl-C reaches
the supervisor only, which sends it on once) and waits for it:

- SIGTERM or SIGINT to the supervisor is sent on as SIGTERM (a second one kills the running
  messages, as with dramatiq alone), and once the main process is over the supervisor exits
  with its code, without restarting (0 when the signal came while it waited to restart); SIGHUP
  is sent on as is (dramatiq's reload).
- Exit 0 without such a signal (someone stopped the main process itself): the supervisor exits 0.
- Exit ``RET_IMPORT``, ``RET_PIDFILE`` or ``CANNOT_START`` (78: a model that cannot be loaded,
  ``scenedex.tasks.runtime``): no restart can fix that; the supervisor exits with the same code.
- The main process itself ended by a signal: its worker processes may be left running, so the
  supervisor does not start a second fleet beside them; it exits 128 + the signal number (a
  container's restart policy then starts everything afresh).
- Any other code (``RET_KILLED``: a worker process died; ``RET_CONNECT``): one ERROR line naming
  the code, then a new main process after ``RESTART_DELAY_S``, doubled after each restart up to
  ``MAX_RESTART_DELAY_S`` and back to the first delay once a main process ran ``STABLE_AFTER_S``.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from types import FrameType

from dramatiq.cli import RET_CONNECT, RET_IMPORT, RET_KILLED, RET_OK, RET_PIDFILE

from scenedex.worker.runtime import CANNOT_START

log = logging.getLogger("scenedex.worker.supervisor")

RESTART_DELAY_S = 1.0
MAX_RESTART_DELAY_S = 60.0
STABLE_AFTER_S = 300.0
"""A main process that ran this long before it stopped was no crash loop: the delay starts over."""
FINAL_CODES = {
    RET_IMPORT: "a module failed to import or an argument is wrong",
    RET_PIDFILE: "the pid file is held or cannot be written",
    CANNOT_START: "a worker process cannot start (see its 'worker cannot start' line)",
}
"""Exit codes of dramatiq's main process that a restart cannot fix, and what they mean."""
RESTARTED_CODES = {
    RET_KILLED: "a worker process died, e.g. killed by the OOM killer (see dramatiq's CRITICAL line)",
    RET_CONNECT: "the broker was unreachable when a worker process started",
}
FORWARDED = {signal.SIGTERM: signal.SIGTERM, signal.SIGINT: signal.SIGTERM, signal.SIGHUP: signal.SIGHUP}
"""What the supervisor sends to dramatiq's main process for each signal it receives."""


def supervise(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    delay_s: float = RESTART_DELAY_S,
    max_delay_s: float = MAX_RESTART_DELAY_S,
    stable_after_s: float = STABLE_AFTER_S,
) -> int:
    """Run ``argv`` (dramatiq's CLI) until it stops for good (see the module's docstring); returns
    the exit code for the supervisor. Installs handlers for SIGTERM, SIGINT and SIGHUP (restored
    on return), so call it from the main thread."""
    stopping = told = False
    main: subprocess.Popen[bytes] | None = None

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping, told
        received = signal.Signals(signum)
        if received != signal.SIGHUP:
            stopping = True
        if main is not None and main.poll() is None:
            main.send_signal(FORWARDED[received])
            told = True

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED}
    delay, restarts = delay_s, 0
    try:
        while True:
            started, told = time.monotonic(), False
            main = subprocess.Popen(list(argv), env=None if env is None else dict(env), process_group=0)
            if stopping and not told:  # the signal came while this main process was being started
                main.send_signal(signal.SIGTERM)
            code = main.wait()
            ran = time.monotonic() - started
            if stopping:
                return code if code >= 0 else 128 - code
            if code == RET_OK:
                log.info("dramatiq stopped (exit code 0) without a signal to the supervisor: not restarted")
                return RET_OK
            if code < 0:
                log.critical(
                    "dramatiq's main process was killed by %s: not restarted (its worker processes "
                    "may still run)",
                    signal.Signals(-code).name,
                )
                return 128 - code
            if code in FINAL_CODES:
                log.critical("dramatiq exited with code %d (%s): not restarted", code, FINAL_CODES[code])
                return code
            if ran >= stable_after_s:
                delay = delay_s
            restarts += 1
            log.error(
                "dramatiq exited with code %d (%s) after %.0f s; restarting it in %.0f s (restart %d)",
                code,
                RESTARTED_CODES.get(code, "unexpected exit"),
                ran,
                delay,
                restarts,
            )
            deadline = time.monotonic() + delay
            while not stopping and time.monotonic() < deadline:
                time.sleep(0.1)
            if stopping:
                return RET_OK
            delay = min(delay * 2, max_delay_s)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
