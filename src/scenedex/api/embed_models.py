"""The model adapters the embedding service runs (``EmbedModels``): built from settings with the
service's image limits, loaded at start, described on ``/health``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from scenedex.settings import Settings

log = logging.getLogger("scenedex.embed")


@dataclass
class EmbedModels:
    """The model adapters the service runs (the worker's own: ``OpenClipImageEmbedder``,
    ``SentenceTransformerTextEmbedder``, ``DlibFaceEmbedder``; tests may pass others with the
    same methods)."""

    clip: Any
    text: Any
    faces: Any
    clip_name: str
    text_name: str

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbedModels:
        """The local adapters, with the service's image limits (``max_image_size_bytes``,
        ``max_image_pixels``)."""
        from scenedex.application.wiring import local_embedders

        limited = settings.model_copy(
            update={
                "max_image_bytes": settings.embed.max_image_size_bytes,
                "max_image_pixels": settings.embed.max_image_pixels,
            }
        )
        clip, text, faces = local_embedders(limited)
        return cls(clip, text, faces, clip_name=settings.clip.model, text_name=settings.text.model)

    def load(self) -> None:
        """Load every model now; raises ``ModelLoadError``."""
        for model in (self.clip, self.text, self.faces):
            load = getattr(model, "load", None)
            if load is not None:
                load()

    def describe(self) -> dict[str, Any]:
        """``/health``'s ``models``: per role name, ids, dimension, device and dtype."""
        return {
            "clip": {
                "name": self.clip_name,
                "model_id": self.clip.model_id,
                "preprocessing_id": self.clip.preprocessing_id,
                "dim": int(self.clip.dim),
                "device": str(self.clip.device),
                "dtype": str(self.clip.precision),
            },
            "text": {
                "name": self.text_name,
                "model_id": self.text.model_id,
                "dim": int(self.text.dim),
                "device": str(getattr(self.text, "device", "cpu")),
                "dtype": str(getattr(self.text, "precision", "fp32")),
            },
            "faces": {
                "name": "dlib_face_recognition_resnet_model_v1",
                "model_id": self.faces.model_id,
                "detection_id": self.faces.detection_id,
                "dim": 128,
                "device": str(getattr(self.faces, "device", "cpu")),  # the torch runtime's device
                "dtype": str(getattr(self.faces, "precision", "fp32")),
            },
        }
