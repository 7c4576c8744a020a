"""HMAC request signing between scenedex services (the embedding service and its clients).

The scheme (documented in the README so any client can sign):

- ``X-Scenedex-Timestamp``: the request time, integer unix seconds.
- ``X-Scenedex-Signature``: lowercase hex HMAC-SHA256, keyed with the shared secret (UTF-8), of
  ``"{METHOD}\\n{path}\\n{sha256 hex of the body}\\n{timestamp}"``: method upper case, path
  without scheme, host or query (``/v1/embed/image``), the body exactly as sent (the empty
  string's digest for no body).

The server accepts a timestamp within ``window_s`` of its clock and refuses a signature it
has already accepted inside that window (replay). Comparison is constant time
(``hmac.compare_digest``). This is the shape of AWS SigV4 and Stripe webhook signatures, reduced
to what two services sharing one secret need.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

TIMESTAMP_HEADER = "X-Scenedex-Timestamp"
SIGNATURE_HEADER = "X-Scenedex-Signature"


def canonical_request(method: str, path: str, body: bytes, timestamp: int | str) -> str:
    """The signed string: ``"{METHOD}\\n{path}\\n{sha256 hex of body}\\n{timestamp}"``."""
    return f"{method.upper()}\n{path}\n{hashlib.sha256(body).hexdigest()}\n{timestamp}"


def sign(secret: str, method: str, path: str, body: bytes, timestamp: int | str) -> str:
    """Hex HMAC-SHA256 of ``canonical_request`` with ``secret`` (64 lowercase hex digits)."""
    message = canonical_request(method, path, body, timestamp).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(
    secret: str, method: str, path: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    """The two auth headers for a request sent now (or at ``now``, unix seconds)."""
    timestamp = int(time.time() if now is None else now)
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, method, path, body, timestamp),
    }


class SignatureError(Exception):
    """A request's signature is missing, malformed, outside the time window, wrong or replayed."""


class SignatureVerifier:
    """Checks the two headers of a request; thread-safe.

    ``window_s``: largest accepted ``|now - timestamp|`` in seconds. Accepted signatures are
    remembered until they leave the window, so a replay inside it is refused; the memory is per
    process (replicas behind a load balancer each refuse replays they have seen; a replay sent
    to another replica inside the window is not detected)."""

    def __init__(self, secret: str, *, window_s: int = 120, clock: Callable[[], float] = time.time) -> None:
        if not secret:
            raise ValueError("an empty HMAC secret signs nothing")
        self._secret = secret
        self._window_s = window_s
        self._clock = clock
        # Accepted signature -> when it was accepted, oldest first. A signature stays valid
        # while its timestamp is inside the window, at most 2 windows after it is accepted
        # (a timestamp up to one window in the future), so it is remembered that long.
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def verify(
        self, method: str, path: str, body: bytes, timestamp: str | None, signature: str | None
    ) -> None:
        """Return if the request is authentic and fresh; else raise ``SignatureError`` naming
        the reason (missing header, bad timestamp, expired, wrong signature, replay)."""
        if not timestamp or not signature:
            raise SignatureError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
        try:
            sent_at = int(timestamp)
        except ValueError:
            raise SignatureError(f"{TIMESTAMP_HEADER} must be integer unix seconds") from None
        now = self._clock()
        if abs(now - sent_at) > self._window_s:
            raise SignatureError(
                f"request timestamp {sent_at} is outside the {self._window_s} s window of the server "
                f"clock ({int(now)}): expired, or the clocks differ"
            )
        expected = sign(self._secret, method, path, body, sent_at)
        if not hmac.compare_digest(expected, signature.strip().lower()):
            raise SignatureError("signature does not match the request")
        with self._lock:
            while self._seen and now - next(iter(self._seen.values())) > 2 * self._window_s:
                self._seen.popitem(last=False)
            if expected in self._seen:
                raise SignatureError("signature already used (replayed request)")
            self._seen[expected] = now
