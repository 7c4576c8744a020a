"""The model files a configuration needs: list, fetch, verify, and the start-up check.

``ModelFiles`` knows the pins (``adapters.model_registry``), the models folder
(``SCENEDEX_MODELS_DIR``) and the mirror; ``configured_model_ids`` says which pinned models the
settings use (today the CLIP checkpoint of ``SCENEDEX_CLIP__MODEL`` / ``__PRETRAINED``: the text
and face models ship inside their packages). The worker, the API and the embedding service call
``check_startup`` before they load anything: a file present with another SHA-256 than its pin
stops them with one line naming ``scenedex models fetch`` (fail closed); a missing file is left
to the adapter (open_clip's own download, as before ``models fetch`` existed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from scenedex.adapters.model_download import ModelFileError, Progress, download, part_path
from scenedex.adapters.model_files import file_sha256
from scenedex.adapters.model_registry import ModelFile, load_registry
from scenedex.settings import UNTRAINED, Settings

log = logging.getLogger(__name__)

FIX = "scenedex models fetch"
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


class FileState(StrEnum):
    OK = "ok"
    MISSING = "missing"
    PARTIAL = "partial"  # a ``.part`` of an interrupted fetch, no file yet
    CORRUPT = "corrupt"


@dataclass(frozen=True)
class FileStatus:
    """One pinned file as found on disk: ``state``, ``path``, ``size`` (bytes present, of the
    part when partial) and ``sha256`` (hashed for present files)."""

    file: ModelFile
    path: Path
    state: FileState
    size: int = 0
    sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.file.model_id,
            "file": self.file.filename,
            "path": str(self.path),
            "state": self.state.value,
            "size": self.size,
            "expected_size": self.file.size,
            "sha256": self.sha256,
            "expected_sha256": self.file.sha256,
        }


def configured_model_ids(settings: Settings) -> tuple[str, ...]:
    """The model ids of ``settings`` that a fetch could provide: the CLIP tag's id
    (``open_clip:{model}:{tag}``) unless its weights are untrained or a local checkpoint path."""
    pretrained = settings.clip.pretrained.strip()
    if pretrained.lower() == UNTRAINED or "/" in pretrained or pretrained.endswith(_CHECKPOINT_SUFFIXES):
        return ()
    return (f"open_clip:{settings.clip.model}:{pretrained}",)


class ModelFiles:
    """The pinned files under ``folder`` (``registry`` by model id; ``needed``: the ids the
    configuration uses, in order; ``mirror``: base URL replacing the published ones)."""

    def __init__(
        self,
        registry: Mapping[str, ModelFile],
        folder: Path,
        needed: tuple[str, ...],
        *,
        mirror: str | None = None,
        timeout_s: float = 30.0,
        attempts: int = 3,
        backoff_s: float = 1.0,
    ) -> None:
        self.registry = dict(registry)
        self.folder = folder
        self.needed_ids = needed
        self.mirror = mirror
        self._timeout_s = timeout_s
        self._attempts = attempts
        self._backoff_s = backoff_s

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelFiles:
        """From ``SCENEDEX_MODELS_DIR`` and ``SCENEDEX_MODELS__*`` (``InvalidRequestError`` for
        a malformed registry file)."""
        models = settings.models
        return cls(
            load_registry(models.registry),
            Path(settings.models_dir).expanduser(),
            configured_model_ids(settings),
            mirror=models.mirror,
            timeout_s=models.timeout_s,
            attempts=models.attempts,
        )

    def needed(self) -> list[ModelFile]:
        """The pinned files the configuration uses (a configured id without a pin is skipped:
        its adapter finds its weights itself)."""
        return [self.registry[i] for i in self.needed_ids if i in self.registry]

    def path(self, file: ModelFile) -> Path:
        return self.folder / file.filename

    def local_path(self, model_id: str) -> Path | None:
        """The file of ``model_id`` when it is present (not hashed here: ``check_startup``
        did that once), else None."""
        file = self.registry.get(model_id)
        if file is None or not self.path(file).is_file():
            return None
        return self.path(file)

    def status(self, file: ModelFile) -> FileStatus:
        """Hash the file if present (``OSError`` when unreadable)."""
        path = self.path(file)
        if not path.is_file():
            part = part_path(path)
            if part.is_file():
                return FileStatus(file, path, FileState.PARTIAL, part.stat().st_size)
            return FileStatus(file, path, FileState.MISSING)
        digest = file_sha256(path)
        state = FileState.OK if digest == file.sha256 else FileState.CORRUPT
        return FileStatus(file, path, state, path.stat().st_size, digest)

    def verify(self, *, every: bool = False) -> list[FileStatus]:
        """The status of each needed file (``every``: of every pinned file)."""
        files = list(self.registry.values()) if every else self.needed()
        return [self.status(file) for file in files]

    def fetch(
        self,
        *,
        every: bool = False,
        on_file: Callable[[ModelFile], Progress | None] | None = None,
    ) -> list[FileStatus]:
        """Download each needed (``every``: pinned) file that is not ``ok`` (resuming a part,
        replacing a corrupt file); ``on_file(file)`` gives the progress callback of its
        download. Returns the statuses after; raises ``ModelFileError`` at the first file that
        cannot be fetched or whose content is not the pinned one."""
        statuses = []
        for status in self.verify(every=every):
            if status.state is not FileState.OK:
                file = status.file
                download(
                    file.source(self.mirror),
                    status.path,
                    file.sha256,
                    timeout_s=self._timeout_s,
                    attempts=self._attempts,
                    backoff_s=self._backoff_s,
                    progress=on_file(file) if on_file else None,
                )
                status = self.status(file)
            statuses.append(status)
        return statuses

    def check_startup(self) -> None:
        """Refuse a needed file whose content is not its pin: ``ModelFileError`` with one line
        naming the fix. Missing files are logged (the adapter may still download them)."""
        for status in self.verify():
            if status.state is FileState.CORRUPT:
                raise ModelFileError(
                    f"model file {status.path} ({status.file.model_id}) is corrupt: sha256 "
                    f"{status.sha256}, pinned {status.file.sha256}; run: {FIX}"
                )
            if status.state is not FileState.OK:
                log.warning(
                    "model file %s (%s) is %s; run `%s` (else the model library downloads it)",
                    status.path,
                    status.file.model_id,
                    status.state.value,
                    FIX,
                )
