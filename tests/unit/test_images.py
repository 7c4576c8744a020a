"""decode_image: limits, corrupt data, orientation and draft decoding, on Pillow-made images."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from scenedex.adapters.images import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS, decode_image
from scenedex.domain.errors import BadInputError

LIMITS = {"max_bytes": DEFAULT_MAX_IMAGE_BYTES, "max_pixels": DEFAULT_MAX_IMAGE_PIXELS}


def encode(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def gradient(width: int, height: int) -> Image.Image:
    """An RGB image with varied content (compresses to a realistic size)."""
    image = Image.linear_gradient("L").resize((width, height))
    return Image.merge("RGB", (image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), image))


def test_valid_png_decodes_to_rgb_of_same_size_and_content() -> None:
    original = gradient(64, 48)
    decoded = decode_image(encode(original), **LIMITS)
    assert decoded.mode == "RGB"
    assert decoded.size == (64, 48)
    assert decoded.tobytes() == original.tobytes()


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "LA"])
def test_other_modes_are_converted_to_rgb(mode: str) -> None:
    decoded = decode_image(encode(gradient(20, 10).convert(mode)), **LIMITS)
    assert decoded.mode == "RGB"
    assert decoded.size == (20, 10)


def test_empty_data_is_bad_input() -> None:
    with pytest.raises(BadInputError, match="empty"):
        decode_image(b"", **LIMITS)


@pytest.mark.parametrize("data", [b"not an image at all", b"\x00" * 1000, b"\x89PNG\r\n\x1a\n" + b"x" * 50])
def test_unrecognised_data_is_bad_input(data: bytes) -> None:
    with pytest.raises(BadInputError):
        decode_image(data, **LIMITS)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image_is_bad_input(fmt: str) -> None:
    data = encode(gradient(200, 200), fmt)
    with pytest.raises(BadInputError):
        decode_image(data[: len(data) // 2], **LIMITS)


def test_data_over_max_bytes_is_bad_input() -> None:
    data = encode(gradient(64, 64))
    assert decode_image(data, max_bytes=len(data), max_pixels=DEFAULT_MAX_IMAGE_PIXELS).size == (64, 64)
    with pytest.raises(BadInputError, match="too large"):
        decode_image(data, max_bytes=len(data) - 1, max_pixels=DEFAULT_MAX_IMAGE_PIXELS)


def test_too_many_pixels_is_bad_input() -> None:
    data = encode(gradient(100, 50))
    assert decode_image(data, max_bytes=DEFAULT_MAX_IMAGE_BYTES, max_pixels=5000).size == (100, 50)
    with pytest.raises(BadInputError, match="pixels"):
        decode_image(data, max_bytes=DEFAULT_MAX_IMAGE_BYTES, max_pixels=4999)


def test_pixel_limit_is_checked_from_the_header_before_decoding() -> None:
    # Pixel data cut off: decoding would fail as corrupt, so a "too large" error proves the
    # size check ran on the header alone, before any decoding.
    data = encode(gradient(400, 400))
    truncated = data[: len(data) // 4]
    with pytest.raises(BadInputError, match="pixels"):
        decode_image(truncated, max_bytes=DEFAULT_MAX_IMAGE_BYTES, max_pixels=1000)


def test_pillow_decompression_bomb_error_becomes_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow refuses > 2x this outright
    with pytest.raises(BadInputError, match="decompression bomb"):
        decode_image(encode(gradient(30, 30)), max_bytes=DEFAULT_MAX_IMAGE_BYTES, max_pixels=10**9)


def test_exif_orientation_is_applied() -> None:
    image = gradient(40, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    decoded = decode_image(encode(image, "JPEG", exif=exif.tobytes()), **LIMITS)
    assert decoded.size == (20, 40)


def test_draft_decodes_jpeg_at_reduced_scale_covering_the_requested_size() -> None:
    data = encode(gradient(800, 600), "JPEG", quality=90)
    assert decode_image(data, **LIMITS).size == (800, 600)
    # 1/2 is the largest scale keeping both sides >= 200 (1/4 would give 150 rows).
    assert decode_image(data, **LIMITS, draft_size=(200, 200)).size == (400, 300)


def test_draft_is_ignored_for_png() -> None:
    data = encode(gradient(800, 600))
    assert decode_image(data, **LIMITS, draft_size=(200, 200)).size == (800, 600)
