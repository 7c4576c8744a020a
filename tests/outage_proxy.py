"""A loopback TCP proxy that a test puts between a worker and one of its dependencies (the
embedding service, the search cluster), to take the dependency down and up again cheaply and
to count what reaches it while it is down.

- **up**: every connection is piped to the upstream (one thread per direction);
- **down**: the live connections are cut, and every new one is accepted, its first line read
  (the HTTP request line, e.g. ``POST /v1/embed/image-batch HTTP/1.1``; at most 1 s) and
  recorded in ``refused``, then closed without an answer: the client sees the server hang up,
  as it does when a service dies behind a load balancer.

Used by ``tests/e2e/test_outages.py`` and ``tests/bench_outage.py``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Refused:
    """One connection that arrived while the proxy was down: when (monotonic) and its first line."""

    at: float
    request_line: str

    @property
    def is_probe(self) -> bool:
        """A health call (a circuit breaker's probe), not work."""
        return self.request_line.startswith("GET /health") or self.request_line.startswith("GET /_cluster")


class OutageProxy:
    """``http://127.0.0.1:<port>`` piped to ``upstream`` (``http://host:port``); ``down()`` and
    ``up()`` switch it, ``refused`` lists what arrived while down. Thread-safe; ``close()`` ends it."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._down = False
        self._live: set[socket.socket] = set()
        self._closed = threading.Event()
        self.refused: list[Refused] = []
        self.passed = 0
        self.down_at: float | None = None
        self.up_at: float | None = None
        threading.Thread(target=self._accept_loop, name=f"outage-proxy-{self.port}", daemon=True).start()

    # -- control ------------------------------------------------------------------------------

    @property
    def is_down(self) -> bool:
        return self._down

    def down(self) -> None:
        """Take the dependency down: cut every live connection, refuse new ones."""
        with self._lock:
            self._down = True
            self.down_at, self.up_at = time.monotonic(), None
            live, self._live = self._live, set()
        for sock in live:
            _shut(sock)

    def up(self) -> None:
        with self._lock:
            self._down = False
            self.up_at = time.monotonic()

    def close(self) -> None:
        self.down()
        self._closed.set()
        self._listener.close()

    def refused_since(self, since: float) -> list[Refused]:
        with self._lock:
            return [r for r in self.refused if r.at >= since]

    # -- the loop -----------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            target = self._refuse if self._down else self._pipe
            threading.Thread(target=target, args=(client,), daemon=True).start()

    def _refuse(self, client: socket.socket) -> None:
        client.settimeout(1.0)
        data = b""
        with contextlib.suppress(OSError):
            while b"\r\n" not in data and len(data) < 4096:
                chunk = client.recv(4096)
                if not chunk:
                    break
                data += chunk
        line = data.split(b"\r\n", 1)[0].decode("latin-1")
        with self._lock:
            self.refused.append(Refused(time.monotonic(), line))
        _shut(client)

    def _pipe(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _shut(client)
            return
        server.settimeout(None)
        with self._lock:
            if self._down:  # went down while connecting
                _shut(client)
                _shut(server)
                return
            self._live.update((client, server))
            self.passed += 1
        threading.Thread(target=self._pump, args=(server, client), daemon=True).start()
        self._pump(client, server)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        """Copy ``source`` to ``sink`` until either side ends; then end both."""
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            _shut(source)
            _shut(sink)
            with self._lock:
                self._live.difference_update((source, sink))


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
