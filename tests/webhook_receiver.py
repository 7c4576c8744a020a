"""A local webhook receiver for the tests: an HTTP server on 127.0.0.1 that verifies every request
with the ``standardwebhooks`` library (the receivers' reference implementation) and answers
from a script (``answers``: status codes used in turn, then ``default``).

Run in a thread (``Receiver``) or as its own process (``python -m tests.webhook_receiver PORT
SECRET LOG``, one JSON line per request in LOG), so an end-to-end test can kill it and start it
again on the same port.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks import Webhook


@dataclass
class Received:
    """One request: its headers, body, whether the signature verified, what was answered."""

    headers: dict[str, str]
    body: bytes
    verified: bool
    status: int
    at: float = field(default_factory=time.time)

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    def payload(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """The server in a daemon thread. ``secrets``: the secrets a request may be signed with."""

    def __init__(self, secrets: list[str] | None = None, *, port: int = 0, default: int = 200) -> None:
        self.secrets = list(secrets or [])
        self.answers: list[int] = []
        self.default = default
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver.answer(headers, body)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def verify(self, headers: dict[str, str], body: bytes) -> bool:
        """Whether any of ``secrets`` verifies the request (Standard Webhooks, 5-minute window)."""
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
                return True
            except Exception:
                continue
        return False

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            status = self.answers.pop(0) if self.answers else self.default
            self.received.append(Received(headers, body, self.verify(headers, body), status))
        return status

    def delivered(self) -> list[Received]:
        """The requests answered 2xx."""
        with self._lock:
            return [r for r in self.received if 200 <= r.status < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    """``python -m tests.webhook_receiver PORT SECRET LOG [STATUS]``: serve until killed."""
    port, secret, log = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    status = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    receiver = Receiver([secret], port=port, default=status)
    with log.open("a") as out:
        seen = 0
        while True:
            time.sleep(0.05)
            for item in receiver.received[seen:]:
                line = {
                    "id": item.webhook_id,
                    "verified": item.verified,
                    "status": item.status,
                    "at": item.at,
                }
                out.write(json.dumps({**line, "payload": item.payload()}) + "\n")
                out.flush()
            seen = len(receiver.received)


if __name__ == "__main__":
    main()
