"""The one URI policy (``domain.blobs``) over every BlobStore: the tests' in-memory fake and
the real fsspec store on ``file://`` and ``memory://``. Issue 25: the owner check behind image
search was exercised only through the fake's copy of it, and ingest did not use it at all."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from scenedex.adapters.storage import FsspecBlobStore
from scenedex.domain.blobs import BlobStore, is_canonical_key, key_in_store, owner_key, upload_key
from scenedex.domain.errors import BadInputError, BlobNotFoundError, BlobTooLargeError, NotFoundError
from scenedex.services.search import owner_blob
from tests.fakes import InMemoryBlobStore

OWNER_A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
OWNER_B = uuid.UUID("00000000-0000-4000-8000-00000000000b")


@pytest.fixture(params=["fake", "file", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "fake":
        yield InMemoryBlobStore()
    elif request.param == "file":
        (tmp_path / "root").mkdir()
        yield FsspecBlobStore(f"file://{tmp_path}/root")
    else:
        yield FsspecBlobStore(f"memory://scenedex-test-{uuid.uuid4().hex}")


def escapes(store: BlobStore) -> list[str]:
    """Spellings by which owner B might reach A's upload or leave the store."""
    root = store.root_uri
    b = f"{root}/owners/{OWNER_B}"
    return [
        f"{root}/owners/{OWNER_A}/uploads/a.jpg",  # A's, spelled canonically
        f"{b}/../{OWNER_A}/uploads/a.jpg",
        f"{b}/uploads/../../{OWNER_A}/uploads/a.jpg",
        f"{b}/uploads/%2e%2e/%2e%2e/{OWNER_A}/uploads/a.jpg",
        f"{b}/uploads/%2E%2E%2F%2E%2E%2F{OWNER_A}/uploads/a.jpg",
        f"{root}/owners/{OWNER_B}//uploads/b.jpg",
        f"{root}/owners/{OWNER_B}/./uploads/b.jpg",
        f"{root}/./owners/{OWNER_B}/uploads/b.jpg",
        f"{b}/uploads\\b.jpg",
        f"{b}/uploads/b.jpg\x00.png",
        f"{b}/uploads/\u202eb.jpg",
        f"{root}-evil/owners/{OWNER_B}/uploads/b.jpg",  # a sibling of the root
        f"{root}/owners/{OWNER_B}-evil/uploads/b.jpg",  # a sibling of B's prefix
        f"{root}/owners/{OWNER_B}",
        f"{root}/owners/{OWNER_B}/",
        f"{root}/../{OWNER_B}/uploads/b.jpg",
        "/etc/passwd",
        "file:///etc/passwd",
    ]


def test_only_the_callers_own_canonical_keys_pass(store: BlobStore) -> None:
    a = store.write(upload_key(OWNER_A, "a.jpg"), b"A's photo")
    b = store.write(upload_key(OWNER_B, "b.jpg"), b"B's photo")
    assert owner_key(store.root_uri, OWNER_B, b) == f"owners/{OWNER_B}/uploads/b.jpg"
    assert owner_key(store.root_uri, OWNER_A, a) == f"owners/{OWNER_A}/uploads/a.jpg"
    assert owner_blob(store, OWNER_B, b, 1024) == b"B's photo"
    for uri in escapes(store):
        assert owner_key(store.root_uri, OWNER_B, uri) is None, uri
        with pytest.raises(NotFoundError) as refused:
            owner_blob(store, OWNER_B, uri, 1024)
        assert str(refused.value) == f"no image at {uri} for this owner"
    # A missing blob of B's own gets the same answer as A's existing one.
    missing = f"{store.root_uri}/owners/{OWNER_B}/uploads/none.jpg"
    with pytest.raises(NotFoundError, match="for this owner"):
        owner_blob(store, OWNER_B, missing, 1024)


