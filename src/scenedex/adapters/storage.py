"""Blob store on fsspec: ``file://`` (or a plain path), ``s3://`` (with s3fs), ``memory://``...

Blobs are written once and never changed (new content gets a new key), so content hashes taken
at write time stay valid.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from scenedex.domain.blobs import is_canonical_key, key_in_store
from scenedex.domain.errors import (
    BLOBS,
    BadInputError,
    BlobNotFoundError,
    BlobTooLargeError,
    DependencyUnavailableError,
)

_OUTAGE_ERRNOS = frozenset(
    {errno.EIO, errno.ENOTCONN, errno.ESTALE, errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ECONNREFUSED}
)
"""OS errors that mean the store (a network mount, an object store) is unreachable, not that
the blob is bad."""


@contextmanager
def _store_reachable(what: str) -> Iterator[None]:
    """Connection errors, timeouts and the errnos above become ``DependencyUnavailableError``
    (``blobs``): the work is held, not failed."""
    try:
        yield
    except (ConnectionError, TimeoutError) as error:
        raise DependencyUnavailableError(BLOBS, f"blob store unreachable during {what}: {error}") from error
    except OSError as error:
        if error.errno in _OUTAGE_ERRNOS:
            raise DependencyUnavailableError(
                BLOBS, f"blob store unreachable during {what}: {error}"
            ) from error
        raise


_CHUNK_BYTES = 1024 * 1024
"""Streaming reads copy in 1 MiB chunks."""


class FsspecBlobStore:
    """BlobStore rooted at ``root_url``; reads are confined to that root.

    Every read is capped before it happens: the object's size is read first (``size``), a
    blob over the caller's ``max_bytes`` is refused (``BlobTooLargeError``) without reading a
    byte, and the read itself stops at ``max_bytes + 1`` should the object grow meanwhile. In
    a folder store (``file://``) the real path must be the path itself, under the root, and a
    regular file: a symlink (to ``/etc/passwd``, ``/dev/zero``, another owner's folder), a
    device or a FIFO is refused as if missing.
    """

    def __init__(self, root_url: str) -> None:
        self._fs, root = url_to_fs(root_url)
        self._root = root.rstrip("/")
        self.root_uri = self._fs.unstrip_protocol(self._root)
        self._local = isinstance(self._fs, LocalFileSystem)

    def write(self, key: str, data: bytes) -> str:
        """Store ``data`` at ``root/key`` and return its URI (e.g. ``file:///abs/path``)."""
        path = self._path(key)
        with _store_reachable(f"write {key}"):
            self._fs.makedirs(posixpath.dirname(path), exist_ok=True)
            self._fs.pipe_file(path, data)
        return str(self._fs.unstrip_protocol(path))

    def write_file(self, key: str, local_path: str | os.PathLike[str]) -> str:
        """Copy a local file to ``root/key`` without reading it into memory; returns its URI."""
        path = self._path(key)
        with _store_reachable(f"write {key}"):
            self._fs.makedirs(posixpath.dirname(path), exist_ok=True)
            self._fs.put_file(os.fspath(local_path), path)
        return str(self._fs.unstrip_protocol(path))

    def size(self, uri: str) -> int:
        """Size in bytes of the blob at ``uri``. Raises ``BadInputError`` for a URI outside this
        store's root or not canonical (``domain.blobs``), ``BlobNotFoundError`` when nothing
        readable is there (absent, a folder, a symlink, a device), ``DependencyUnavailableError``
        (``blobs``) when the store cannot be reached."""
        path = self._readable_path(uri)
        with _store_reachable(f"stat {uri}"):
            try:
                info = self._fs.info(path)
            except FileNotFoundError:
                raise BlobNotFoundError(f"file not found: {uri}") from None
        if info.get("type") != "file" or info.get("size") is None:
            raise BlobNotFoundError(f"file not found: {uri}")
        return int(info["size"])

    def read(self, uri: str, max_bytes: int) -> bytes:
        """Bytes at ``uri``, at most ``max_bytes``. Raises ``BlobTooLargeError`` for a larger
        blob (from its size, before reading), otherwise as ``size``."""
        with self._open_capped(uri, max_bytes) as handle:
            data = handle.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise BlobTooLargeError(f"{uri} is larger than the limit of {max_bytes} bytes")
        return data

    def read_to_file(self, uri: str, dest: str | os.PathLike[str], max_bytes: int) -> int:
        """Stream the blob at ``uri`` into the local file ``dest`` (1 MiB at a time, never whole
        in memory); returns its size in bytes. Raises as ``read``; ``dest`` is left partial on
        error (callers write into a temporary folder)."""
        total = 0
        with self._open_capped(uri, max_bytes) as handle, open(dest, "wb") as out:
            while chunk := handle.read(_CHUNK_BYTES):
                total += len(chunk)
                if total > max_bytes:
                    raise BlobTooLargeError(f"{uri} is larger than the limit of {max_bytes} bytes")
                out.write(chunk)
        return total

    @contextmanager
    def _open_capped(self, uri: str, max_bytes: int) -> Iterator[IO[bytes]]:
        size = self.size(uri)
        if size > max_bytes:
            raise BlobTooLargeError(f"{uri} is {size} bytes, larger than the limit of {max_bytes} bytes")
        path = self._readable_path(uri)
        try:
            with _store_reachable(f"read {uri}"), self._fs.open(path, "rb") as handle:
                yield handle
        except FileNotFoundError:
            raise BlobNotFoundError(f"file not found: {uri}") from None
        except IsADirectoryError:
            raise BlobNotFoundError(f"file not found: {uri}") from None

    def _readable_path(self, uri: str) -> str:
        """The store path of ``uri``; in a folder store only when its real path is itself and
        a regular file (else ``BlobNotFoundError``)."""
        key = key_in_store(self.root_uri, uri)
        if key is None:
            raise BadInputError(f"{uri} is outside the storage root {self.root_uri} or not canonical")
        path = f"{self._root}/{key}"
        if self._local:
            real_root = os.path.realpath(self._root)
            try:
                status = os.lstat(path)
            except FileNotFoundError:
                raise BlobNotFoundError(f"file not found: {uri}") from None
            except NotADirectoryError:
                raise BlobNotFoundError(f"file not found: {uri}") from None
            if os.path.realpath(path) != f"{real_root}/{key}" or not stat.S_ISREG(status.st_mode):
                raise BlobNotFoundError(f"file not found: {uri} (not a regular file in the store)")
        return path

    def key_of(self, uri: str) -> str | None:
        """The key of ``uri`` under this store's root; None outside it, and for a path that is
        not canonical (``domain.blobs.is_canonical_key``), whatever it would resolve to."""
        return key_in_store(self.root_uri, uri)

    def delete(self, uri: str) -> None:
        """Remove the blob at ``uri`` (nothing there: nothing to do). Raises ``BadInputError``
        for a URI outside this store's root or not canonical."""
        key = key_in_store(self.root_uri, uri)
        if key is None:
            raise BadInputError(f"{uri} is outside the storage root {self.root_uri} or not canonical")
        path = self._path(key)
        if self._fs.isfile(path):
            self._fs.rm_file(path)

    def delete_prefix(self, prefix: str) -> int:
        """Remove every blob under the key folder ``prefix`` (e.g. a video's
        ``owners/{owner}/videos/{video}``); returns how many files were removed. Raises
        ``BadInputError`` for a prefix that is not a canonical key (``..``, ``//``, empty)."""
        path = self._path(prefix.strip("/"))
        if not self._fs.exists(path):
            return 0
        files = self._fs.find(path)
        self._fs.rm(path, recursive=True)
        return len(files)

    def _path(self, key: str) -> str:
        """The store path of a canonical ``key``; ``BadInputError`` for any other."""
        if not is_canonical_key(key):
            raise BadInputError(f"blob key {key!r} is not a canonical key of the store")
        return f"{self._root}/{key}"
