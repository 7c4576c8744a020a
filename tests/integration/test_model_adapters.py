"""The real model adapters (open_clip, sentence-transformers, dlib) on the real sample media.

CLIP runs with untrained weights (no pretrained weights are reachable offline): enough for
shapes, dtypes, batching, error isolation and identities, not for retrieval quality.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from scenedex.adapters.clip import OpenClipImageEmbedder
from scenedex.adapters.faces import DlibFaceEmbedder
from scenedex.adapters.text import SentenceTransformerTextEmbedder
from scenedex.domain.errors import BadInputError, ModelLoadError
from scenedex.domain.model import l2_normalise

pytestmark = pytest.mark.models

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
REAL_IMAGES = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "hubble_deep_field.jpg",
    "motorcycle_left.png",
    "rocket.jpg",
)
CORRUPT = b"\x89PNG\r\n\x1a\n this is not really a png"


def real(name: str) -> bytes:
    path = REAL / name
    if not path.is_file():
        pytest.skip(f"sample media {path} not present (the real media folder ../shared/data/real is absent)")
    return path.read_bytes()


def mirrored(data: bytes) -> bytes:
    buffer = io.BytesIO()
    ImageOps.mirror(Image.open(io.BytesIO(data)).convert("RGB")).save(buffer, "PNG")
    return buffer.getvalue()


def min_row_cosine(first: np.ndarray, second: np.ndarray) -> float:
    """The smallest cosine between matching rows of two stacks of unit vectors."""
    assert first.shape == second.shape
    return float(np.min(np.sum(first * second, axis=1)))


def assert_unit_float32(vector: object, dim: int) -> None:
    assert isinstance(vector, np.ndarray)
    assert vector.shape == (dim,)
    assert vector.dtype == np.float32
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


# --------------------------------------------------------------------------------- CLIP


@pytest.fixture(scope="module")
def clip() -> OpenClipImageEmbedder:
    # fp32 explicitly: the tolerances below are float32 ones, whatever "auto" means here.
    embedder = OpenClipImageEmbedder("ViT-B-32", "none", device="cpu", batch_size=4, precision="fp32")
    embedder.load()
    return embedder


def test_clip_model_ids_need_no_weights(tmp_path: Path) -> None:
    assert OpenClipImageEmbedder("ViT-B-32", "none").model_id == "open_clip:ViT-B-32:untrained"
    assert OpenClipImageEmbedder().model_id == "open_clip:ViT-B-32:laion2b_s34b_b79k"
    checkpoint = tmp_path / "clip.pt"
    checkpoint.write_bytes(b"not loaded, only hashed")
    digest = hashlib.sha256(b"not loaded, only hashed").hexdigest()[:16]
    assert (
        OpenClipImageEmbedder("ViT-B-16", str(checkpoint)).model_id == f"open_clip:ViT-B-16:sha256-{digest}"
    )


def test_clip_preprocessing_id_describes_the_model_input() -> None:
    first = OpenClipImageEmbedder("ViT-B-32", "none").preprocessing_id
    assert first == OpenClipImageEmbedder("ViT-B-32", "none").preprocessing_id
    assert "224" in first and "bicubic" in first and "0.48145" in first
    assert "256" in OpenClipImageEmbedder("ViT-B-32-256", "none").preprocessing_id
    assert OpenClipImageEmbedder("ViT-B-32", "none", draft=False).preprocessing_id != first


def test_clip_embeds_valid_items_and_isolates_bad_ones(clip: OpenClipImageEmbedder) -> None:
    astronaut, chelsea, rocket = real("astronaut.png"), real("chelsea.png"), real("rocket.jpg")
    # 6 items with batch_size 4: the bad items fall in both chunks.
    results = clip.embed_images([astronaut, CORRUPT, chelsea, b"", rocket, astronaut])

    assert len(results) == 6
    assert isinstance(results[1], BadInputError)
    assert isinstance(results[3], BadInputError)
    assert "empty" in str(results[3])
    for index in (0, 2, 4, 5):
        assert_unit_float32(results[index], clip.dim)
    assert clip.dim == 512
    # Identical input, identical vector; different images, different vectors.
    np.testing.assert_allclose(results[0], results[5], atol=1e-5)
    assert not np.allclose(results[0], results[2], atol=1e-3)
    # Each vector belongs to its own item: the same as embedding the item alone.
    alone = clip.embed_images([chelsea, rocket])
    np.testing.assert_allclose(alone[0], results[2], atol=1e-5)
    np.testing.assert_allclose(alone[1], results[4], atol=1e-5)


def test_clip_all_bad_batch_and_empty_batch(clip: OpenClipImageEmbedder) -> None:
    assert clip.embed_images([]) == []
    results = clip.embed_images([b"", CORRUPT])
    assert [type(item) for item in results] == [BadInputError, BadInputError]


def test_clip_untrained_weights_are_the_same_in_every_instance(clip: OpenClipImageEmbedder) -> None:
    image = real("coffee.png")
    other = OpenClipImageEmbedder("ViT-B-32", "none", device="cpu", precision="fp32")
    np.testing.assert_allclose(other.embed_images([image])[0], clip.embed_images([image])[0], atol=1e-5)


def test_clip_text_tower(clip: OpenClipImageEmbedder) -> None:
    vectors = clip.encode_text(["a photo of an astronaut", "a photo of a cat", "a photo of an astronaut"])
    assert vectors.shape == (3, 512)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1], atol=1e-3)
    assert clip.encode_text([]).shape == (0, 512)


def test_clip_bf16_embeddings_match_fp32_and_the_ids_differ(clip: OpenClipImageEmbedder) -> None:
    images = [real(name) for name in REAL_IMAGES]
    bf16 = OpenClipImageEmbedder("ViT-B-32", "none", device="cpu", batch_size=8, precision="bf16")
    assert bf16.precision == "bf16" and clip.precision == "fp32"
    assert bf16.model_id == clip.model_id
    assert bf16.preprocessing_id.endswith("|bf16") and clip.preprocessing_id.endswith("|fp32")
    assert bf16.preprocessing_id != clip.preprocessing_id

    results = bf16.embed_images(images)
    for vector in results:
        assert_unit_float32(vector, 512)
    assert str(next(bf16._model.parameters()).dtype) == "torch.bfloat16"
    low = np.stack([np.asarray(vector) for vector in results])
    full = np.stack([np.asarray(vector) for vector in clip.embed_images(images)])
    assert min_row_cosine(low, full) >= 0.999
    # Still a different vector per image (bf16 did not collapse the embeddings).
    assert float(np.max(low[0] @ low[1:].T)) < 0.999

    words = ["a photo of an astronaut", "a cup of coffee"]
    assert min_row_cosine(bf16.encode_text(words), clip.encode_text(words)) >= 0.999


def test_clip_default_tag_offline_raises_model_load_error_not_random_weights(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from huggingface_hub import constants

    # huggingface_hub reads these at import time: patch the constants too, so the download
    # fails at once instead of retrying an unreachable hub, and no cached copy is found.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    embedder = OpenClipImageEmbedder(device="cpu")
    with pytest.raises(ModelLoadError, match="SCENEDEX_CLIP__PRETRAINED"):
        embedder.load()
    with pytest.raises(ModelLoadError):
        embedder.embed_images([real("astronaut.png")])


def test_clip_bad_pretrained_values_raise_model_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        OpenClipImageEmbedder("ViT-B-32", str(tmp_path / "missing.pt"))
    with pytest.raises(ModelLoadError, match="unknown open_clip pretrained tag"):
        OpenClipImageEmbedder("ViT-B-32", "no_such_tag").load()
    with pytest.raises(ModelLoadError, match="unknown open_clip architecture"):
        OpenClipImageEmbedder("No-Such-Arch", "none").load()


# --------------------------------------------------------------------------------- text


@pytest.fixture(scope="module")
def text() -> SentenceTransformerTextEmbedder:
    embedder = SentenceTransformerTextEmbedder(device="cpu", precision="fp32")
    embedder.load()
    return embedder


def test_text_embeddings_shape_norm_and_meaning(text: SentenceTransformerTextEmbedder) -> None:
    vectors = text.embed_texts(
        [
            "A man rides a bicycle down a busy street.",
            "A cyclist pedals along the road through traffic.",
            "The central bank raised interest rates again.",
        ]
    )
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similar, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert similar > unrelated + 0.2
    assert text.dim == 384
    assert text.embed_texts([]).shape == (0, 384)


def test_text_model_id_is_stable_and_names_the_weights(text: SentenceTransformerTextEmbedder) -> None:
    model_id = text.model_id
    assert re.fullmatch(r"sentence-transformers:all-MiniLM-L6-v2:sha256-[0-9a-f]{16}:fp32", model_id)
    digest = hashlib.sha256((text.folder / "model.safetensors").read_bytes()).hexdigest()[:16]
    assert model_id.endswith(f":sha256-{digest}:fp32")
    # The same folder given by path is the same model.
    same = SentenceTransformerTextEmbedder(str(text.folder), device="cpu", precision="fp32")
    assert same.model_id == model_id


def test_text_bf16_embeddings_match_fp32_and_the_ids_differ(text: SentenceTransformerTextEmbedder) -> None:
    sentences = [
        "A man rides a bicycle down a busy street.",
        "A cyclist pedals along the road through traffic.",
        "The central bank raised interest rates again.",
        "An astronaut in a white suit poses in front of a flag.",
        "A cup of coffee with latte art on a wooden table.",
        "Rocket launch at dawn, smoke billowing over the pad.",
        "short",
        "A tabby cat sleeps on a sofa while the rain falls outside the window all afternoon long, "
        "and nobody in the house seems to notice the thunder rolling over the hills.",
    ]
    bf16 = SentenceTransformerTextEmbedder(device="cpu", precision="bf16")
    assert bf16.precision == "bf16"
    assert bf16.model_id == text.model_id.removesuffix(":fp32") + ":bf16"

    low, full = bf16.embed_texts(sentences), text.embed_texts(sentences)
    assert str(next(bf16._model.parameters()).dtype) == "torch.bfloat16"
    assert low.shape == (len(sentences), 384)
    assert low.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(low, axis=1), 1.0, atol=1e-5)
    assert min_row_cosine(low, full) >= 0.995
    # The meaning survives: the paraphrase is still closer than the unrelated sentence.
    assert float(low[0] @ low[1]) > float(low[0] @ low[2]) + 0.2


def test_text_model_only_loads_from_a_local_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="local folder"):
        SentenceTransformerTextEmbedder("sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(ModelLoadError, match="no weights file"):
        SentenceTransformerTextEmbedder(str(tmp_path))


# --------------------------------------------------------------------------------- faces


@pytest.fixture(scope="module")
def faces() -> DlibFaceEmbedder:
    embedder = DlibFaceEmbedder()
    embedder.load()
    return embedder


def test_face_ids(faces: DlibFaceEmbedder) -> None:
    assert re.fullmatch(r"dlib:resnet_v1:sha256-[0-9a-f]{16}", faces.model_id)
    assert faces.detection_id == "hog-side720-upsample0-minscore0.25-jitter1-landmarks5-maxside1600"
    assert DlibFaceEmbedder(upsample=1, max_side=800).detection_id != faces.detection_id
    # Without a detection side: the id every record had before the setting existed.
    previous = DlibFaceEmbedder(detect_side=None, upsample=1, min_score=0.3)
    assert previous.detection_id == "hog-upsample1-minscore0.3-jitter1-landmarks5-maxside1600"
    assert DlibFaceEmbedder(detector="cnn").detection_id.startswith("cnn-side720-")
    assert DlibFaceEmbedder(threads=1).detection_id == faces.detection_id  # threads change no result


def test_face_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="detector"):
        DlibFaceEmbedder(detector="haar")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="detect_side"):
        DlibFaceEmbedder(detect_side=8)
    with pytest.raises(ValueError, match="threads"):
        DlibFaceEmbedder(threads=0)


def test_faces_in_parallel_match_one_at_a_time_and_a_bad_image_fails_alone(faces: DlibFaceEmbedder) -> None:
    astronaut, cat = real("astronaut.png"), real("chelsea.png")
    images = [astronaut, CORRUPT, mirrored(astronaut), cat, astronaut, b"", mirrored(astronaut), cat]
    serial = DlibFaceEmbedder(threads=1).detect_faces(images)
    parallel = DlibFaceEmbedder(threads=4).detect_faces(images)
    assert [type(r) for r in serial] == [type(r) for r in parallel]
    assert isinstance(parallel[1], BadInputError) and isinstance(parallel[5], BadInputError)
    for one, other in zip(serial, parallel, strict=True):
        if isinstance(one, list) and isinstance(other, list):
            assert [f.bbox for f in one] == [f.bbox for f in other]
            for a, b in zip(one, other, strict=True):
                np.testing.assert_array_equal(a.descriptor, b.descriptor)
    assert [len(r) for r in parallel if isinstance(r, list)] == [1, 1, 0, 1, 1, 0]


def test_small_frames_are_upscaled_for_detection_and_boxes_map_back(faces: DlibFaceEmbedder) -> None:
    """A 176x144 frame is searched at 880x720: the face is found, its box in the frame's pixels."""
    photo = Image.open(io.BytesIO(real("astronaut.png"))).convert("RGB")
    frame = Image.new("RGB", (176, 144), (40, 60, 80))
    frame.paste(photo.resize((110, 110), Image.Resampling.LANCZOS), (40, 20))
    buffer = io.BytesIO()
    frame.save(buffer, "PNG")
    (found,) = faces.detect_faces([buffer.getvalue()])
    assert isinstance(found, list) and len(found) == 1
    left, top, right, bottom = found[0].bbox
    # astronaut.png's face (179..267, 83..171 of 512) scaled by 110/512 and moved by (40, 20)
    expected = (40 + 179 * 110 / 512, 20 + 83 * 110 / 512, 40 + 267 * 110 / 512, 20 + 171 * 110 / 512)
    assert all(abs(a - b) <= 5 for a, b in zip((left, top, right, bottom), expected, strict=True))
    assert 0 <= left < right <= 176 and 0 <= top < bottom <= 144


