"""Helpers shared by the model adapters: the identity of a weights file and one-line errors."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from scenedex.domain.errors import ModelLoadError

DIGEST_LENGTH = 16


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of the file's content (read in chunks; raises ``OSError`` if unreadable)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@functools.cache
def weights_digest(path: Path, what: str) -> str:
    """``sha256-{16 hex}`` of a weights file, computed once per process per path; the part of a
    model id that names the weights. Raises ``ModelLoadError`` (naming ``what``) if unreadable."""
    try:
        return f"sha256-{file_sha256(path)[:DIGEST_LENGTH]}"
    except OSError as exc:
        raise ModelLoadError(f"cannot read {what} {path}: {exc}") from exc


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (its type name when the message is empty)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
