"""Blob store on fsspec: ``file://`` (or a plain path), ``s3://`` (with s3fs), ``memory://``...

Blobs are written once and never changed (new content gets a new key), so content hashes taken
at write time stay valid.
"""

from __future__ import annotations

import errno
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager

import fsspec
from fsspec.core import url_to_fs

from scenedex.domain.errors import BLOBS, BadInputError, BlobNotFoundError, DependencyUnavailableError

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


class FsspecBlobStore:
    """BlobStore rooted at ``root_url``; reads are confined to that root."""

    def __init__(self, root_url: str) -> None:
        self._fs, root = url_to_fs(root_url)
        self._root = root.rstrip("/")
        self.root_uri = self._fs.unstrip_protocol(self._root)

    def write(self, key: str, data: bytes) -> str:
        """Store ``data`` at ``root/key`` and return its URI (e.g. ``file:///abs/path``)."""
        path = self._path(key)
        with _store_reachable(f"write {key}"):
            self._fs.makedirs(posixpath.dirname(path), exist_ok=True)
            self._fs.pipe_file(path, data)
        return self._fs.unstrip_protocol(path)

    def write_file(self, key: str, local_path: str) -> str:
        """Copy a local file to ``root/key`` without reading it into memory; returns its URI."""
        path = self._path(key)
        with _store_reachable(f"write {key}"):
            self._fs.makedirs(posixpath.dirname(path), exist_ok=True)
            self._fs.put_file(local_path, path)
        return self._fs.unstrip_protocol(path)

    def read(self, uri: str) -> bytes:
        """Bytes at ``uri``. Raises ``BlobNotFoundError`` when absent and ``BadInputError`` for a
        URI outside this store's root, ``DependencyUnavailableError`` (``blobs``) when the store
        cannot be reached."""
        if not (uri == self.root_uri or uri.startswith(self.root_uri + "/")):
            raise BadInputError(f"{uri} is outside the storage root {self.root_uri}")
        try:
            with _store_reachable(f"read {uri}"), fsspec.open(uri, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise BlobNotFoundError(f"file not found: {uri}") from None
        except IsADirectoryError:
            raise BadInputError(f"not a file: {uri}") from None

    def key_of(self, uri: str) -> str | None:
        """The key of ``uri`` under this store's root; None outside it, and for a path that is
        not canonical (``.``, ``..``, ``//`` segments), whatever it would resolve to."""
        if not uri.startswith(self.root_uri + "/"):
            return None
        key = uri[len(self.root_uri) + 1 :]
        return key if key and posixpath.normpath(key) == key and not key.startswith("..") else None

    def delete(self, uri: str) -> None:
        """Remove the blob at ``uri`` (nothing there: nothing to do). Raises ``BadInputError``
        for a URI outside this store's root."""
        if not uri.startswith(self.root_uri + "/"):
            raise BadInputError(f"{uri} is outside the storage root {self.root_uri}")
        path = self._path(uri[len(self.root_uri) :])
        if self._fs.isfile(path):
            self._fs.rm_file(path)

    def delete_prefix(self, prefix: str) -> int:
        """Remove every blob under the key folder ``prefix`` (e.g. a video's
        ``owners/{owner}/videos/{video}``); returns how many files were removed."""
        path = self._path(prefix)
        if path == self._root or not self._fs.exists(path):
            return 0
        files = self._fs.find(path)
        self._fs.rm(path, recursive=True)
        return len(files)

    def _path(self, key: str) -> str:
        clean = posixpath.normpath(key.lstrip("/"))
        if clean.startswith(".."):
            raise BadInputError(f"blob key {key!r} leaves the storage root")
        return f"{self._root}/{clean}"
