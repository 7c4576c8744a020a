"""Fetching an http(s) URL from outside through an SSRF guard: the embedding service's images
given by URL (``api.embed_fetch``) and the video sources given by URL (``POST /v1/videos``,
downloaded by the ``ingest_video`` worker) both go through this one copy.

The guard (OWASP SSRF Prevention Cheat Sheet: allow-list, resolve, refuse internal addresses,
no redirects): a URL's scheme must be in ``schemes`` and its host in ``allowed_hosts`` (exact,
lower case); every address the host resolves to must be public (global unicast: not private,
loopback, link-local, multicast, reserved or unspecified) unless ``allow_private_addresses``;
the connection goes to the checked address (the TLS server name and ``Host`` header stay the
URL's host), so a DNS answer that changes between check and connect cannot redirect it;
redirects are not followed. Bodies are streamed and cut at ``max_bytes``; each connect and read
waits at most ``timeout_s``, the whole fetch ``total_timeout_s`` (default: ``timeout_s``).

Failures are ``UrlFetchError`` with a ``code`` and whether retrying may help (``transient``:
timeouts, connection errors, 408/429/5xx answers, a DNS server failure); a refused URL or
address, a 4xx answer, a redirect or a body over the limit are permanent.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

import httpx

from scenedex.domain.errors import BadInputError, TransientError


class UrlFetchError(Exception):
    """A URL cannot be fetched. ``code``: ``url_not_allowed`` (scheme, host, private address),
    ``not_found`` (404), ``too_large`` (over ``max_bytes``), ``fetch_failed`` (an error answer,
    a redirect, a connection or DNS failure), ``fetch_timeout``."""

    def __init__(self, code: str, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.transient = transient


@dataclass(frozen=True)
class UrlPolicy:
    """What may be fetched, and how much of it."""

    max_bytes: int
    timeout_s: float
    allowed_hosts: tuple[str, ...] = ()
    allow_private_addresses: bool = False
    total_timeout_s: float | None = None
    schemes: tuple[str, ...] = ("http", "https")
    hosts_setting: str = "the allowed hosts"
    """The setting that lists ``allowed_hosts``, named when a host is refused."""

    def check(self, url: str) -> SplitResult:
        """The parts of ``url`` when its scheme and host are allowed (no DNS lookup); raises
        ``UrlFetchError`` ``url_not_allowed``."""
        parts = urlsplit(url)
        if parts.scheme not in self.schemes:
            raise UrlFetchError(
                "url_not_allowed",
                f"{parts.scheme or 'a schemeless'} URL is not fetched (only {', '.join(self.schemes)})",
            )
        host = (parts.hostname or "").lower()
        if not host or host not in self.allowed_hosts:
            raise UrlFetchError("url_not_allowed", f"host {host!r} is not in {self.hosts_setting}")
        return parts


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast IP (``ipaddress``'s ``is_global``, minus multicast);
    IPv4-mapped IPv6 addresses are judged by their IPv4 address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


_TRANSIENT_STATUS = frozenset({408, 425, 429})


class GuardedFetcher:
    """Fetches URLs under ``policy`` (read at each fetch, so it may be replaced); shares one
    ``httpx.AsyncClient`` (bound to the event loop that first uses it). ``close()`` when done."""

    def __init__(self, policy: UrlPolicy) -> None:
        self.policy = policy
        self._client = httpx.AsyncClient(follow_redirects=False, timeout=policy.timeout_s, trust_env=False)

    async def close(self) -> None:
        await self._client.aclose()

    async def fetch(self, url: str) -> bytes:
        """The bytes at ``url`` (at most ``max_bytes``); raises ``UrlFetchError``."""
        chunks: list[bytes] = []
        await self._bounded(url, chunks.append)
        return b"".join(chunks)

    async def download(self, url: str, path: Path) -> int:
        """Stream the body at ``url`` into the file ``path`` (created or truncated; left
        partial on an error); returns its size. Raises ``UrlFetchError``."""
        with path.open("wb") as file:
            return await self._bounded(url, file.write)

    async def _bounded(self, url: str, write: Callable[[bytes], object]) -> int:
        limit = self.policy.total_timeout_s or self.policy.timeout_s
        try:
            return await asyncio.wait_for(self._stream(url, write), limit)
        except TimeoutError:
            raise UrlFetchError(
                "fetch_timeout", f"fetching {url} took longer than {limit} s", transient=True
            ) from None

    async def _stream(self, url: str, write: Callable[[bytes], object]) -> int:
        policy = self.policy
        parts = policy.check(url)
        host = (parts.hostname or "").lower()
        address = await self._checked_address(host, parts.port or (443 if parts.scheme == "https" else 80))
        netloc = f"[{address}]" if ":" in address else address
        if parts.port:
            netloc += f":{parts.port}"
        target = parts._replace(netloc=netloc).geturl()
        headers = {"Host": parts.netloc.rsplit("@", 1)[-1]}
        too_large = f"{url} is larger than {policy.max_bytes} bytes"
        size = 0
        try:
            async with self._client.stream(
                "GET", target, headers=headers, extensions={"sni_hostname": host}, timeout=policy.timeout_s
            ) as response:
                status = response.status_code
                if status == 404:
                    raise UrlFetchError("not_found", f"{url} answered 404")
                if response.is_redirect:
                    raise UrlFetchError("fetch_failed", f"{url} answered a redirect (not followed)")
                if status >= 400:
                    transient = status >= 500 or status in _TRANSIENT_STATUS
                    raise UrlFetchError("fetch_failed", f"{url} answered {status}", transient=transient)
                length = response.headers.get("content-length")
                if length and length.isdigit() and int(length) > policy.max_bytes:
                    raise UrlFetchError("too_large", too_large)
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > policy.max_bytes:
                        raise UrlFetchError("too_large", too_large)
                    write(chunk)
        except httpx.TimeoutException as error:
            raise UrlFetchError(
                "fetch_timeout", f"fetching {url} timed out ({type(error).__name__})", transient=True
            ) from None
        except httpx.HTTPError as error:
            raise UrlFetchError(
                "fetch_failed", f"fetching {url} failed: {type(error).__name__}: {error}", transient=True
            ) from None
        return size

    async def _checked_address(self, host: str, port: int) -> str:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            transient = isinstance(error, socket.gaierror) and error.errno == socket.EAI_AGAIN
            raise UrlFetchError(
                "fetch_failed", f"cannot resolve {host}: {error}", transient=transient
            ) from None
        return checked_address(host, [str(info[4][0]) for info in infos], self.policy.allow_private_addresses)


def checked_address(host: str, addresses: list[str], allow_private: bool) -> str:
    """The address to connect to among those ``host`` resolved to (the first), when every one
    is public or ``allow_private``; raises ``UrlFetchError`` (``url_not_allowed`` for a
    private, loopback or link-local address). Shared by the fetcher and the webhook sender."""
    if not addresses:
        raise UrlFetchError("fetch_failed", f"{host} has no address")
    if not allow_private:
        private = [a for a in addresses if not is_public_address(a)]
        if private:
            raise UrlFetchError(
                "url_not_allowed",
                f"{host} resolves to a private, loopback or link-local address ({private[0]})",
            )
    return addresses[0]


class UrlDownloader:
    """For synchronous callers (the worker's ``ingest_video``): ``downloader(url, path)``
    streams ``url`` into ``path`` through a ``GuardedFetcher`` on a fresh event loop and returns
    the size. Raises ``TransientError`` when retrying may help, ``BadInputError`` otherwise."""

    def __init__(self, policy: UrlPolicy) -> None:
        self.policy = policy

    def __call__(self, url: str, path: Path) -> int:
        async def run() -> int:
            fetcher = GuardedFetcher(self.policy)
            try:
                return await fetcher.download(url, path)
            finally:
                await fetcher.close()

        try:
            return asyncio.run(run())
        except UrlFetchError as error:
            if error.transient:
                raise TransientError(str(error)) from None
            raise BadInputError(str(error)) from None
