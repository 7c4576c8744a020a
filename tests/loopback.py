"""A loopback HTTP server for tests that fetch URLs (the URL fetch guard, video sources)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class QuietServer(http.server.ThreadingHTTPServer):
    """A threading server that does not print the tracebacks of clients that hang up on
    purpose (the size cap and timeout tests close the connection mid-body)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served on 127.0.0.1 (a free port) in a thread; yields ``http://127.0.0.1:<port>``."""
    httpd = QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
