"""CLIP image (and text) embeddings with open_clip.

Importing this module is cheap: torch and open_clip are imported on first use, and
``model_id`` never needs them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from scenedex.adapters.images import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS, decode_image
from scenedex.adapters.model_files import one_line, weights_digest
from scenedex.adapters.torch_runtime import (
    ResolvedPrecision,
    check_precision,
    resolve_device,
    resolve_precision,
    torch_dtype,
)
from scenedex.domain.errors import BadInputError, ModelLoadError
from scenedex.domain.model import l2_normalise

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

UNTRAINED = "none"
"""``pretrained`` value meaning random (untrained) weights: for tests and benchmarks only."""

TINY_RANDOM_MODEL = "scenedex-tiny-random"
"""An open_clip architecture of scenedex's own (``clip_configs/scenedex-tiny-random.json``), for
the tests that do not measure CLIP itself: ViT-B-32's 512-d embedding and tokenizer, with a
2-layer, 64-wide image tower on 64x64 inputs (16x16 patches) and a 2-layer, 64-wide text tower:
3.5 M parameters (most of them the 49,408-token table) against ViT-B-32's 151 M. It has no
trained weights, so only ``pretrained="none"`` is accepted (model id
``open_clip:scenedex-tiny-random:untrained``)."""

_CONFIG_DIR = Path(__file__).with_name("clip_configs")

_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
_HOW_TO_FIX = (
    "Set SCENEDEX_CLIP__PRETRAINED to a local open_clip checkpoint file path, "
    f"or to '{UNTRAINED}' for untrained random weights (testing only)."
)


__all__ = ["TINY_RANDOM_MODEL", "UNTRAINED", "OpenClipImageEmbedder", "resolve_device"]


class OpenClipImageEmbedder:
    """``ImageEmbedder`` backed by an open_clip CLIP model (weights loaded lazily, once).

    - ``model_name``: an open_clip architecture name (``open_clip.list_models()``), or
      ``TINY_RANDOM_MODEL`` (with ``pretrained="none"`` only: ``ModelLoadError`` otherwise).
    - ``pretrained``: an open_clip pretrained tag (``open_clip.list_pretrained_tags_by_model``),
      a path to a local checkpoint file, or ``"none"`` for random weights drawn from a fixed
      seed (tests and benchmarks only; never chosen silently). Weights that cannot be loaded
      raise ``ModelLoadError``.
    - ``device``: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``,
      ``"cuda:1"``...
    - ``precision``: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``: the dtype the weights
      are cast to and inference runs in (no autocast). ``auto`` is fp16 on CUDA, and on CPU
      bf16 when it has native bf16 matrix instructions (``cpu_has_native_bf16``), else fp32.
      ``fp16`` on CPU raises ``ValueError`` at construction (no faster than fp32 there).
      The resolved value (``precision``) ends ``preprocessing_id``.
    - ``batch_size``: images (or texts) per forward pass.
    - ``max_bytes``/``max_pixels``: per-image limits, see ``decode_image``.
    - ``draft``: decode JPEGs at a reduced scale that still covers the model input size
      (about 2x faster decode; part of ``preprocessing_id``).

    - ``weights_file``: the tag's pinned checkpoint under ``SCENEDEX_MODELS_DIR`` (``scenedex
      models fetch``; checked at process start), read instead of open_clip's download. The
      model id stays the tag's: the pin makes it the same file.

    A path to a checkpoint that does not exist raises ``ModelLoadError`` at construction.
    Inference is thread-safe.
    """

    def __init__(
        self,
        model_name: str = "ViT-B-32",
        pretrained: str = "laion2b_s34b_b79k",
        *,
        device: str = "auto",
        batch_size: int = 32,
        max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        draft: bool = True,
        precision: str = "auto",
        weights_file: Path | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        check_precision(precision, device)
        if ":" in model_name:
            raise ModelLoadError(
                f"open_clip model name {model_name!r} has a schema; only built-in architecture names "
                "are supported (load weights with a local checkpoint path in pretrained)"
            )
        self._model_name = model_name
        self._pretrained = pretrained
        self._untrained = pretrained.strip().lower() == UNTRAINED
        if model_name == TINY_RANDOM_MODEL and not self._untrained:
            raise ModelLoadError(
                f"open_clip {TINY_RANDOM_MODEL} has no trained weights (pretrained={pretrained!r}); "
                f"it is a test architecture: set SCENEDEX_CLIP__PRETRAINED={UNTRAINED}, or choose a "
                "real architecture in SCENEDEX_CLIP__MODEL"
            )
        self._checkpoint: Path | None = None
        if not self._untrained and _looks_like_path(pretrained):
            checkpoint = Path(pretrained).expanduser()
            if not checkpoint.is_file():
                raise ModelLoadError(f"open_clip checkpoint file not found: {checkpoint}. {_HOW_TO_FIX}")
            self._checkpoint = checkpoint.resolve()
        self._weights_file = weights_file if self._checkpoint is None and not self._untrained else None
        self._device_setting = device
        self._batch_size = batch_size
        self._max_bytes = max_bytes
        self._max_pixels = max_pixels
        self._draft = draft
        self._precision_setting = precision
        self._precision: ResolvedPrecision | None = None

        self._lock = threading.Lock()
        self._preprocess_cfg: dict[str, Any] | None = None
        self._model: Any = None
        self._preprocess: Any = None
        self._tokenizer: Any = None
        self._device: str | None = None
        self._dtype: torch.dtype | None = None

    # ----------------------------------------------------------------- identity (no weights)

    @property
    def model_id(self) -> str:
        """``open_clip:{model}:{tag}``, ``open_clip:{model}:untrained`` or
        ``open_clip:{model}:sha256-{16 hex}`` (hash of the checkpoint file, computed once).

        Needs neither torch nor the weights loaded; raises ``ModelLoadError`` if the checkpoint
        file became unreadable."""
        if self._untrained:
            return f"open_clip:{self._model_name}:untrained"
        if self._checkpoint is None:
            return f"open_clip:{self._model_name}:{self._pretrained}"
        return f"open_clip:{self._model_name}:{weights_digest(self._checkpoint, 'open_clip checkpoint')}"

    @property
    def preprocessing_id(self) -> str:
        """Identity of decode, preprocessing and inference precision, e.g.
        ``pil-exif-rgb|draft224|resize-shortest224-bicubic|centercrop224|mean0.48145,...|std...|bf16``.

        Derived from open_clip's architecture config, the pretrained tag's preprocess config and
        the resolved ``precision`` (imports open_clip, loads no weights); raises
        ``ModelLoadError`` for an unknown architecture or tag."""
        cfg = self._expected_preprocess_cfg()
        return f"{_describe_preprocess(cfg, self._draft_size(cfg))}|{self.precision}"

    @property
    def precision(self) -> ResolvedPrecision:
        """The precision inference runs in: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (resolves
        ``"auto"`` for the device; imports torch, loads no weights)."""
        if self._precision is None:
            self._precision = resolve_precision(self._precision_setting, self.device)
        return self._precision

    @property
    def dim(self) -> int:
        """Embedding size ``d`` (e.g. 512 for ViT-B-32), from the architecture config (imports
        open_clip, loads no weights)."""
        return int(_model_config(self._model_name)["embed_dim"])

    @property
    def device(self) -> str:
        """The torch device the model runs on (resolves ``"auto"``; imports torch)."""
        if self._device is None:
            return resolve_device(self._device_setting)
        return self._device

    # ----------------------------------------------------------------- loading

    def load(self) -> None:
        """Load the weights now (otherwise done on first use). Idempotent and thread-safe.

        Raises ``ModelLoadError`` when the architecture, tag or checkpoint cannot be loaded
        (for a tag: typically because the model hub is unreachable)."""
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            self._load_locked()

    def _load_locked(self) -> None:
        expected = self._expected_preprocess_cfg()
        import torch

        open_clip = _open_clip()

        device = resolve_device(self._device_setting)
        weights = None if self._untrained else str(self._checkpoint or self._weights_file or self._pretrained)
        quick_gelu = False
        if self._weights_file is not None:  # the tag's own file: keep the tag's activation
            quick_gelu = bool(
                open_clip.get_pretrained_cfg(self._model_name, self._pretrained).get("quick_gelu")
            )
        if self._untrained:
            log.warning(
                "open_clip %s: using untrained random weights (pretrained=%r)",
                self._model_name,
                self._pretrained,
            )
        try:
            # Untrained weights come from a fixed seed, so "untrained" names the same weights in
            # every process (for one torch/open_clip version); the global RNG is left untouched.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model, _, preprocess = open_clip.create_model_and_transforms(
                    self._model_name,
                    pretrained=weights,
                    device=device,
                    pretrained_text=not self._untrained,
                    force_quick_gelu=quick_gelu,
                )
            tokenizer = open_clip.get_tokenizer(self._model_name)
        except Exception as exc:  # open_clip raises RuntimeError, OSError, ValueError, pickle errors...
            raise ModelLoadError(
                f"cannot load open_clip {self._model_name} weights from pretrained={self._pretrained!r}: "
                f"{one_line(exc)}. {_HOW_TO_FIX}"
            ) from exc

        actual = open_clip.get_model_preprocess_cfg(model)
        if _describe_preprocess(actual, None) != _describe_preprocess(expected, None):
            raise ModelLoadError(
                f"open_clip {self._model_name} ({self._pretrained!r}) preprocessing {actual} differs from "
                f"the predicted {expected}; preprocessing_id would be wrong"
            )
        precision = resolve_precision(self._precision_setting, device)
        dtype = torch_dtype(precision)
        # Weights are cast (not autocast, which is slower than fp32 for ViTs on CPU).
        model = model.to(device=device, dtype=dtype).eval()
        self._preprocess = preprocess
        self._tokenizer = tokenizer
        self._device = device
        self._precision = precision
        self._dtype = dtype
        self._model = model
        log.info("loaded %s on %s (%s)", self.model_id, device, dtype)

    # ----------------------------------------------------------------- inference

    def embed_images(self, images: Sequence[bytes]) -> list[np.ndarray | BadInputError]:
        """Embed encoded images (JPEG/PNG... bytes), in order.

        Per item: a ``(d,)`` float32 L2-normalised vector, or the ``BadInputError`` the item
        failed with (empty, oversized, too many pixels, corrupt); a bad item does not stop the
        others. Loads the model on first use (``ModelLoadError``)."""
        if not images:
            return []
        results: list[np.ndarray | BadInputError] = []
        for start in range(0, len(images), self._batch_size):
            prepared: list[Any | BadInputError] = []
            for data in images[start : start + self._batch_size]:
                try:
                    prepared.append(self.prepare_image(data))
                except BadInputError as exc:
                    prepared.append(exc)
            tensors = [item for item in prepared if not isinstance(item, BadInputError)]
            vectors = iter(self.embed_prepared(tensors) if tensors else [])
            results.extend(item if isinstance(item, BadInputError) else next(vectors) for item in prepared)
        return results

    def prepare_image(self, data: bytes) -> Any:
        """Decode and preprocess one encoded image: the model input, a ``(3, h, w)`` float32
        torch tensor (224x224 for ViT-B-32), on the CPU. The first phase of ``embed_images``,
        thread-safe, so callers (the embedding service) can decode many images concurrently and
        embed them as one batch with ``embed_prepared``.

        Raises ``BadInputError`` (empty, over ``max_bytes`` or ``max_pixels``, corrupt); loads
        the model on first use (``ModelLoadError``)."""
        self.load()
        draft_size = self._draft_size(self._expected_preprocess_cfg())
        image = decode_image(
            data, max_bytes=self._max_bytes, max_pixels=self._max_pixels, draft_size=draft_size
        )
        return self._preprocess(image)

    def embed_prepared(self, tensors: Sequence[Any], *, normalize: bool = True) -> np.ndarray:
        """Embed ``prepare_image`` outputs in forward passes of at most ``batch_size``:
        ``(n, d)`` float32 rows, L2-normalised unless ``normalize`` is false (then the raw
        image-tower output, as open_clip's ``encode_image(normalize=False)``)."""
        if not tensors:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.load()
        import torch

        rows: list[np.ndarray] = []
        for start in range(0, len(tensors), self._batch_size):
            batch = torch.stack(list(tensors[start : start + self._batch_size]))
            batch = batch.to(device=self._device, dtype=self._dtype)
            with torch.inference_mode():
                features = self._model.encode_image(batch)
            rows.append(features.float().cpu().numpy())
        vectors = np.concatenate(rows, axis=0)
        return l2_normalise(vectors) if normalize else vectors

    def encode_text(self, texts: Sequence[str], *, normalize: bool = True) -> np.ndarray:
        """Embed texts with the CLIP text tower (for text-to-image search).

        Returns ``(n, d)`` float32 rows, one per text (``(0, d)`` for none), L2-normalised
        unless ``normalize`` is false.
        Texts longer than the context (77 tokens for most models) are truncated."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.load()
        import torch

        rows: list[np.ndarray] = []
        for start in range(0, len(texts), self._batch_size):
            tokens = self._tokenizer(list(texts[start : start + self._batch_size])).to(self._device)
            with torch.inference_mode():
                features = self._model.encode_text(tokens)
            rows.append(features.float().cpu().numpy())
        vectors = np.concatenate(rows, axis=0)
        return l2_normalise(vectors) if normalize else vectors

    # ----------------------------------------------------------------- helpers

    def _expected_preprocess_cfg(self) -> dict[str, Any]:
        """The preprocess config open_clip will give the model, predicted without building it
        (mirrors ``open_clip.factory.create_model``: defaults, tag overrides, model image size)."""
        if self._preprocess_cfg is not None:
            return self._preprocess_cfg
        open_clip = _open_clip()
        from open_clip.transform import PreprocessCfg, merge_preprocess_dict

        cfg: dict[str, Any] = merge_preprocess_dict(PreprocessCfg(), {})
        if not self._untrained and self._checkpoint is None:
            tag_cfg = open_clip.get_pretrained_cfg(self._model_name, self._pretrained)
            if not tag_cfg:
                tags = open_clip.list_pretrained_tags_by_model(self._model_name)
                raise ModelLoadError(
                    f"unknown open_clip pretrained tag {self._pretrained!r} for {self._model_name} "
                    f"(known tags: {', '.join(tags) or 'none'}). {_HOW_TO_FIX}"
                )
            cfg = merge_preprocess_dict(cfg, tag_cfg)
        image_size = _model_config(self._model_name).get("vision_cfg", {}).get("image_size")
        if image_size is not None:
            cfg["size"] = image_size
        self._preprocess_cfg = cfg
        return cfg

    def _draft_size(self, cfg: dict[str, Any]) -> tuple[int, int] | None:
        if not self._draft:
            return None
        side = max(_as_pair(cfg["size"]))
        return (side, side)


_registered = threading.Lock()


def _open_clip() -> Any:
    """The ``open_clip`` module, with ``TINY_RANDOM_MODEL``'s config registered (once)."""
    import open_clip

    with _registered:
        if TINY_RANDOM_MODEL not in open_clip.list_models():
            open_clip.add_model_config(_CONFIG_DIR)
    return open_clip


def _model_config(model_name: str) -> dict[str, Any]:
    config = _open_clip().get_model_config(model_name)
    if config is None:
        raise ModelLoadError(f"unknown open_clip architecture {model_name!r} (see open_clip.list_models())")
    return dict(config)


def _as_pair(size: Any) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    first, second = size
    return (int(first), int(second))


def _describe_preprocess(cfg: dict[str, Any], draft_size: tuple[int, int] | None) -> str:
    height, width = _as_pair(cfg["size"])
    size = str(height) if height == width else f"{height}x{width}"
    mode = cfg.get("resize_mode", "shortest")
    interpolation = cfg.get("interpolation", "bicubic")
    parts = ["pil-exif-rgb", f"draft{draft_size[0]}" if draft_size else "nodraft"]
    if mode == "shortest":
        parts += [f"resize-shortest{size}-{interpolation}", f"centercrop{size}"]
    elif mode == "longest":
        parts += [f"resize-longest{size}-{interpolation}", f"centerpad{size}-fill{cfg.get('fill_color', 0)}"]
    else:
        parts += [f"resize-{mode}{size}-{interpolation}"]
    parts += [
        "mean" + ",".join(f"{float(v):.5f}" for v in cfg["mean"]),
        "std" + ",".join(f"{float(v):.5f}" for v in cfg["std"]),
    ]
    return "|".join(parts)


def _looks_like_path(value: str) -> bool:
    return (
        "/" in value
        or os.sep in value
        or value.startswith(("~", "."))
        or value.lower().endswith(_CHECKPOINT_SUFFIXES)
        or os.path.exists(value)
    )
