"""Safe decoding of untrusted encoded images (JPEG, PNG, ...) into RGB Pillow images.

Every model adapter decodes through :func:`decode_image`, so size limits, decompression-bomb
protection, EXIF orientation and error messages are the same everywhere.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from scenedex.adapters.model_files import one_line
from scenedex.domain.errors import BadInputError

DEFAULT_MAX_IMAGE_BYTES = 32 * 1024 * 1024
"""Largest encoded image accepted by default (bytes)."""

DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
"""Largest image accepted by default (width x height, pixels), checked before decoding."""

_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError)


def decode_image(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Decode encoded image bytes into an upright RGB image.

    - ``max_bytes``: largest accepted ``len(data)`` in bytes.
    - ``max_pixels``: largest accepted ``width * height`` of the stored image, checked from the
      header before any pixel is decoded (decompression-bomb guard).
    - ``draft_size``: ``(width, height)``; when given, JPEGs are decoded at the largest reduced
      scale (1/2, 1/4, 1/8) that still covers this size in both dimensions (much faster for
      big photos); other formats ignore it.

    EXIF orientation is applied (the result is the image as a viewer shows it) and the result is
    always mode ``"RGB"`` (alpha is dropped). For animated formats the first frame is returned.

    Raises ``BadInputError`` (one-line message) for empty data, data over ``max_bytes``, images
    over ``max_pixels``, and corrupt, truncated or unrecognised data.
    """
    size = len(data)
    if size == 0:
        raise BadInputError("empty image data (0 bytes)")
    if size > max_bytes:
        raise BadInputError(f"image data too large: {size} bytes > limit of {max_bytes} bytes")

    image: Image.Image
    try:
        with warnings.catch_warnings():
            # Pillow warns from 89 Mpx up; the pixel limit below refuses such images anyway.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise BadInputError(f"image rejected as a decompression bomb: {one_line(exc)}") from exc
    except UnidentifiedImageError as exc:
        raise BadInputError(f"unrecognised or corrupt image data ({size} bytes)") from exc
    except _DECODE_ERRORS as exc:
        raise BadInputError(f"cannot open image data ({size} bytes): {one_line(exc)}") from exc

    width, height = image.size
    if width <= 0 or height <= 0:
        raise BadInputError(f"image has no pixels: {width}x{height}")
    if width * height > max_pixels:
        raise BadInputError(
            f"image too large: {width}x{height} = {width * height} pixels > limit of {max_pixels} pixels"
        )

    try:
        if draft_size is not None:
            image.draft("RGB", draft_size)
        image.load()
        image = ImageOps.exif_transpose(image)
        if image.mode != "RGB":
            image = image.convert("RGB")
    except Image.DecompressionBombError as exc:
        raise BadInputError(f"image rejected as a decompression bomb: {one_line(exc)}") from exc
    except _DECODE_ERRORS as exc:
        raise BadInputError(
            f"corrupt or truncated {image.format or 'image'} data ({width}x{height}): {one_line(exc)}"
        ) from exc
    return image


FACE_THUMBNAIL_SIDE = 128
"""Longer side (pixels) of a face thumbnail (``face_thumbnail``)."""


def face_thumbnail(
    data: bytes,
    bbox: tuple[int, int, int, int],
    *,
    side: int = FACE_THUMBNAIL_SIDE,
    margin: float = 0.25,
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> bytes:
    """A JPEG (quality 85) of the face at ``bbox`` (``(left, top, right, bottom)`` pixels of the
    decoded, upright image) with ``margin`` of its width and height added on each side, clipped
    to the image, scaled so its longer side is at most ``side`` pixels (Pillow ``thumbnail``,
    Lanczos). The picture a suggested person is shown with. Raises ``BadInputError`` for data
    ``decode_image`` refuses or a box outside the image."""
    image = decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
    left, top, right, bottom = bbox
    dx, dy = (right - left) * margin, (bottom - top) * margin
    box = (
        max(0, int(left - dx)),
        max(0, int(top - dy)),
        min(image.width, int(right + dx)),
        min(image.height, int(bottom + dy)),
    )
    if box[2] <= box[0] or box[3] <= box[1]:
        raise BadInputError(f"face box {bbox} is outside the {image.width}x{image.height} image")
    crop = image.crop(box)
    crop.thumbnail((side, side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    crop.save(out, format="JPEG", quality=85)
    return out.getvalue()
