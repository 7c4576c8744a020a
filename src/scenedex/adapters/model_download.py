"""Download one pinned model file: resumable (HTTP ``Range``), checked, atomic.

The bytes go to ``{target}.part``; a later call sends ``Range: bytes={len(part)}-`` and appends
when the server answers 206 (a 200 restarts from zero: the server ignored the range). A dropped
connection is retried (``attempts``, doubling ``backoff_s``) from where it stopped. The finished
part is hashed: its SHA-256 must be the pinned one, else the part is deleted and
``ModelFileError`` raised (nothing is left under the target's name); then it is fsynced and
renamed over the target (``os.replace``), so a reader sees either no file or the whole checked
file, never a partial one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from scenedex.adapters.model_files import file_sha256
from scenedex.domain.errors import ModelLoadError

log = logging.getLogger(__name__)

Progress = Callable[[int, int | None], None]
"""``progress(done_bytes, total_bytes_or_None)`` after every chunk (and once at the start)."""


class ModelFileError(ModelLoadError):
    """A model file is missing, corrupt, or could not be downloaded (one line, names the fix)."""


def part_path(target: Path) -> Path:
    """Where the bytes of ``target`` accumulate until they are checked."""
    return target.with_name(target.name + ".part")


def download(
    url: str,
    target: Path,
    sha256: str,
    *,
    timeout_s: float = 30.0,
    attempts: int = 3,
    backoff_s: float = 1.0,
    progress: Progress | None = None,
    transport: httpx.BaseTransport | None = None,
) -> None:
    """Fetch ``url`` into ``target`` (its folders created) and check it against ``sha256``.

    Resumes a ``.part`` left by an earlier call. Raises ``ModelFileError`` when the server keeps
    failing (the part stays for the next call) or the content's hash differs (the part is
    removed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(target)
    with httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=True, trust_env=True) as http:
        for attempt in range(attempts):
            try:
                _fetch_rest(http, url, part, progress)
                break
            except (httpx.HTTPError, OSError) as error:
                have = part.stat().st_size if part.exists() else 0
                if attempt + 1 >= attempts:
                    raise ModelFileError(
                        f"cannot download {url}: {type(error).__name__}: {error} ({have} bytes kept in "
                        f"{part}; run `scenedex models fetch` again to resume)"
                    ) from error
                delay = backoff_s * 2**attempt
                log.warning(
                    "download of %s stopped at %d bytes (%s); resuming in %.1f s", url, have, error, delay
                )
                time.sleep(delay)
    actual = file_sha256(part)
    if actual != sha256:
        part.unlink(missing_ok=True)
        raise ModelFileError(
            f"refused {url}: its sha256 is {actual}, the pinned one is {sha256} (corrupt download or a "
            "wrong mirror; nothing was installed)"
        )
    with part.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(part, target)
    _fsync_dir(target.parent)


def _fetch_rest(http: httpx.Client, url: str, part: Path, progress: Progress | None) -> None:
    """Append the missing bytes of ``url`` to ``part`` (one request)."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with http.stream("GET", url, headers=headers) as response:
        if response.status_code == 416 and have:  # nothing after ``have``: the part is complete
            return
        if response.status_code not in (200, 206):
            raise httpx.HTTPStatusError(
                f"HTTP {response.status_code} from {url}", request=response.request, response=response
            )
        mode = "ab" if response.status_code == 206 else "wb"
        done = have if mode == "ab" else 0
        length = response.headers.get("Content-Length")
        total = done + int(length) if length is not None else None
        if progress:
            progress(done, total)
        with part.open(mode) as handle:
            for chunk in response.iter_bytes():  # as received: a cut keeps every byte that came
                handle.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
        if total is not None and done < total:
            raise httpx.RemoteProtocolError(f"connection closed after {done} of {total} bytes")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
