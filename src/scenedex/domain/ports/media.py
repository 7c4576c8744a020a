"""The model ports: image, text and face embedders, and the frames of stored videos."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from scenedex.domain.errors import BadInputError
from scenedex.domain.model import (
    DetectedFace,
)


class ImageEmbedder(Protocol):
    """CLIP-style image embedder."""

    @property
    def model_id(self) -> str:
        """Identity of architecture and weights, e.g. ``open_clip:ViT-B-32:laion2b_s34b_b79k``;
        must be known without loading the weights."""
        ...

    @property
    def preprocessing_id(self) -> str:
        """Identity of decode and preprocessing (size, resize, normalisation)."""
        ...

    def embed_images(self, images: Sequence[bytes]) -> list[np.ndarray | BadInputError]:
        """Embed encoded images (JPEG/PNG bytes). Per item: a ``(d,)`` float32 L2-normalised
        vector, or the ``BadInputError`` that item failed with (corrupt, empty, oversized)."""
        ...

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """CLIP text-tower embeddings, ``(n, d)`` float32 L2-normalised (text-to-image search)."""
        ...


class TextEmbedder(Protocol):
    """Sentence embedder for scene text channels."""

    @property
    def model_id(self) -> str: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, d)`` float32, L2-normalised, one row per text (texts are non-empty)."""
        ...


class FaceEmbedder(Protocol):
    """Face detector plus 128-d face descriptor."""

    @property
    def model_id(self) -> str: ...

    @property
    def detection_id(self) -> str:
        """Identity of detection settings (detector, upsampling, jitters)."""
        ...

    def detect_faces(self, images: Sequence[bytes]) -> list[list[DetectedFace] | BadInputError]:
        """Per image: the faces found (unmatched; may be empty) or the item's error."""
        ...


@dataclass(frozen=True)
class OcrLine:
    """One line of text read from an image: its text, its box ``(x0, y0, x1, y1)`` in pixels of
    the image (axis-aligned, right/bottom exclusive) and the reader's confidence in [0, 1]."""

    text: str
    box: tuple[int, int, int, int]
    confidence: float


class OcrReader(Protocol):
    """Reads the text painted on images (OCR)."""

    @property
    def model_id(self) -> str:
        """Identity of the detection and recognition models (names and weights digests) and of
        the reader's own settings; must be known without loading the models."""
        ...

    def read_lines(self, images: Sequence[bytes]) -> list[list[OcrLine] | BadInputError]:
        """Per encoded image (JPEG/PNG bytes): the text lines found, in any order, with any
        confidence (the caller normalises them), or the ``BadInputError`` the item failed
        with (corrupt, empty, oversized)."""
        ...


class VideoFrames(Protocol):
    def frames_at(self, source_uri: str, times_s: Sequence[float]) -> list[bytes]:
        """One JPEG per time (seconds) of a stored source video; ``BadInputError`` when it is
        gone or undecodable, ``DependencyUnavailableError`` when the store is down."""
        ...
