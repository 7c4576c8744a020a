"""A local webhook receiver for the tests: an HTTP server on 127.0.0.1 that verifies every request
with the ``standardwebhooks`` library (the receivers' reference implementation) and answers
from a script (``answers``: status codes used in turn, then ``default``).

Run in a thread (``Receiver``) or as its own process (``python -m tests.webhook_receiver PORT
SECRET LOG``, one JSON line per request in LOG), so an end-to-end test can kill it and start it
again on the same port.
"""

from __future__ import annotations

import argparse
import json
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

    def __init__(
        self, secrets: list[str] | None = None, *, port: int = 0, default: int = 200, delay_s: float = 0.0
    ) -> None:
        self.secrets = list(secrets or [])
        self.delay_s = delay_s
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
                time.sleep(receiver.delay_s)  # a slow receiver: the answer comes after this
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True  # restarted on the same port at once
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
    """``python -m tests.webhook_receiver PORT SECRET LOG [--answers 500,500] [--default 200]
    [--delay S]``: serve until killed, one JSON line per request in LOG (appended)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("secret")
    parser.add_argument("log", type=Path)
    parser.add_argument("--answers", default="")
    parser.add_argument("--default", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    receiver = Receiver([args.secret], port=args.port, default=args.default, delay_s=args.delay)
    receiver.answers = [int(a) for a in args.answers.split(",") if a]
    with args.log.open("a") as out:
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
