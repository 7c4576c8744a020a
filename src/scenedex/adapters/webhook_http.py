"""Sending a webhook: Standard Webhooks signatures and one POST through the SSRF guard.

The signature (Standard Webhooks 1.0, signed with the ``standardwebhooks`` library):
``webhook-signature: v1,<base64 HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>``,
the key being the base64 after ``whsec_``; during a secret rotation's overlap both secrets sign
and the header carries both signatures, space separated. ``webhook-timestamp`` is Unix seconds
at the attempt (so a retry is not refused as too old by a receiver's 5-minute tolerance);
``webhook-id`` is the delivery's and never changes.

The URL is checked as ``adapters.url_fetch`` checks a download (``checked_address``): https
only, every resolved address public (unless ``allow_private``, which also allows http), the
connection made to the checked address with the URL's host as TLS server name and ``Host``, so a
DNS answer changed since the check cannot send it elsewhere; redirects are not followed.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import httpx
from standardwebhooks.webhooks import Webhook

from scenedex.adapters.url_fetch import UrlFetchError, checked_address


def sign(secrets: list[str], webhook_id: str, timestamp: datetime, body: bytes) -> str:
    """The ``webhook-signature`` header: one ``v1,<base64>`` per secret, space separated."""
    return " ".join(Webhook(secret).sign(webhook_id, timestamp, body) for secret in secrets)


@dataclass(frozen=True)
class PostResult:
    """An attempt's answer: ``status`` (None: no answer), ``error`` (why it failed), ``refused``
    (the URL is not allowed: nothing was sent)."""

    status: int | None
    error: str | None = None
    refused: bool = False


class WebhookPoster:
    """POSTs webhook bodies; ``timeout_s`` bounds the connect and each read; ``allow_private``
    (``SCENEDEX_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES``) allows http and private addresses."""

    def __init__(self, *, timeout_s: float, allow_private: bool) -> None:
        self.timeout_s = timeout_s
        self.allow_private = allow_private
        self._client = httpx.Client(follow_redirects=False, timeout=timeout_s, trust_env=False)

    def check(self, url: str) -> str:
        """The address ``url`` would be sent to; raises ``UrlFetchError`` ``url_not_allowed``
        (scheme, missing host, a private address) or ``fetch_failed`` (unresolvable)."""
        parts = urlsplit(url)
        schemes = ("http", "https") if self.allow_private else ("https",)
        if parts.scheme not in schemes:
            raise UrlFetchError("url_not_allowed", f"webhook URLs must be {' or '.join(schemes)}")
        host = (parts.hostname or "").lower()
        if not host:
            raise UrlFetchError("url_not_allowed", "the webhook URL has no host")
        if parts.username or parts.password:
            raise UrlFetchError("url_not_allowed", "the webhook URL must not carry credentials")
        try:
            infos = socket.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
        except OSError as error:
            raise UrlFetchError("fetch_failed", f"cannot resolve {host}: {error}", transient=True) from None
        return checked_address(host, [str(info[4][0]) for info in infos], self.allow_private)

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> PostResult:
        """POST ``body`` with ``headers`` to ``url`` through the guard; never raises for the
        receiver's failures (they are the result)."""
        try:
            address = self.check(url)
        except UrlFetchError as error:
            return PostResult(None, str(error), refused=error.code == "url_not_allowed")
        parts = urlsplit(url)
        netloc = f"[{address}]" if ":" in address else address
        if parts.port:
            netloc += f":{parts.port}"
        target = parts._replace(netloc=netloc).geturl()
        sent = {**headers, "Host": parts.netloc, "content-type": "application/json"}
        try:
            with self._client.stream(  # the answer's body is not read
                "POST", target, content=body, headers=sent, extensions={"sni_hostname": parts.hostname or ""}
            ) as response:
                status = response.status_code
        except httpx.TimeoutException as error:
            return PostResult(None, f"timed out after {self.timeout_s} s ({type(error).__name__})")
        except httpx.HTTPError as error:
            return PostResult(None, f"{type(error).__name__}: {error}"[:500])
        return PostResult(status, None if 200 <= status < 300 else f"answered {status}")
