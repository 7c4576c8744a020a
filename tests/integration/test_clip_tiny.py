"""The tiny test architecture (``scenedex-tiny-random``, issue 27) that the process stacks use
instead of ViT-B-32 when they do not measure CLIP: random weights only and said in the model id,
ViT-B-32's embedding size, its own 64x64 preprocessing, deterministic across instances."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from scenedex.adapters.clip import TINY_RANDOM_MODEL, OpenClipImageEmbedder
from scenedex.domain.errors import BadInputError, ModelLoadError


def _png(colour: tuple[int, int, int], size: tuple[int, int] = (320, 180)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def test_only_random_weights_and_the_id_says_so() -> None:
    for pretrained in ("laion2b_s34b_b79k", "openai"):
        with pytest.raises(ModelLoadError, match=r"no trained weights.*SCENEDEX_CLIP__PRETRAINED=none"):
            OpenClipImageEmbedder(TINY_RANDOM_MODEL, pretrained, device="cpu")
    tiny = OpenClipImageEmbedder(TINY_RANDOM_MODEL, "none", device="cpu", precision="fp32")
    assert tiny.model_id == "open_clip:scenedex-tiny-random:untrained"
    assert tiny.dim == 512
    assert tiny.preprocessing_id.startswith("pil-exif-rgb|draft64|resize-shortest64-bicubic|centercrop64|")
    assert tiny.preprocessing_id.endswith("|fp32")
    assert tiny._model is None  # identity without weights


def test_embeddings_are_unit_512_rows_the_same_in_every_instance() -> None:
    first = OpenClipImageEmbedder(TINY_RANDOM_MODEL, "none", device="cpu", precision="fp32", batch_size=2)
    second = OpenClipImageEmbedder(TINY_RANDOM_MODEL, "none", device="cpu", precision="fp32")
    images = [_png((200, 30, 30)), b"not an image", _png((30, 30, 200)), _png((30, 200, 30), (64, 640))]
    vectors = first.embed_images(images)
    assert isinstance(vectors[1], BadInputError)
    rows = np.stack([v for v in vectors if not isinstance(v, BadInputError)])
    assert rows.shape == (3, 512) and rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(rows[0], rows[1])  # different images, different vectors
    again = np.stack([v for v in second.embed_images(images) if not isinstance(v, BadInputError)])
    np.testing.assert_allclose(again, rows, atol=1e-6)  # the fixed seed: the same weights
    texts = first.encode_text(["a red frame", "a blue frame", ""])
    assert texts.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(second.encode_text(["a red frame"])[0], texts[0], atol=1e-6)


def test_the_tiny_architecture_is_tiny() -> None:
    tiny = OpenClipImageEmbedder(TINY_RANDOM_MODEL, "none", device="cpu", precision="fp32")
    tiny.load()
    parameters = sum(p.numel() for p in tiny._model.parameters())
    assert 3_000_000 < parameters < 4_000_000  # ViT-B-32: 151 M