def test_faces_astronaut_flip_cat_and_corrupt(faces: DlibFaceEmbedder) -> None:
    astronaut = real("astronaut.png")
    results = faces.detect_faces([astronaut, CORRUPT, mirrored(astronaut), real("chelsea.png"), b""])

    assert isinstance(results[1], BadInputError)
    assert isinstance(results[4], BadInputError)
    original, flipped, cat = results[0], results[2], results[3]
    assert isinstance(original, list) and isinstance(flipped, list)
    assert cat == []
    assert len(original) == 1 and len(flipped) == 1

    face = original[0]
    left, top, right, bottom = face.bbox
    assert 0 <= left < right <= 512 and 0 <= top < bottom <= 512
    assert right - left > 40 and bottom - top > 40
    # Her face is in the upper middle of the portrait.
    assert 150 < (left + right) / 2 < 300 and 50 < (top + bottom) / 2 < 200
    # The flip's box is the mirror image of the original's.
    flipped_left, _, flipped_right, _ = flipped[0].bbox
    assert abs(flipped_left - (512 - right)) <= 8 and abs(flipped_right - (512 - left)) <= 8

    for detected in (face, flipped[0]):
        assert detected.descriptor.shape == (128,)
        assert detected.descriptor.dtype == np.float32
        assert detected.person_id is None and detected.distance is None
    assert float(np.linalg.norm(face.descriptor - flipped[0].descriptor)) < 0.6


