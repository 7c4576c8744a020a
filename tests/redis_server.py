"""A ``redis-server`` of a test module's own (issue 27), for tests that take Redis down: they must
never stop the Redis other suites (or another copy of this suite) use on the same machine.

The server listens on 127.0.0.1 on a free port (``tests.pg_cluster.free_port``), keeps nothing
(``--save ""``, ``--appendonly no``: a restart starts empty, as a Redis without persistence does)
and works in a temporary folder that ``private_redis`` removes. It runs in its own session and is
stopped by its process id, nothing else."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.pg_cluster import free_port


class RedisServer:
    """``redis-server`` on ``port`` in ``directory`` (its log: ``redis.log``); ``start`` and
    ``stop`` may be called again (same port, empty again after a stop)."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and wait until it answers PING; ``AssertionError`` with its log if it
        exits or does not answer within ``timeout`` seconds."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        command = [
            "redis-server",
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", str(self.log_path),
            "--daemonize", "no",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError(f"redis-server exited {self.proc.returncode}:\n{self._log()}")
                try:
                    if client.ping():
                        return
                except redis.exceptions.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"redis-server not answering after {timeout} s:\n{self._log()}")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (no save: nothing is configured to be kept), SIGKILL after ``timeout`` s."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def _log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text()[-3000:]
        return "(no log)"


@contextmanager
def private_redis() -> Iterator[RedisServer]:
    """A started ``RedisServer`` in a new temporary folder; stopped and the folder removed on
    exit. Fails (``AssertionError``) when ``redis-server`` is not installed."""
    assert shutil.which("redis-server"), "redis-server not found (apt-get install redis-server)"
    directory = Path(tempfile.mkdtemp(prefix="scenedex-redis-"))
    server = RedisServer(directory, free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
