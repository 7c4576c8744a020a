"""Getting the bytes of an image given to the embedding service: inline base64, a URL on an
allowed host, or a URI under an allowed storage root. Nothing else is fetched.

URLs go through the SSRF guard of ``scenedex.adapters.url_fetch`` (allow-listed hosts, public
addresses only unless ``allow_private_addresses``, connect to the checked address, no
redirects, streamed and cut at ``max_bytes``, the whole fetch bounded by ``timeout_s``); its
``UrlFetchError`` becomes the API's ``ImageInputError`` with the same code.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit

from scenedex.adapters.storage import FsspecBlobStore
from scenedex.adapters.url_fetch import GuardedFetcher, UrlFetchError, UrlPolicy
from scenedex.domain.errors import BadInputError, BlobNotFoundError, BlobTooLargeError


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
class FetchPolicy(UrlPolicy):
    """Where images may come from and how big they may be (``EmbedServerSettings``): the URL
    guard's policy plus the storage roots."""

    allowed_storage_roots: tuple[str, ...] = ()
    hosts_setting: str = "SCENEDEX_EMBED__ALLOWED_HOSTS"


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


class ImageFetcher(GuardedFetcher):
    """Fetches images by URL (the guard of ``GuardedFetcher``) or storage URI under a
    ``FetchPolicy``; one per service (shares an ``httpx.AsyncClient``). ``close()`` when done."""

    policy: FetchPolicy

    def __init__(self, policy: FetchPolicy) -> None:
        super().__init__(policy)
        self._stores = [(root, FsspecBlobStore(root)) for root in policy.allowed_storage_roots]

    async def fetch(self, url: str) -> bytes:
        """The bytes at ``url``; raises ``ImageInputError`` (see its table)."""
        for root, store in self._stores:
            if url == root or url.startswith(root.rstrip("/") + "/"):
                try:
                    return await asyncio.wait_for(
                        asyncio.to_thread(self._read_blob, store, url), self.policy.timeout_s
                    )
                except TimeoutError:
                    raise ImageInputError(
                        "fetch_timeout", f"fetching {url} took longer than {self.policy.timeout_s} s"
                    ) from None
        scheme = urlsplit(url).scheme
        if scheme not in self.policy.schemes:
            raise ImageInputError(
                "url_not_allowed", f"{scheme or 'a schemeless'} URL is not under an allowed storage root"
            )
        try:
            return await super().fetch(url)
        except UrlFetchError as error:
            raise ImageInputError(error.code, str(error)) from None

    def _read_blob(self, store: FsspecBlobStore, uri: str) -> bytes:
        if store.key_of(uri) is None:
            raise ImageInputError("url_not_allowed", f"{uri} leaves its storage root or is not canonical")
        try:
            data = store.read(uri, self.policy.max_bytes)
        except BlobNotFoundError as error:
            raise ImageInputError("not_found", str(error)) from None
        except BlobTooLargeError:
            raise ImageInputError("too_large", f"image larger than {self.policy.max_bytes} bytes") from None
        except BadInputError as error:
            raise ImageInputError("url_not_allowed", str(error)) from None
        if not data:
            raise ImageInputError("bad_image", "empty image data (0 bytes)")
        return data
