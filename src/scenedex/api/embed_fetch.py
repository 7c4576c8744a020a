"""Getting the bytes of an image given to the embedding service: inline base64, a URL on an
allowed host, or a URI under an allowed storage root. Nothing else is fetched.

SSRF guard (OWASP SSRF Prevention Cheat Sheet: allow-list, resolve, refuse internal addresses,
no redirects): a URL's host must be in ``allowed_hosts``; every address it resolves to must be
public (not private, loopback, link-local, multicast, reserved or unspecified) unless
``allow_private_addresses``; the connection goes to the checked address (the TLS server name and
``Host`` header stay the URL's host), so a DNS answer that changes between check and connect
cannot redirect it; redirects are not followed. Bodies are streamed and cut at
``max_bytes``; the whole fetch is bounded by ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import socket
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit

import httpx

from scenedex.adapters.storage import FsspecBlobStore
from scenedex.domain.errors import BadInputError, BlobNotFoundError


class ImageInputError(Exception):
    """One image cannot be had. ``code`` (the API's per-item error code) and HTTP ``status``:

    | code | status | meaning |
    | --- | --- | --- |
    | ``too_large`` | 413 | over ``max_image_size_bytes`` |
    | ``bad_image`` | 422 | invalid base64, corrupt, empty, too many pixels (bomb) |
    | ``url_not_allowed`` | 422 | host not allowed, private address, scheme, storage root |
    | ``not_found`` | 422 | the URL or URI answered 404 / does not exist |
    | ``fetch_failed`` | 502 | the remote answered an error, a redirect, or the connection failed |
    | ``fetch_timeout`` | 504 | the fetch took longer than ``download_timeout_s`` |
    """

    STATUS: ClassVar[dict[str, int]] = {
        "too_large": 413,
        "bad_image": 422,
        "url_not_allowed": 422,
        "not_found": 422,
        "fetch_failed": 502,
        "fetch_timeout": 504,
    }

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = self.STATUS[code]


@dataclass(frozen=True)
class FetchPolicy:
    """Where images may come from and how big they may be (``EmbedServerSettings``)."""

    max_bytes: int
    timeout_s: float
    allowed_hosts: tuple[str, ...] = ()
    allowed_storage_roots: tuple[str, ...] = ()
    allow_private_addresses: bool = False


def decode_base64(data: str, max_bytes: int) -> bytes:
    """The bytes of standard base64 ``data`` (whitespace ignored). Raises ``ImageInputError``
    ``too_large`` (checked from the length before decoding) or ``bad_image``."""
    compact = "".join(data.split())
    if len(compact) * 3 // 4 - compact.count("=") > max_bytes:
        raise ImageInputError("too_large", f"image larger than {max_bytes} bytes")
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ImageInputError("bad_image", "image data is not valid base64") from None
    if not raw:
        raise ImageInputError("bad_image", "empty image data (0 bytes)")
    return raw


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast IP (``ipaddress``'s ``is_global``, minus multicast);
    IPv4-mapped IPv6 addresses are judged by their IPv4 address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class ImageFetcher:
    """Fetches images by URL or storage URI under a ``FetchPolicy``; one per service (shares an
    ``httpx.AsyncClient``). ``close()`` when done."""

    def __init__(self, policy: FetchPolicy) -> None:
        self.policy = policy
        self._client = httpx.AsyncClient(follow_redirects=False, timeout=policy.timeout_s, trust_env=False)
        self._stores = [(root, FsspecBlobStore(root)) for root in policy.allowed_storage_roots]

    async def close(self) -> None:
        await self._client.aclose()

    async def fetch(self, url: str) -> bytes:
        """The bytes at ``url``; raises ``ImageInputError`` (see its table)."""
        try:
            return await asyncio.wait_for(self._fetch(url), self.policy.timeout_s)
        except TimeoutError:
            raise ImageInputError(
                "fetch_timeout", f"fetching {url} took longer than {self.policy.timeout_s} s"
            ) from None

    async def _fetch(self, url: str) -> bytes:
        for root, store in self._stores:
            if url == root or url.startswith(root.rstrip("/") + "/"):
                return await asyncio.to_thread(self._read_blob, store, url)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ImageInputError(
                "url_not_allowed",
                f"{parts.scheme or 'a schemeless'} URL is not under an allowed storage root",
            )
        host = (parts.hostname or "").lower()
        if not host or host not in self.policy.allowed_hosts:
            raise ImageInputError(
                "url_not_allowed",
                f"host {host!r} is not in SCENEDEX_EMBED__ALLOWED_HOSTS",
            )
        address = await self._checked_address(host, parts.port or (443 if parts.scheme == "https" else 80))
        netloc = f"[{address}]" if ":" in address else address
        if parts.port:
            netloc += f":{parts.port}"
        target = parts._replace(netloc=netloc).geturl()
        headers = {"Host": parts.netloc.rsplit("@", 1)[-1]}
        try:
            async with self._client.stream(
                "GET", target, headers=headers, extensions={"sni_hostname": host}
            ) as response:
                if response.status_code == 404:
                    raise ImageInputError("not_found", f"{url} answered 404")
                if response.is_redirect:
                    raise ImageInputError("fetch_failed", f"{url} answered a redirect (not followed)")
                if response.status_code >= 400:
                    raise ImageInputError("fetch_failed", f"{url} answered {response.status_code}")
                length = response.headers.get("content-length")
                if length and length.isdigit() and int(length) > self.policy.max_bytes:
                    raise ImageInputError("too_large", f"image larger than {self.policy.max_bytes} bytes")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.policy.max_bytes:
                        raise ImageInputError("too_large", f"image larger than {self.policy.max_bytes} bytes")
                    chunks.append(chunk)
        except httpx.HTTPError as error:
            raise ImageInputError("fetch_failed", f"fetching {url} failed: {error}") from None
        return b"".join(chunks)

    async def _checked_address(self, host: str, port: int) -> str:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            raise ImageInputError("fetch_failed", f"cannot resolve {host}: {error}") from None
        addresses = [str(info[4][0]) for info in infos]
        if not addresses:
            raise ImageInputError("fetch_failed", f"{host} has no address")
        if not self.policy.allow_private_addresses:
            private = [a for a in addresses if not is_public_address(a)]
            if private:
                raise ImageInputError(
                    "url_not_allowed",
                    f"{host} resolves to a private, loopback or link-local address ({private[0]})",
                )
        return addresses[0]

    def _read_blob(self, store: FsspecBlobStore, uri: str) -> bytes:
        if "/../" in uri or uri.endswith("/.."):
            raise ImageInputError("url_not_allowed", f"{uri} leaves its storage root")
        try:
            data = store.read(uri)
        except BlobNotFoundError as error:
            raise ImageInputError("not_found", str(error)) from None
        except BadInputError as error:
            raise ImageInputError("url_not_allowed", str(error)) from None
        if len(data) > self.policy.max_bytes:
            raise ImageInputError("too_large", f"image larger than {self.policy.max_bytes} bytes")
        if not data:
            raise ImageInputError("bad_image", "empty image data (0 bytes)")
        return data
