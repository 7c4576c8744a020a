"""The face embedder a composition root builds from the settings: dlib's own runtime
(``DlibFaceEmbedder``, the default) or the same networks on PyTorch (``TorchFaceEmbedder``,
``SCENEDEX_FACES__RUNTIME=torch``, issue 30). Both satisfy ``domain.ports.FaceEmbedder``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scenedex.domain.ports import FaceEmbedder
    from scenedex.settings import Settings


def build_face_embedder(settings: Settings) -> FaceEmbedder:
    """The face embedder ``settings.faces`` describe (models load lazily). Raises
    ``ModelLoadError`` when the model files are missing and ``ValueError`` for settings the
    chosen runtime cannot run (the torch runtime: ``upsample`` > 0, ``num_jitters`` > 1,
    ``fp16`` on a CPU)."""
    faces = settings.faces
    common = {
        "detector": faces.detector,
        "detect_side": faces.detect_side or None,
        "upsample": faces.upsample,
        "min_score": faces.min_score,
        "threads": faces.threads or None,
        "num_jitters": faces.num_jitters,
        "max_bytes": settings.max_image_bytes,
        "max_pixels": settings.max_image_pixels,
        "max_side": faces.max_side,
    }
    if faces.runtime == "torch":
        from scenedex.adapters.faces_torch import TorchFaceEmbedder

        return TorchFaceEmbedder(
            **common,  # type: ignore[arg-type]
            device=faces.device,
            precision=faces.precision,
            batch_size=faces.batch_size,
            detector_batch=faces.detector_batch or None,
        )
    from scenedex.adapters.faces import DlibFaceEmbedder

    return DlibFaceEmbedder(**common)  # type: ignore[arg-type]
