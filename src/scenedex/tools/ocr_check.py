"""The labelled OCR check: phrases rendered with Pillow on the real sample media, and the word
recall and time per frame of an OCR reader on them.

Frames (``build_ocr_check``), 1280x720 (the keyframe size of an HD video), JPEG quality 85:
the backgrounds are real photos and video frames (``BACKGROUNDS``), each phrase of ``PHRASES``
is painted once per *style* (``STYLES``): a font (DejaVu Sans, Serif Bold and Mono from the
system, Pillow's own built-in font when those are absent), a cap height and a contrast:

- ``caption``: white text on a dark translucent band (a burnt-in caption or lower third);
- ``sign``: dark text on a light plate (a sign, a slide);
- ``outline``: white text with a 2-px black outline straight on the picture (a title);
- ``low``: mid-grey text straight on the picture, no plate (the hard case).

A phrase word counts as *found* when it occurs (case folded, punctuation dropped) among the words
the reader returned for that frame; word recall is found / painted. ``extra`` counts returned
words not painted (the backgrounds have little text of their own, so these are mostly misreads).
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

FRAME_SIZE = (1280, 720)
JPEG_QUALITY = 85
BACKGROUNDS = (
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "chelsea.png",
    "bikes.mp4",
    "bigbuckbunny.mp4",
)
PHRASES = (
    "Grand Opening Saturday",
    "Exit 42 Harbour Street",
    "Quarterly Results 2026",
    "Fresh Coffee Roasters",
    "Launch Window Tonight",
    "Mountain Trail Closed",
)
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = ("DejaVuSans.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSansMono.ttf")


@dataclass(frozen=True)
class Style:
    """How a phrase is painted: font file (``""``: Pillow's built-in), pixel size, contrast."""

    font: str
    size: int
    contrast: str

    @property
    def id(self) -> str:
        return f"{self.font or 'pillow'}-{self.size}-{self.contrast}"


STYLES = (
    Style("DejaVuSans.ttf", 36, "caption"),
    Style("DejaVuSerif-Bold.ttf", 56, "outline"),
    Style("DejaVuSansMono.ttf", 28, "sign"),
    Style("DejaVuSans.ttf", 20, "caption"),
    Style("DejaVuSerif-Bold.ttf", 24, "low"),
    Style("", 32, "sign"),
)
"""Six styles: 20-56 px, four contrasts, three font families and Pillow's own font."""


@dataclass(frozen=True)
class OcrFrame:
    """One frame of the check: its JPEG bytes, the painted words and how they were painted."""

    image: bytes
    words: tuple[str, ...]
    style: str
    background: str


@dataclass
class OcrCheckResult:
    """Word recall over the check, ``extra`` words, seconds per frame, recall per style."""

    painted: int = 0
    found: int = 0
    extra: int = 0
    seconds: float = 0.0
    frames: int = 0
    by_style: dict[str, list[int]] = field(default_factory=dict)

    @property
    def recall(self) -> float:
        return self.found / self.painted if self.painted else 0.0

    @property
    def ms_per_frame(self) -> float:
        return 1000 * self.seconds / self.frames if self.frames else 0.0


def words_of(text: str) -> list[str]:
    """Case-folded words of ``text`` (letters and digits; punctuation dropped)."""
    return re.findall(r"[0-9a-z]+", text.casefold())


def _font(style: Style) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = FONT_DIR / style.font
    if style.font and path.exists():
        return ImageFont.truetype(str(path), style.size)
    return ImageFont.load_default(size=style.size)


def _video_frame(path: Path, index: int) -> Image.Image:
    import av

    with av.open(str(path)) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number == index:
                image: Image.Image = frame.to_image().convert("RGB")
                return image
    raise ValueError(f"{path} has no frame {index}")


def background(media: Path, name: str) -> Image.Image:
    """A real photo or video frame (frame 60) fitted to ``FRAME_SIZE``."""
    source = (
        _video_frame(media / name, 60) if name.endswith(".mp4") else Image.open(media / name).convert("RGB")
    )
    return ImageOps.fit(source, FRAME_SIZE, Image.Resampling.LANCZOS)


def paint(image: Image.Image, text: str, style: Style, position: tuple[int, int]) -> Image.Image:
    """``image`` with ``text`` painted at ``position`` (top left, pixels) in ``style``."""
    image = image.convert("RGBA")
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    font = _font(style)
    left, top, right, bottom = draw.textbbox(position, text, font=font)
    pad = max(6, style.size // 4)
    plate = (left - pad, top - pad, right + pad, bottom + pad)
    if style.contrast == "caption":
        draw.rectangle(plate, fill=(0, 0, 0, 170))
        draw.text(position, text, font=font, fill=(255, 255, 255, 255))
    elif style.contrast == "sign":
        draw.rectangle(plate, fill=(235, 232, 220, 255))
        draw.text(position, text, font=font, fill=(30, 30, 40, 255))
    elif style.contrast == "outline":
        draw.text(
            position, text, font=font, fill=(255, 255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0, 255)
        )
    else:
        draw.text(position, text, font=font, fill=(128, 128, 128, 255))
    return Image.alpha_composite(image, overlay).convert("RGB")


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def painted_frame(
    media: Path, background_name: str, text: str, style: Style, position: tuple[int, int]
) -> bytes:
    """One JPEG frame: ``text`` painted on a real background (for tests that need one)."""
    return _jpeg(paint(background(media, background_name), text, style, position))


def build_ocr_check(media: Path, limit: int | None = None) -> list[OcrFrame]:
    """Frames of the check (``len(STYLES)`` per phrase, backgrounds in turn), the first
    ``limit`` only when given. Raises FileNotFoundError when ``media`` lacks a background."""
    backgrounds = {name: background(media, name) for name in BACKGROUNDS}
    frames = []
    for p, phrase in enumerate(PHRASES):
        for s, style in enumerate(STYLES):
            name = BACKGROUNDS[(p + s) % len(BACKGROUNDS)]
            position = (60 + 90 * s, 80 + 95 * ((p + s) % 6))
            image = paint(backgrounds[name], phrase, style, position)
            frames.append(OcrFrame(_jpeg(image), tuple(words_of(phrase)), style.id, name))
            if limit is not None and len(frames) >= limit:
                return frames
    return frames


def evaluate(frames: Sequence[OcrFrame], read: Callable[[bytes], str]) -> OcrCheckResult:
    """Word recall of ``read`` (JPEG bytes -> the text it found) over ``frames``, timed."""
    result = OcrCheckResult()
    for frame in frames:
        started = time.perf_counter()
        text = read(frame.image)
        result.seconds += time.perf_counter() - started
        result.frames += 1
        found = set(words_of(text))
        hits = sum(1 for word in frame.words if word in found)
        result.painted += len(frame.words)
        result.found += hits
        result.extra += len(found - set(frame.words))
        tally = result.by_style.setdefault(frame.style, [0, 0])
        tally[0] += hits
        tally[1] += len(frame.words)
    return result