def test_reads_and_deletes_refuse_non_canonical_uris(store: BlobStore) -> None:
    store.write(upload_key(OWNER_A, "a.jpg"), b"A's photo")
    refused = [uri for uri in escapes(store) if key_in_store(store.root_uri, uri) is None]
    assert len(refused) == 15
    for uri in refused:
        with pytest.raises(BadInputError) as error:
            store.read(uri, 1024)
        assert not isinstance(error.value, BlobNotFoundError)  # refused on its spelling
        with pytest.raises(BadInputError):
            store.delete(uri)
    for prefix in ("..", "owners/..", f"owners/{OWNER_B}/../{OWNER_A}", "", "/", "a//b", "./a"):
        with pytest.raises(BadInputError):
            store.delete_prefix(prefix)
    for key in ("../x", "a/../b", "a//b", "/abs", "a\\b", "%2e%2e/x", "a/\x00"):
        with pytest.raises(BadInputError):
            store.write(key, b"x")
    assert store.read(f"{store.root_uri}/{upload_key(OWNER_A, 'a.jpg')}", 1024) == b"A's photo"


def test_every_read_is_capped_before_it_happens(store: BlobStore, tmp_path: Path) -> None:
    uri = store.write(upload_key(OWNER_A, "big.bin"), b"x" * 4096)
    assert store.size(uri) == 4096
    with pytest.raises(BlobTooLargeError, match="limit of 4095 bytes"):
        store.read(uri, 4095)
    with pytest.raises(BlobTooLargeError):
        store.read_to_file(uri, tmp_path / "copy", 4095)
    assert store.read_to_file(uri, tmp_path / "copy", 4096) == 4096
    assert (tmp_path / "copy").read_bytes() == b"x" * 4096
    with pytest.raises(BlobNotFoundError):
        store.size(f"{store.root_uri}/{upload_key(OWNER_A, 'none.bin')}")


def test_the_folder_store_refuses_symlinks_and_special_files(tmp_path: Path) -> None:
    """A symlink in a folder store (to /etc/passwd, /dev/zero, another owner's folder, or a
    folder outside the root) reads as missing; so do a FIFO and a folder."""
    root = tmp_path / "root"
    uploads = root / "owners" / str(OWNER_B) / "uploads"
    uploads.mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the store")
    a_upload = root / "owners" / str(OWNER_A) / "uploads" / "a.jpg"
    a_upload.parent.mkdir(parents=True)
    a_upload.write_bytes(b"A's photo")
    (uploads / "passwd.jpg").symlink_to("/etc/passwd")
    (uploads / "zero.mp4").symlink_to("/dev/zero")
    (uploads / "secret.jpg").symlink_to(secret)
    (uploads / "a.jpg").symlink_to(a_upload)
    (root / "owners" / str(OWNER_B) / "linked").symlink_to(root / "owners" / str(OWNER_A) / "uploads")
    os.mkfifo(uploads / "fifo.jpg")
    (uploads / "folder.jpg").mkdir()
    store = FsspecBlobStore(f"file://{root}")
    names = ["passwd.jpg", "zero.mp4", "secret.jpg", "a.jpg", "fifo.jpg", "folder.jpg"]
    uris = [f"{store.root_uri}/owners/{OWNER_B}/uploads/{n}" for n in names]
    uris.append(f"{store.root_uri}/owners/{OWNER_B}/linked/a.jpg")
    for uri in uris:
        assert owner_key(store.root_uri, OWNER_B, uri) is not None  # the key is B's ...
        with pytest.raises(BlobNotFoundError):  # ... but nothing readable is there
            store.size(uri)
        with pytest.raises(BlobNotFoundError):
            store.read(uri, 1 << 30)
        with pytest.raises(NotFoundError):
            owner_blob(store, OWNER_B, uri, 1 << 30)


def test_canonical_keys() -> None:
    assert is_canonical_key("owners/x/uploads/clip 1 (final).mp4")
    assert is_canonical_key("owners/x/uploads/été.jpg")
    for key in ("", "/a", "a/", "a//b", "./a", "a/.", "a/../b", "..", "a\\b", "a%2fb", "a\x7fb", "a\u2066b"):
        assert not is_canonical_key(key), key
