"""Blob store on fsspec: ``file://`` (or a plain path), ``s3://`` (with s3fs), ``memory://``...

Blobs are written once and never changed (new content gets a new key), so content hashes taken
at write time stay valid.
"""

from __future__ import annotations

import posixpath

import fsspec
from fsspec.core import url_to_fs

from scenedex.domain.errors import BadInputError, BlobNotFoundError


class FsspecBlobStore:
    """BlobStore rooted at ``root_url``; reads are confined to that root."""

    def __init__(self, root_url: str) -> None:
        self._fs, root = url_to_fs(root_url)
        self._root = root.rstrip("/")
        self.root_uri = self._fs.unstrip_protocol(self._root)

    def write(self, key: str, data: bytes) -> str:
        """Store ``data`` at ``root/key`` and return its URI (e.g. ``file:///abs/path``)."""
        path = self._path(key)
        self._fs.makedirs(posixpath.dirname(path), exist_ok=True)
        self._fs.pipe_file(path, data)
        return self._fs.unstrip_protocol(path)

    def write_file(self, key: str, local_path: str) -> str:
        """Copy a local file to ``root/key`` without reading it into memory; returns its URI."""
        path = self._path(key)
        self._fs.makedirs(posixpath.dirname(path), exist_ok=True)
        self._fs.put_file(local_path, path)
        return self._fs.unstrip_protocol(path)

    def read(self, uri: str) -> bytes:
        """Bytes at ``uri``. Raises ``BlobNotFoundError`` when absent and ``BadInputError`` for a
        URI outside this store's root."""
        if not (uri == self.root_uri or uri.startswith(self.root_uri + "/")):
            raise BadInputError(f"{uri} is outside the storage root {self.root_uri}")
        try:
            with fsspec.open(uri, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise BlobNotFoundError(f"file not found: {uri}") from None
        except IsADirectoryError:
            raise BadInputError(f"not a file: {uri}") from None

    def _path(self, key: str) -> str:
        clean = posixpath.normpath(key.lstrip("/"))
        if clean.startswith(".."):
            raise BadInputError(f"blob key {key!r} leaves the storage root")
        return f"{self._root}/{clean}"
