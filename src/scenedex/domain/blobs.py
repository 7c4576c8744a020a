"""The one URI policy of the blob store: which keys exist in scenedex's namespace, and which of
them a caller may name.

Every blob an owner has lives under ``owners/{owner_id}/`` (its uploads, keyframes, person
photos, source copies). A URI a caller gives (a video's source, subtitles or keyframe, an
image-search query image, anything later) is confined here, after canonicalisation, by the
same function for every entry point and every ``BlobStore`` (the fsspec store and the tests'
in-memory one): ``owner_key``. A URI that is not canonical is refused outright rather than
normalised, so no two spellings name one blob (``a/../b``, ``a//b``, ``./a``, ``%2e%2e``,
``a\\b``, control characters).

Nothing here touches a store: deciding on keys needs no I/O. The folder store adds its own
check on the real path (no symlinks, regular files only: ``adapters.storage``).
"""

from __future__ import annotations

import os
import unicodedata
import uuid
from typing import Protocol

OWNERS = "owners"
"""First segment of every owner's key: ``owners/{owner_id}/...``."""


def owner_prefix(owner_id: uuid.UUID) -> str:
    """The key folder of ``owner_id``'s blobs, ending with ``/``: ``owners/{owner_id}/``."""
    return f"{OWNERS}/{owner_id}/"


def upload_key(owner_id: uuid.UUID, name: str) -> str:
    """Where an owner's own upload named ``name`` (one canonical segment) is kept:
    ``owners/{owner_id}/uploads/{name}``."""
    return f"{owner_prefix(owner_id)}uploads/{name}"


def is_canonical_key(key: str) -> bool:
    """True when ``key`` is a relative path in canonical form: segments separated by single
    ``/``, none empty, ``.`` or ``..``; no backslash, no ``%`` (no percent-encoding to decode
    differently in two places), no control or format characters (NUL, bidi overrides)."""
    if not key or key.startswith("/") or "\\" in key or "%" in key:
        return False
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in key):
        return False
    return all(segment not in ("", ".", "..") for segment in key.split("/"))


def key_in_store(root_uri: str, uri: str) -> str | None:
    """The key of ``uri`` in a store rooted at ``root_uri`` (``uri == root_uri + "/" + key``),
    None when ``uri`` lies outside the root or its key is not canonical (``is_canonical_key``)."""
    root = root_uri.rstrip("/") + "/"
    if not uri.startswith(root):
        return None
    key = uri[len(root) :]
    return key if is_canonical_key(key) else None


def owner_key(root_uri: str, owner_id: uuid.UUID, uri: str) -> str | None:
    """The key of ``uri`` if it names a blob ``owner_id`` may read: canonical, in the store,
    under ``owners/{owner_id}/``, and not the folder itself. None for anything else (another
    owner's blob, outside the store, a non-canonical spelling); callers answer None exactly
    as they answer a missing blob, so the answer reveals nothing about other owners."""
    key = key_in_store(root_uri, uri)
    prefix = owner_prefix(owner_id)
    return key if key is not None and key.startswith(prefix) and len(key) > len(prefix) else None


class BlobStore(Protocol):
    """Immutable blobs addressed by URI (``file://``, ``s3://``, ``memory://``).

    Reads take the caller's cap (bytes) and check the object's size before reading a byte;
    every URI must be canonical (``key_in_store``). Errors: ``BadInputError`` for a URI outside
    the store or not canonical, ``BlobNotFoundError`` when nothing readable is there,
    ``BlobTooLargeError`` over the cap, ``DependencyUnavailableError`` (``blobs``) when the
    store cannot be reached."""

    root_uri: str
    """The store's root: every URI it reads or writes starts with ``root_uri + "/"``."""

    def size(self, uri: str) -> int:
        """The blob's size in bytes."""
        ...

    def read(self, uri: str, max_bytes: int) -> bytes:
        """The blob's bytes, refused (``BlobTooLargeError``) when over ``max_bytes``."""
        ...

    def read_to_file(self, uri: str, dest: str | os.PathLike[str], max_bytes: int) -> int:
        """Stream the blob into the local file ``dest`` (never whole in memory), at most
        ``max_bytes``; returns its size in bytes."""
        ...

    def write(self, key: str, data: bytes) -> str:
        """Store ``data`` under ``key`` (a canonical relative path) and return its URI."""
        ...

    def write_file(self, key: str, local_path: str | os.PathLike[str]) -> str:
        """Store the local file ``local_path`` under ``key`` without reading it into memory."""
        ...

    def key_of(self, uri: str) -> str | None:
        """The canonical key of ``uri`` in this store (``key_in_store``); None when ``uri`` is
        outside the store or not canonical. What an owner may name is decided on keys
        (``owner_key``)."""
        ...

    def delete(self, uri: str) -> None:
        """Remove the blob at ``uri`` (a URI ``write`` returned); nothing there is not an error."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every blob whose key starts with ``prefix/`` (a folder of keys given to
        ``write``); returns how many were removed (0 when nothing is there)."""
        ...