def test_faces_downscaled_detection_maps_boxes_back_to_original_pixels(faces: DlibFaceEmbedder) -> None:
    astronaut = real("astronaut.png")
    (full,) = faces.detect_faces([astronaut])
    (small,) = DlibFaceEmbedder(max_side=256).detect_faces([astronaut])
    assert isinstance(full, list) and isinstance(small, list)
    assert len(full) == 1 and len(small) == 1
    assert all(abs(a - b) <= 12 for a, b in zip(full[0].bbox, small[0].bbox, strict=True))
    # Still the same person at half resolution.
    assert float(np.linalg.norm(full[0].descriptor - small[0].descriptor)) < 0.6


def test_faces_of_different_people_are_far_apart(faces: DlibFaceEmbedder) -> None:
    av = pytest.importorskip("av")
    real("bikes.mp4")
    with av.open(str(REAL / "bikes.mp4")) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index == 30:  # a man's face, clearly visible
                buffer = io.BytesIO()
                frame.to_image().save(buffer, "PNG")
                break
    (man,) = faces.detect_faces([buffer.getvalue()])
    (astronaut,) = faces.detect_faces([real("astronaut.png")])
    assert isinstance(man, list) and isinstance(astronaut, list)
    assert len(man) == 1 and len(astronaut) == 1
    assert float(np.linalg.norm(man[0].descriptor - astronaut[0].descriptor)) > 0.6
    unit_distance = float(
        np.linalg.norm(l2_normalise(man[0].descriptor) - l2_normalise(astronaut[0].descriptor))
    )
    assert unit_distance > 0.4
